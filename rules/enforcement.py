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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
from rules.notifications import at_risk_notification, notification
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
    for i, mp in policy.notified_at_risk:
        if mp.is_at_risk(numerators[i], denominators[i]):
            return True
    by_reason = figures.flawed_by_reason
    return any(by_reason[FLAWED_REASON_INDEX[rule.refund_reason]] >= rule.min_count
               for rule in policy.absolute_rules)


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


@dataclass(frozen=True)
class Rung:
    """One metric of one seller at one evaluation, as the ladder's steps see it."""

    snapshot: Snapshot
    history: History
    policy: Policy
    now: int
    cause: str
    episodes: dict[str, int]
    metric: str
    index: int
    warnings: list[dict[str, Any]]
    suspensions: list[dict[str, Any]]
    bans: list[dict[str, Any]]

    @property
    def figures(self) -> str:
        num, den = self.snapshot.numerators[self.index], self.snapshot.denominators[self.index]
        return f"{self.metric} is {pct(num / den)} ({num}/{den})"

    @property
    def standard(self) -> str:
        return f"the {pct(self.policy.metrics[self.metric].threshold_below)} standard"

    def recent(self, action: dict[str, Any]) -> bool:
        """Approved (or issued) within the repeat window."""
        return self.now - action["_"].get("approved_at", action["_"]["issued_at"]) <= \
            self.policy.ladder.repeat_window_ms

    def open_or_recent(self) -> bool:
        """A suspension or ban waiting for review, or one approved within the repeat window."""
        return any(a["status"] in AWAITING_REVIEW or self.recent(a) for a in self.suspensions + self.bans)

    def action(self, rule_id: str, action: str, status: str, reason: str) -> dict[str, Any]:
        i = self.index
        return _new_action(
            self.snapshot, self.history, self.policy, self.now, self.cause, rule_id=rule_id, action=action,
            status=status, reason=reason, metric=self.metric, numerator=self.snapshot.numerators[i],
            denominator=self.snapshot.denominators[i],
            threshold=self.policy.metrics[self.metric].threshold_below, episodes=self.episodes)


def ban_step(r: Rung) -> list[Effect] | None:
    """BELOW again within the repeat window of an approved suspension: a ban, for review
    (none while a ban is pending or in force). None: the step does not apply."""
    if not any(s["status"] in (APPROVED, UPHELD) and r.recent(s) for s in r.suspensions):
        return None
    if any(b["status"] in AWAITING_REVIEW or b["status"] in (APPROVED, UPHELD) for b in r.bans):
        return []
    window = r.policy.ladder.repeat_window_ms // DAY_MS
    return [DecideAction(r.action(
        RULE_BAN, BAN, PENDING_REVIEW,
        f"{r.figures}, above {r.standard} again within {window} days of an approved suspension; "
        "a ban is proposed for review."))]


def repeat_step(r: Rung) -> list[Effect] | None:
    """BELOW again within the repeat window of a warning: a suspension, for review."""
    if not any(r.now - w["_"]["issued_at"] <= r.policy.ladder.repeat_window_ms for w in r.warnings):
        return None
    if r.open_or_recent():
        return []
    window = r.policy.ladder.repeat_window_ms // DAY_MS
    return [DecideAction(r.action(
        RULE_REPEAT, SUSPENSION, PENDING_REVIEW,
        f"{r.figures}, above {r.standard} again within {window} days of a warning; "
        "a suspension is proposed for review."))]


def warning_step(r: Rung) -> list[Effect]:
    """Entering BELOW otherwise: a warning and its notification, unless the last warning for
    the metric is still live (`warning_ttl`, CONTRACT §5.1)."""
    if any(r.now - w["_"]["issued_at"] < r.policy.ladder.warning_ttl_ms for w in r.warnings):
        return []
    record = r.action(
        RULE_WARNING, WARNING, ISSUED,
        f"{r.figures} over the last {r.policy.window_days} days, above {r.standard}.")
    return [DecideAction(record), Notify(notification(record, f"warning_{r.metric}", r.policy, r.now))]


def escalation_step(r: Rung) -> list[Effect]:
    """Still BELOW `escalate_after` after the latest warning: a suspension, for review, once."""
    if not r.warnings:
        return []
    w = max(r.warnings, key=lambda a: a["_"]["issued_at"])
    ladder = r.policy.ladder
    if (r.history.flags.get(f"escalated:{w['action_id']}")
            or r.now < w["_"]["issued_at"] + ladder.escalate_after_ms or r.open_or_recent()):
        return []
    num, den = r.snapshot.numerators[r.index], r.snapshot.denominators[r.index]
    return [SetFlag(f"escalated:{w['action_id']}", True), DecideAction(r.action(
        RULE_ESCALATION, SUSPENSION, PENDING_REVIEW,
        f"{r.metric} is still {pct(num / den)} ({num}/{den}), above {r.standard}, "
        f"{ladder.escalate_after_ms // DAY_MS} days after a warning; a suspension is proposed for review."))]


# On entering BELOW the first step that applies decides; while BELOW, the escalation.
ENTERING_STEPS = (ban_step, repeat_step)


def ladder_rule(snapshot: Snapshot, history: History, policy: Policy, now: int, cause: str,
                episodes: dict[str, int]) -> list[Effect]:
    """Warning -> suspension -> ban, per metric (CONTRACT §5, 1-3), as its named steps."""
    effects: list[Effect] = []
    for i, metric in enumerate(METRICS):
        below = enforceable(snapshot, i, policy)
        was_below = bool(history.flags.get(f"below:{metric}"))
        if below != was_below:
            effects.append(SetFlag(f"below:{metric}", below))
        if not below:
            continue
        rung = Rung(snapshot, history, policy, now, cause, episodes, metric, i,
                    history.of_metric(metric, WARNING), history.of_metric(metric, SUSPENSION),
                    history.of_metric(metric, BAN))
        if was_below:
            effects.extend(escalation_step(rung))
            continue
        for step in ENTERING_STEPS:
            decided = step(rung)
            if decided is not None:
                effects.extend(decided)
                break
        else:
            effects.extend(warning_step(rung))
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


def at_risk_rule(snapshot: Snapshot, history: History, policy: Policy, now: int, cause: str,
                 episodes: dict[str, int]) -> list[Effect]:
    """Metrics with `notify_at_risk`: one `at_risk` notification when the rate comes within
    the policy's margin of its standard; the episode lasts until the rate falls back under
    the margin (a metric gone BELOW is still in it: the warning says the rest)."""
    effects: list[Effect] = []
    for i, mp in policy.notified_at_risk:
        num, den = snapshot.numerators[i], snapshot.denominators[i]
        risky = mp.is_at_risk(num, den)
        flag = f"at_risk:{mp.name}"
        was = bool(history.flags.get(flag))
        in_episode = risky or (was and den >= mp.min_volume and standing_of(num, den, mp) == BELOW)
        if in_episode == was:
            continue
        effects.append(SetFlag(flag, in_episode))
        if in_episode:
            episode = int(history.flags.get(f"at_risk_episodes:{mp.name}", 0)) + 1
            effects += [SetFlag(f"at_risk_episodes:{mp.name}", episode),
                        Notify(at_risk_notification(snapshot.seller_id, mp.name, num, den, episode, policy, now))]
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
RULES.register("at_risk", at_risk_rule)


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
