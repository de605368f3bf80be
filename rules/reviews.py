"""Review decisions and appeals (CONTRACT §5, 4-5): they move existing actions through
their statuses; a re-delivered one publishes again what it produced, with the same ids."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rules.effects import DecideAction, Effect, Notify, RejectInput, SetFlag
from rules.history import (
    APPEALABLE,
    APPEALED,
    APPROVED,
    BAN,
    ISSUED,
    OVERTURNED,
    PENDING_REVIEW,
    REINSTATEMENT,
    REJECTED,
    SUSPENSION,
    UPHELD,
    WARNING,
    History,
    stable_id,
)
from rules.notifications import notification
from rules.policy import Policy

RULE_REINSTATEMENT = "appeal.reinstatement"


def _transition(action: Mapping[str, Any], status: str, at: int, cause: str, reason: str) -> dict[str, Any]:
    record = {k: v for k, v in action.items() if k != "_"}
    record.update(status=status, decided_at=at, caused_by=cause, reason=reason)
    return record


def _replay(action: Mapping[str, Any], history: History, event_id: str, policy: Policy) -> list[Effect] | None:
    """A re-delivered decision or appeal: publish again what it produced (same ids) when
    it was the action's last transition; nothing when a later one superseded it."""
    if event_id not in action["_"].get("events", ()):
        return None
    if action["_"].get("event") != event_id:
        return []
    effects = republish(action, history, policy)
    for other in history.actions.values():
        if other["caused_by"] == event_id and other["action"] == REINSTATEMENT:
            effects.extend(republish(other, history, policy))
    return effects


_TEMPLATE_OF = {
    (SUSPENSION, APPROVED): "suspension_approved",
    (BAN, APPROVED): "ban_approved",
    (WARNING, OVERTURNED): "appeal_granted", (SUSPENSION, OVERTURNED): "appeal_granted",
    (BAN, OVERTURNED): "appeal_granted",
    (WARNING, UPHELD): "appeal_denied", (SUSPENSION, UPHELD): "appeal_denied", (BAN, UPHELD): "appeal_denied",
}


def republish(action: Mapping[str, Any], history: History, policy: Policy) -> list[Effect]:
    """An action's latest record and the notification that went with it, as first made."""
    record = {k: v for k, v in action.items() if k != "_"}
    effects: list[Effect] = [DecideAction(record)]
    if record["action"] == WARNING and record["status"] == ISSUED:
        template: str | None = f"warning_{record['metric']}"
    elif record["action"] == REINSTATEMENT:
        template = "reinstatement"
    else:
        template = _TEMPLATE_OF.get((record["action"], record["status"]))
    if template:
        effects.append(Notify(notification(record, template, policy, record["decided_at"],
                                           history.flags.get(f"message:{record['action_id']}"))))
    return effects


def decide(history: History, r: Mapping[str, Any], policy: Policy) -> list[Effect]:
    """A `ReviewDecision`: decide a pending action, or a pending appeal (CONTRACT §5, 4-5)."""
    action = history.actions.get(r["action_id"])
    if action is None:
        return [RejectInput("unknown_action", f"no action {r['action_id']} for seller {r['seller_id']}")]
    again = _replay(action, history, r["event_id"], policy)
    if again is not None:
        return again
    status, at, cause = action["status"], r["decided_at"], r["event_id"]
    approve = r["decision"] == "APPROVE"
    kind = action["action"].lower()
    effects: list[Effect] = []
    if status == PENDING_REVIEW:
        if approve:
            record = _transition(action, APPROVED, at, cause, f"The {kind} was approved on review.")
            effects += [DecideAction(record),
                        Notify(notification(record, _TEMPLATE_OF[(action["action"], APPROVED)], policy, at))]
        else:
            effects.append(DecideAction(_transition(action, REJECTED, at, cause,
                                                    f"The proposed {kind} was rejected on review.")))
        return effects
    if status == APPEALED:
        message = history.flags.get(f"message:{r['action_id']}")
        if approve:
            record = _transition(action, OVERTURNED, at, cause, f"The {kind} was overturned on appeal.")
            effects += [DecideAction(record), Notify(notification(record, "appeal_granted", policy, at, message))]
            if action["action"] in (SUSPENSION, BAN):
                reinstated = _transition(action, ISSUED, at, cause,
                                         f"Selling privileges are restored: the {kind} was overturned on appeal.")
                reinstated.update(action=REINSTATEMENT, rule_id=RULE_REINSTATEMENT,
                                  action_id=stable_id("act", action["action_id"], REINSTATEMENT))
                effects += [DecideAction(reinstated),
                            Notify(notification(reinstated, "reinstatement", policy, at))]
        else:
            record = _transition(action, UPHELD, at, cause, f"The {kind} was upheld on appeal.")
            effects += [DecideAction(record), Notify(notification(record, "appeal_denied", policy, at, message))]
        return effects
    return [RejectInput("not_decidable", f"action {r['action_id']} is {status}: nothing to decide")]


def appeal(history: History, r: Mapping[str, Any]) -> list[Effect]:
    """An `AppealFiled`: an action in force becomes APPEALED, waiting for review."""
    action = history.actions.get(r["action_id"])
    if action is None:
        return [RejectInput("unknown_action", f"no action {r['action_id']} for seller {r['seller_id']}")]
    if r["event_id"] in action["_"].get("events", ()):
        if action["_"].get("event") != r["event_id"]:
            return []  # superseded by a later transition
        return [DecideAction({k: v for k, v in action.items() if k != "_"})]
    if action["status"] not in APPEALABLE or action["action"] == REINSTATEMENT:
        return [RejectInput("not_appealable", f"action {r['action_id']} is {action['status']}: it cannot be appealed")]
    record = _transition(action, APPEALED, r["filed_at"], r["event_id"],
                         f"The seller appealed the {action['action'].lower()}.")
    return [DecideAction(record), SetFlag(f"message:{r['action_id']}", r.get("message") or " ")]
