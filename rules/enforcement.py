"""The enforcement ladder of CONTRACT §5, as pure functions.

Every rule is a function of (seller snapshot, enforcement history, policy, now, cause)
returning effects (rules.effects); nothing here touches Faust, Kafka or Redis. The
registry `RULES` is evaluated whenever a seller's figures change and when one of the
history's own deadlines (an escalation) comes due. The statuses and a seller's history
are in rules.history; review decisions and appeals, which move existing actions through
their statuses, in rules.reviews.

Identifiers are derived from what was decided, never from randomness or wall time:
`action_id` = hash(seller, rule, metric, action, episode number of that rule/metric/action
for the seller); `notification_id` = hash(action_id, template, status). A replay makes the
same decisions in the same order, hence the same ids.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from rules.effects import DecideAction, Effect, Notify, SetFlag
from rules.history import (
    APPROVED,
    AWAITING_REVIEW,
    BAN,
    ISSUED,
    PENDING_REVIEW,
    SUSPENSION,
    UPHELD,
    WARNING,
    History,
    Snapshot,
    stable_id,
)
from rules.metrics import BELOW, FLAWED_REASON_INDEX, METRICS, rate_of, standing_of, wilson_lower_bound
from rules.notifications import notification
from rules.policy import Policy
from rules.units import DAY_MS, pct

RULE_WARNING = "ladder.warning"
RULE_ESCALATION = "ladder.escalation"
RULE_REPEAT = "ladder.repeat"
RULE_BAN = "ladder.ban"


def enforceable(snapshot: Snapshot, i: int, policy: Policy) -> bool:
    """Metric i is BELOW and may be acted on: enforced, enough distinct defect buyers, and
    (with min_confidence) the Wilson lower bound of its rate above threshold_below."""
    mp = policy.metrics[METRICS[i]]
    num, den = snapshot.numerators[i], snapshot.denominators[i]
    if not mp.enforced or standing_of(num, den, mp) != BELOW:
        return False
    if snapshot.defect_buyers[i] < mp.min_defect_buyers:
        return False
    if mp.min_confidence is not None and wilson_lower_bound(num, den, mp.min_confidence) <= mp.threshold_below:
        return False
    return True


def may_act(figures: Any, policy: Policy) -> bool:
    """Whether any rule can act on a seller's figures (numerators, denominators,
    defect_buyers, flawed_by_reason, as in a Snapshot) when the seller has no enforcement
    history: a metric `enforceable`, or an absolute rule's count reached. When not,
    `evaluate` decides nothing for such a seller and need not run (the common case,
    settled in a few comparisons)."""
    numerators, denominators = figures.numerators, figures.denominators
    for i, mp in policy.enforced_metrics:
        den = denominators[i]
        if den and den >= mp.min_volume and numerators[i] / den > mp.threshold_below \
                and enforceable(figures, i, policy):
            return True
    by_reason = figures.flawed_by_reason
    for rule in policy.absolute_rules:
        if by_reason[FLAWED_REASON_INDEX[rule.refund_reason]] >= rule.min_count:
            return True
    return False


def _new_action(snapshot: Snapshot, history: History, policy: Policy, now: int, cause: str, *,
                rule_id: str, metric: str, action: str, status: str, numerator: int, denominator: int,
                threshold: float, reason: str, episodes: dict[str, int]) -> dict[str, Any]:
    key = f"{rule_id}|{metric}|{action}"
    episode = history.episodes.get(key, 0) + episodes.get(key, 0)
    episodes[key] = episodes.get(key, 0) + 1
    return {
        "action_id": stable_id("act", snapshot.seller_id, rule_id, metric, action, episode),
        "seller_id": snapshot.seller_id,
        "action": action,
        "status": status,
        "rule_id": rule_id,
        "metric": metric,
        "observed_rate": float(rate_of(numerator, denominator) or 0.0),
        "numerator": numerator,
        "denominator": denominator,
        "threshold": float(threshold),
        "window_days": policy.window_days,
        "evidence_order_ids": list(snapshot.evidence.get(metric, ()))[:50],
        "policy_version": policy.version,
        "reason": reason,
        "decided_at": now,
        "caused_by": cause,
    }


def ladder_rule(snapshot: Snapshot, history: History, policy: Policy, now: int, cause: str,
                episodes: dict[str, int]) -> list[Effect]:
    """Warning -> suspension -> ban, per metric (CONTRACT §5, 1-3)."""
    effects: list[Effect] = []
    ladder = policy.ladder
    for i, metric in enumerate(METRICS):
        below = enforceable(snapshot, i, policy)
        was_below = bool(history.flags.get(f"below:{metric}"))
        if below != was_below:
            effects.append(SetFlag(f"below:{metric}", below))
        if not below:
            continue
        mp = policy.metrics[metric]
        num, den = snapshot.numerators[i], snapshot.denominators[i]
        rate = num / den
        common = dict(metric=metric, numerator=num, denominator=den, threshold=mp.threshold_below,
                      episodes=episodes)
        warnings = history.of_metric(metric, WARNING)
        suspensions = history.of_metric(metric, SUSPENSION)
        bans = history.of_metric(metric, BAN)
        open_or_recent = [a for a in suspensions + bans
                          if a["status"] in AWAITING_REVIEW
                          or now - a["_"].get("approved_at", a["_"]["issued_at"]) <= ladder.repeat_window_ms]
        if not was_below:  # enters BELOW
            approved = [s for s in suspensions if s["status"] in (APPROVED, UPHELD)
                        and now - s["_"].get("approved_at", s["_"]["issued_at"]) <= ladder.repeat_window_ms]
            recent_warning = [w for w in warnings if now - w["_"]["issued_at"] <= ladder.repeat_window_ms]
            if approved:
                if any(b["status"] in AWAITING_REVIEW or b["status"] in (APPROVED, UPHELD) for b in bans):
                    continue
                record = _new_action(
                    snapshot, history, policy, now, cause, rule_id=RULE_BAN, action=BAN, status=PENDING_REVIEW,
                    reason=f"{metric} is {pct(rate)} ({num}/{den}), above the {pct(mp.threshold_below)} "
                           f"standard again within {ladder.repeat_window_ms // DAY_MS} days of an "
                           "approved suspension; a ban is proposed for review.", **common)
                effects.append(DecideAction(record))
            elif recent_warning:
                if open_or_recent:
                    continue
                record = _new_action(
                    snapshot, history, policy, now, cause, rule_id=RULE_REPEAT, action=SUSPENSION,
                    status=PENDING_REVIEW,
                    reason=f"{metric} is {pct(rate)} ({num}/{den}), above the {pct(mp.threshold_below)} "
                           f"standard again within {ladder.repeat_window_ms // DAY_MS} days of a "
                           "warning; a suspension is proposed for review.", **common)
                effects.append(DecideAction(record))
            else:
                if any(now - w["_"]["issued_at"] < ladder.warning_ttl_ms for w in warnings):
                    continue  # one warning per episode: none again while the last one is live (§5.1)
                record = _new_action(
                    snapshot, history, policy, now, cause, rule_id=RULE_WARNING, action=WARNING, status=ISSUED,
                    reason=f"{metric} is {pct(rate)} ({num}/{den}) over the last {policy.window_days} days, "
                           f"above the {pct(mp.threshold_below)} standard.", **common)
                effects.append(DecideAction(record))
                effects.append(Notify(notification(record, f"warning_{metric}", policy, now)))
            continue
        # still BELOW: escalate a warning that has not helped within escalate_after
        if warnings:
            w = max(warnings, key=lambda a: a["_"]["issued_at"])
            issued = w["_"]["issued_at"]
            if (not history.flags.get(f"escalated:{w['action_id']}")
                    and now >= issued + ladder.escalate_after_ms and not open_or_recent):
                effects.append(SetFlag(f"escalated:{w['action_id']}", True))
                record = _new_action(
                    snapshot, history, policy, now, cause, rule_id=RULE_ESCALATION, action=SUSPENSION,
                    status=PENDING_REVIEW,
                    reason=f"{metric} is still {pct(rate)} ({num}/{den}), above the "
                           f"{pct(mp.threshold_below)} standard, {ladder.escalate_after_ms // DAY_MS} "
                           "days after a warning; a suspension is proposed for review.", **common)
                effects.append(DecideAction(record))
    return effects


def absolute_rule(snapshot: Snapshot, history: History, policy: Policy, now: int, cause: str,
                  episodes: dict[str, int]) -> list[Effect]:
    """Counts of one refund reason in the window, whatever the volume (CONTRACT §5, 6)."""
    effects: list[Effect] = []
    flawed = METRICS.index("flawed_item_rate")
    for rule in policy.absolute_rules:
        count = snapshot.flawed_by_reason[FLAWED_REASON_INDEX[rule.refund_reason]]
        hit = count >= rule.min_count
        was = bool(history.flags.get(f"abs:{rule.id}"))
        if hit != was:
            effects.append(SetFlag(f"abs:{rule.id}", hit))
        if not hit or was:
            continue
        if any(a["status"] in AWAITING_REVIEW
               or now - a["_"].get("approved_at", a["_"]["issued_at"]) <= policy.ladder.repeat_window_ms
               for a in history.of_rule(rule.id)):
            continue
        den = snapshot.denominators[flawed]
        record = _new_action(
            snapshot, history, policy, now, cause, rule_id=rule.id, metric="flawed_item_rate", action=rule.action,
            status=PENDING_REVIEW, numerator=count, denominator=den, threshold=float(rule.min_count),
            reason=f"{count} orders refunded as {rule.refund_reason} in the last {policy.window_days} days "
                   f"(the limit is {rule.min_count - 1}); a {rule.action.lower()} is proposed for review.",
            episodes=episodes)
        effects.append(DecideAction(record))
    return effects


Rule = Callable[[Snapshot, History, Policy, int, str, dict[str, int]], list[Effect]]


class DuplicateRule(ValueError):
    """Two rules registered under one id."""


class RuleRegistry:
    """The enforcement rules by id, evaluated in the order they were registered. An id is
    given once: a second rule under the same id is refused."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def register(self, rule_id: str, rule: Rule) -> Rule:
        if rule_id in self._rules:
            raise DuplicateRule(f"a rule with id {rule_id!r} is already registered")
        self._rules[rule_id] = rule
        return rule

    def ids(self) -> tuple[str, ...]:
        return tuple(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())


RULES = RuleRegistry()
RULES.register("ladder", ladder_rule)
RULES.register("absolute", absolute_rule)


def evaluate(snapshot: Snapshot, history: History, policy: Policy, now: int, cause: str,
             rules: RuleRegistry = RULES) -> list[Effect]:
    """Every rule of the registry, in order; ids stay distinct within one evaluation."""
    episodes: dict[str, int] = {}
    effects: list[Effect] = []
    for rule in rules:
        effects.extend(rule(snapshot, history, policy, now, cause, episodes))
    return effects


def next_check(history: History, policy: Policy) -> int | None:
    """When an escalation may come due with no event: a live, unescalated warning on a
    metric still BELOW."""
    best: int | None = None
    for metric in METRICS:
        if not history.flags.get(f"below:{metric}"):
            continue
        for w in history.of_metric(metric, WARNING):
            if history.flags.get(f"escalated:{w['action_id']}"):
                continue
            due = w["_"]["issued_at"] + policy.ladder.escalate_after_ms
            if best is None or due < best:
                best = due
    return best
