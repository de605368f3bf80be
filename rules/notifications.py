"""Seller notifications: one template per situation, plain text, supplied text escaped."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from typing import Any

from rules.metrics import DESCRIPTIONS
from rules.policy import Policy
from rules.units import DAY_MS, pct

CHANNELS = ["EMAIL", "PUSH"]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
MAX_QUOTE = 500

# What a seller can do about each metric.
IMPROVE = {
    "cancellation_rate": "Keep your listed stock in sync with what you have on hand, and end a show's "
                         "sales when an item runs out instead of cancelling orders afterwards.",
    "late_dropoff_rate": "Buy labels as orders come in and hand parcels to the carrier before the ship-by "
                         "date; if you cannot, set a longer handling time before your next show.",
    "unfulfilled_rate": "Ship every open order now or cancel it with the buyer's agreement; review your "
                        "open orders every day.",
    "flawed_item_rate": "Check each item against its listing before packing, photograph what you ship, and "
                        "use padded packaging for fragile items.",
    "low_rating_rate": "Read your recent 1-2 star reviews, answer buyers' questions quickly, and describe "
                       "items exactly as they are.",
}
SUBJECTS = {
    "suspension_approved": "Your selling privileges are suspended",
    "ban_approved": "Your seller account is closed",
    "appeal_granted": "Your appeal was granted",
    "appeal_denied": "Your appeal was not granted",
    "reinstatement": "Your selling privileges are restored",
}


def escape(text: str | None) -> str:
    """Supplied text, safe inside a plain-text body (and any HTML rendering of it)."""
    if not text:
        return ""
    text = _CONTROL.sub(" ", text.replace("\r\n", " ").replace("\n", " ").replace("\t", " "))
    if len(text) > MAX_QUOTE:
        text = text[:MAX_QUOTE] + "…"
    return html.escape(text, quote=True)


def notification_id(action_id: str, template: str, status: str) -> str:
    digest = hashlib.sha256(f"{action_id}\x1f{template}\x1f{status}".encode()).hexdigest()
    return f"ntf_{digest[:24]}"


def _figures(action: Mapping[str, Any], policy: Policy) -> str:
    metric = action["metric"]
    what = DESCRIPTIONS.get(metric, metric)
    return (f"Over the last {action['window_days']} days, {action['numerator']} of your {action['denominator']} "
            f"orders counted as {what}: a {metric.replace('_', ' ')} of {pct(action['observed_rate'])}. "
            f"The standard is at most {pct(policy.metrics[metric].threshold_below)}.")


def render(action: Mapping[str, Any], template: str, policy: Policy, message: str | None = None) -> tuple[str, str]:
    """(subject, body) of a template for an action."""
    metric = action["metric"]
    seller = escape(action["seller_id"])
    steps = IMPROVE.get(metric, "")
    ref = f"Reference: {action['action_id']} (policy {action['policy_version']})."
    quoted = f'You wrote: "{escape(message)}"\n\n' if message and message.strip() else ""
    if template.startswith("warning_"):
        subject = f"Warning: your {metric.replace('_', ' ')} is below our standard"
        body = (f"Hello {seller},\n\n{_figures(action, policy)}\n\n"
                f"What to do: {steps}\n\n"
                f"This is a warning. If the rate stays above the standard for "
                f"{policy.ladder.escalate_after_ms // DAY_MS} more days, or goes above it again within "
                f"{policy.ladder.repeat_window_ms // DAY_MS} days, your account may be suspended after a "
                f"review. You can appeal this warning.\n\n{ref}")
    elif template in ("suspension_approved", "ban_approved"):
        subject = SUBJECTS[template]
        outcome = ("Your selling privileges are suspended" if template == "suspension_approved"
                   else "Your seller account is closed")
        basis = (_figures(action, policy) if action["rule_id"].startswith("ladder.")
                 else escape(action["reason"]))
        body = (f"Hello {seller},\n\n{outcome} after a review by our Trust & Safety team.\n\n{basis}\n\n"
                f"What to do: {steps}\n\nYou can appeal this decision.\n\n{ref}")
    elif template == "appeal_granted":
        subject = SUBJECTS[template]
        body = (f"Hello {seller},\n\n{quoted}We reviewed your appeal and overturned the "
                f"{action['action'].lower()} about your {metric.replace('_', ' ')}. It no longer counts "
                f"against your account.\n\n{ref}")
    elif template == "appeal_denied":
        subject = SUBJECTS[template]
        body = (f"Hello {seller},\n\n{quoted}We reviewed your appeal and upheld the "
                f"{action['action'].lower()} about your {metric.replace('_', ' ')}.\n\n"
                f"{_figures(action, policy)}\n\nWhat to do: {steps}\n\n{ref}")
    elif template == "reinstatement":
        subject = SUBJECTS[template]
        body = (f"Hello {seller},\n\nYour selling privileges are restored: the decision about your "
                f"{metric.replace('_', ' ')} was overturned on appeal. Thank you for your patience.\n\n{ref}")
    else:
        raise ValueError(f"unknown notification template {template!r}")
    return subject, body


def notification(action: Mapping[str, Any], template: str, policy: Policy, now: int,
                 message: str | None = None) -> dict[str, Any]:
    """The `Notification` record for an action (CONTRACT §3)."""
    subject, body = render(action, template, policy, message)
    return {
        "notification_id": notification_id(action["action_id"], template, action["status"]),
        "seller_id": action["seller_id"],
        "action_id": action["action_id"],
        "channels": list(CHANNELS),
        "template": template,
        "subject": subject,
        "body": body,
        "created_at": now,
    }


def at_risk_notification(seller_id: str, metric: str, num: int, den: int, episode: int, policy: Policy,
                         now: int) -> dict[str, Any]:
    """The `at_risk` Notification (no action): a metric nears its standard, once per episode."""
    mp = policy.metrics[metric]
    name = metric.replace("_", " ")
    what = DESCRIPTIONS.get(metric, metric)
    body = (f"Hello {escape(seller_id)},\n\nOver the last {policy.window_days} days, {num} of your {den} orders "
            f"counted as {what}: a {name} of {pct(num / den)}. The standard is at most "
            f"{pct(mp.threshold_below)}, and you are close to it.\n\nWhat to do: {IMPROVE.get(metric, '')}\n\n"
            f"Nothing has been taken against your account: this is a heads-up.")
    return {
        "notification_id": notification_id(f"{seller_id}\x1fat_risk\x1f{metric}\x1f{episode}", "at_risk", "ISSUED"),
        "seller_id": seller_id,
        "action_id": None,
        "channels": list(CHANNELS),
        "template": "at_risk",
        "subject": f"Your {name} is close to our standard",
        "body": body,
        "created_at": now,
    }
