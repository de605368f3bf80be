"""The enforcement rules as tables: (snapshot, history, policy, now) -> effects."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rules.effects import DecideAction, Notify, RejectInput, SetFlag
from rules.enforcement import evaluate, next_check
from rules.history import History, Snapshot
from rules.metrics import METRICS
from rules.policy import load_policy
from rules.reviews import appeal, decide

POLICY = load_policy("rules/policy.yaml")
DAY = 86_400_000
T0 = 1_790_000_000_000
SELLER = "seller-7"
LATE = "late_dropoff_rate"


def snap(metric: str = LATE, num: int = 30, den: int = 300, buyers: int | None = None,
         counterfeit: int = 0) -> Snapshot:
    nums, dens, defect_buyers = [0] * 5, [0] * 5, [0] * 5
    i = METRICS.index(metric)
    nums[i], dens[i] = num, den
    defect_buyers[i] = num if buyers is None else buyers
    return Snapshot(SELLER, tuple(nums), tuple(dens), tuple(defect_buyers), (0, 0, 0, counterfeit),
                    {metric: [f"o{k}" for k in range(min(num, 60))]})


GOOD = snap(num=3, den=300)  # 1 %: exceeds the standard


def run(snapshot: Snapshot, history: History, now: int, policy: Any = POLICY, cause: str = "ev") -> list:
    effects = evaluate(snapshot, history, policy, now, cause)
    history.apply(effects)
    return effects


def actions(effects: list) -> list[tuple[str, str, str]]:
    return [(e.record["action"], e.record["status"], e.record["rule_id"]) for e in effects
            if isinstance(e, DecideAction)]


def notices(effects: list) -> list[str]:
    return [e.record["template"] for e in effects if isinstance(e, Notify)]


def warned(at: int = T0) -> History:
    """A history with a warning issued at `at`, the metric still below."""
    h = History()
    run(snap(), h, at)
    return h


def with_status(h: History, action: str, status: str, at: int) -> History:
    """Move the seller's latest `action` to `status` at `at` (as a review would)."""
    a = max((a for a in h.actions.values() if a["action"] == action), key=lambda a: a["_"]["issued_at"])
    record = {k: v for k, v in a.items() if k != "_"}
    record.update(status=status, decided_at=at, caused_by=f"review-{status}")
    h.apply([DecideAction(record)])
    return h


def test_entering_below_issues_one_warning_with_its_notification() -> None:
    h = History()
    effects = run(snap(), h, T0, cause="ev-late-30")
    assert actions(effects) == [("WARNING", "ISSUED", "ladder.warning")]
    assert notices(effects) == [f"warning_{LATE}"]
    record = next(e.record for e in effects if isinstance(e, DecideAction))
    assert record["metric"] == LATE and record["numerator"] == 30 and record["denominator"] == 300
    assert record["observed_rate"] == pytest.approx(0.1) and record["threshold"] == 0.04
    assert record["window_days"] == 30 and record["policy_version"] == POLICY.version
    assert record["evidence_order_ids"] == [f"o{k}" for k in range(30)]
    assert record["caused_by"] == "ev-late-30" and record["decided_at"] == T0
    note = next(e.record for e in effects if isinstance(e, Notify))
    assert note["action_id"] == record["action_id"] and note["channels"] == ["EMAIL", "PUSH"]
    assert "10.0 %" in note["body"] and "4.0 %" in note["body"] and "30 days" in note["body"]
    assert "What to do:" in note["body"]


@pytest.mark.parametrize("label,snapshot,policy", [
    ("insufficient data: 100 % of 5 orders", snap(num=5, den=5), POLICY),
    ("one buyer's ten defects in one show", snap(num=10, den=100, buyers=1), POLICY),
    ("7.5 % of 40: not confidently above 4 %", snap(num=3, den=40), POLICY),
    ("metric not enforced", snap(), dataclasses.replace(POLICY, metrics={
        **POLICY.metrics, LATE: dataclasses.replace(POLICY.metrics[LATE], enforced=False)})),
    ("meets the standard", snap(num=9, den=300), POLICY),
])
def test_no_action(label: str, snapshot: Snapshot, policy: Any) -> None:
    h = History()
    effects = run(snapshot, h, T0, policy)
    assert actions(effects) == [] and notices(effects) == [], label


def test_min_confidence_acts_on_a_large_enough_sample() -> None:
    no_confidence = dataclasses.replace(POLICY, metrics={
        **POLICY.metrics, LATE: dataclasses.replace(POLICY.metrics[LATE], min_confidence=None)})
    assert actions(run(snap(num=3, den=40), History(), T0, no_confidence)) == [
        ("WARNING", "ISSUED", "ladder.warning")]
    assert actions(run(snap(num=3, den=40), History(), T0)) == []
    assert actions(run(snap(num=30, den=300), History(), T0)) == [("WARNING", "ISSUED", "ladder.warning")]


def test_ladder_steps() -> None:
    ladder = POLICY.ladder
    h = warned(T0)
    # cooldown: still below, the warning is live, escalate_after not reached -> nothing
    assert actions(run(snap(num=40), h, T0 + DAY)) == []
    assert next_check(h, POLICY) == T0 + ladder.escalate_after_ms
    # still below escalate_after after the warning -> suspension for review, no notification
    effects = run(snap(num=41), h, T0 + ladder.escalate_after_ms)
    assert actions(effects) == [("SUSPENSION", "PENDING_REVIEW", "ladder.escalation")]
    assert notices(effects) == []
    assert next_check(h, POLICY) is None
    # ... and only once
    assert actions(run(snap(num=42), h, T0 + ladder.escalate_after_ms + DAY)) == []


def test_below_again_within_the_repeat_window_proposes_a_suspension() -> None:
    h = warned(T0)
    assert actions(run(GOOD, h, T0 + 5 * DAY)) == []  # recovers
    effects = run(snap(), h, T0 + 20 * DAY)  # below again, 20 days after the warning
    assert actions(effects) == [("SUSPENSION", "PENDING_REVIEW", "ladder.repeat")]
    assert notices(effects) == []


def test_below_again_after_the_repeat_window_is_a_new_warning_with_a_new_id() -> None:
    h = warned(T0)
    first = next(iter(h.actions))
    run(GOOD, h, T0 + 10 * DAY)
    effects = run(snap(), h, T0 + 100 * DAY)
    assert actions(effects) == [("WARNING", "ISSUED", "ladder.warning")]
    assert next(e.record["action_id"] for e in effects if isinstance(e, DecideAction)) != first


def test_no_second_warning_while_the_first_is_live() -> None:
    """CONTRACT §5.1 `warning_ttl`: with a repeat window shorter than the TTL, BELOW again
    after the window but within the TTL of the warning acts on nothing; once the warning is
    older than the TTL (and the seller was out of BELOW in between), a second one is issued."""
    policy = dataclasses.replace(POLICY, ladder=dataclasses.replace(
        POLICY.ladder, repeat_window_ms=7 * DAY, warning_ttl_ms=30 * DAY, escalate_after_ms=365 * DAY))
    h = History()
    first = run(snap(), h, T0, policy)
    assert actions(first) == [("WARNING", "ISSUED", "ladder.warning")]
    run(GOOD, h, T0 + 5 * DAY, policy)
    assert actions(run(snap(), h, T0 + 20 * DAY, policy)) == []  # the warning is live: nothing
    assert actions(run(snap(), h, T0 + 40 * DAY, policy)) == []  # still BELOW, never out in between
    run(GOOD, h, T0 + 41 * DAY, policy)
    second = run(snap(), h, T0 + 42 * DAY, policy)
    assert actions(second) == [("WARNING", "ISSUED", "ladder.warning")]
    assert notices(second) == [f"warning_{LATE}"]
    assert {e.record["action_id"] for e in first + second if isinstance(e, DecideAction)}.__len__() == 2


def test_below_again_after_an_approved_suspension_proposes_a_ban() -> None:
    h = warned(T0)
    run(snap(), h, T0 + 14 * DAY)
    with_status(h, "SUSPENSION", "APPROVED", T0 + 15 * DAY)
    run(GOOD, h, T0 + 20 * DAY)
    effects = run(snap(), h, T0 + 40 * DAY)
    assert actions(effects) == [("BAN", "PENDING_REVIEW", "ladder.ban")]


def test_overturned_warning_does_not_count_as_history() -> None:
    h = warned(T0)
    with_status(h, "WARNING", "OVERTURNED", T0 + DAY)
    run(GOOD, h, T0 + 2 * DAY)
    # below again within the repeat window: a warning again, not a suspension
    assert actions(run(snap(), h, T0 + 10 * DAY)) == [("WARNING", "ISSUED", "ladder.warning")]


def test_rejected_suspension_does_not_count_as_history() -> None:
    h = warned(T0)
    run(snap(), h, T0 + 14 * DAY)
    with_status(h, "SUSPENSION", "REJECTED", T0 + 15 * DAY)
    run(GOOD, h, T0 + 16 * DAY)
    # not a ban (the suspension was rejected), but the warning still counts: a suspension
    assert actions(run(snap(), h, T0 + 30 * DAY)) == [("SUSPENSION", "PENDING_REVIEW", "ladder.repeat")]


def test_overturned_suspension_does_not_lead_to_a_ban() -> None:
    h = warned(T0)
    run(snap(), h, T0 + 14 * DAY)
    with_status(h, "SUSPENSION", "OVERTURNED", T0 + 15 * DAY)
    run(GOOD, h, T0 + 16 * DAY)
    assert actions(run(snap(), h, T0 + 30 * DAY)) == [("SUSPENSION", "PENDING_REVIEW", "ladder.repeat")]


def test_absolute_counterfeit_rule_acts_whatever_the_volume() -> None:
    h = History()
    effects = run(snap("flawed_item_rate", num=3, den=4, counterfeit=3), h, T0)
    assert actions(effects) == [("SUSPENSION", "PENDING_REVIEW", "counterfeit_refunds")]
    record = next(e.record for e in effects if isinstance(e, DecideAction))
    assert record["numerator"] == 3 and record["threshold"] == 3.0
    # two counterfeit refunds: nothing
    assert actions(run(snap("flawed_item_rate", num=2, den=4, counterfeit=2), History(), T0)) == []
    # still three: no second proposal
    assert actions(run(snap("flawed_item_rate", num=3, den=5, counterfeit=3), h, T0 + DAY)) == []


def test_flags_only_change_on_transitions() -> None:
    h = History()
    assert [e for e in run(GOOD, h, T0) if isinstance(e, SetFlag)] == []
    assert SetFlag(f"below:{LATE}", True) in run(snap(), h, T0 + DAY)
    assert [e for e in run(snap(num=50), h, T0 + 2 * DAY) if isinstance(e, SetFlag)] == []


# --- review decisions and appeals ---------------------------------------------------------

def pending_suspension() -> tuple[History, str]:
    h = warned(T0)
    run(snap(), h, T0 + 14 * DAY)
    aid = next(a for a, r in h.actions.items() if r["action"] == "SUSPENSION")
    return h, aid


def review(h: History, aid: str, decision: str, event: str, at: int) -> list:
    effects = decide(h, dict(event_id=event, action_id=aid, seller_id=SELLER, reviewer_id="rev-1",
                             decision=decision, note="ok", decided_at=at), POLICY)
    h.apply(effects)
    return effects


def file_appeal(h: History, aid: str, event: str, at: int, message: str = "I shipped on time") -> list:
    effects = appeal(h, dict(event_id=event, appeal_id="ap-1", action_id=aid, seller_id=SELLER,
                             message=message, filed_at=at))
    h.apply(effects)
    return effects


def test_approve_then_appeal_granted_reinstates() -> None:
    h, aid = pending_suspension()
    effects = review(h, aid, "APPROVE", "d1", T0 + 15 * DAY)
    assert actions(effects) == [("SUSPENSION", "APPROVED", "ladder.escalation")]
    assert notices(effects) == ["suspension_approved"]
    effects = file_appeal(h, aid, "a1", T0 + 16 * DAY, 'Not fair <b>"really"</b>\nsecond line')
    assert actions(effects) == [("SUSPENSION", "APPEALED", "ladder.escalation")]
    effects = review(h, aid, "APPROVE", "d2", T0 + 17 * DAY)
    assert actions(effects) == [("SUSPENSION", "OVERTURNED", "ladder.escalation"),
                                ("REINSTATEMENT", "ISSUED", "appeal.reinstatement")]
    assert notices(effects) == ["appeal_granted", "reinstatement"]
    granted = next(e.record for e in effects if isinstance(e, Notify))
    assert "&lt;b&gt;&quot;really&quot;&lt;/b&gt; second line" in granted["body"]
    assert "<b>" not in granted["body"]
    ids = {e.record.get("action_id") for e in effects}
    assert all(isinstance(i, str) and i.startswith("act_") for i in ids)


def test_reject_and_appeal_denied() -> None:
    h, aid = pending_suspension()
    effects = review(h, aid, "REJECT", "d1", T0 + 15 * DAY)
    assert actions(effects) == [("SUSPENSION", "REJECTED", "ladder.escalation")] and notices(effects) == []
    w = next(a for a, r in h.actions.items() if r["action"] == "WARNING")
    file_appeal(h, w, "a1", T0 + 16 * DAY)
    effects = review(h, w, "REJECT", "d2", T0 + 17 * DAY)
    assert actions(effects) == [("WARNING", "UPHELD", "ladder.warning")]
    assert notices(effects) == ["appeal_denied"]


@pytest.mark.parametrize("label,setup,reason", [
    ("unknown action", lambda h, aid: "act_nope", "unknown_action"),
    ("an issued warning is not reviewed", lambda h, aid: next(a for a, r in h.actions.items()
                                                              if r["action"] == "WARNING"), "not_decidable"),
    ("already decided", lambda h, aid: (review(h, aid, "APPROVE", "d0", T0 + 15 * DAY), aid)[1],
     "not_decidable"),
])
def test_undecidable_decisions_are_rejected(label: str, setup: Any, reason: str) -> None:
    h, aid = pending_suspension()
    target = setup(h, aid)
    effects = decide(h, dict(event_id="d9", action_id=target, seller_id=SELLER, reviewer_id="r",
                             decision="APPROVE", note="", decided_at=T0 + 20 * DAY), POLICY)
    assert [e.reason for e in effects if isinstance(e, RejectInput)] == [reason], label


def test_appeal_of_a_pending_action_is_rejected() -> None:
    h, aid = pending_suspension()
    effects = appeal(h, dict(event_id="a1", appeal_id="ap", action_id=aid, seller_id=SELLER, message="",
                             filed_at=T0 + 15 * DAY))
    assert [e.reason for e in effects if isinstance(e, RejectInput)] == ["not_appealable"]


def test_redelivered_decision_publishes_the_same_records_again() -> None:
    h, aid = pending_suspension()
    first = review(h, aid, "APPROVE", "d1", T0 + 15 * DAY)
    again = review(h, aid, "APPROVE", "d1", T0 + 15 * DAY)
    assert [dict(e.record) for e in again] == [dict(e.record) for e in first]
    file_appeal(h, aid, "a1", T0 + 16 * DAY)
    # the old decision re-delivered after the appeal: superseded, nothing happens
    assert review(h, aid, "APPROVE", "d1", T0 + 15 * DAY) == []
    assert h.actions[aid]["status"] == "APPEALED"


def test_the_rule_registry_refuses_a_duplicate_id_and_keeps_its_order() -> None:
    from rules.enforcement import RULES, DuplicateRule, RuleRegistry, ladder_rule

    assert RULES.ids() == ("ladder", "absolute", "at_risk")
    from rules.enforcement import ENTERING_STEPS, ban_step, repeat_step
    assert (ban_step, repeat_step) == ENTERING_STEPS
    registry = RuleRegistry()
    registry.register("ladder", ladder_rule)
    with pytest.raises(DuplicateRule, match="'ladder'"):
        registry.register("ladder", ladder_rule)
    # a registry of the ladder alone: the counterfeit rule does not act
    h = History()
    counterfeit = snap(num=3, den=300, counterfeit=3)
    assert actions(evaluate(counterfeit, h, POLICY, T0, "ev", rules=registry)) == []
    assert actions(evaluate(counterfeit, History(), POLICY, T0, "ev")) != []


def _notifying_at_risk() -> Any:
    metrics = dict(POLICY.metrics)
    metrics[LATE] = dataclasses.replace(metrics[LATE], notify_at_risk=True)
    return dataclasses.replace(POLICY, metrics=metrics)


@pytest.mark.parametrize(("num", "at_risk"), [(31, False), (32, True), (40, True), (41, False)])
def test_at_risk_is_from_the_margin_up_to_the_standard(num: int, at_risk: bool) -> None:
    # late_dropoff_rate: threshold_below 4 %, at_risk 0.8 -> at risk from 3.2 % up to 4 % included
    assert POLICY.metrics[LATE].is_at_risk(num, 1000) is at_risk


def test_an_at_risk_notification_is_sent_once_per_episode_when_the_policy_asks() -> None:
    policy = _notifying_at_risk()
    h = History()
    assert notices(run(snap(num=35, den=1000), h, T0, policy)) == ["at_risk"]
    assert notices(run(snap(num=38, den=1000), h, T0 + DAY, policy)) == []  # same episode
    assert notices(run(snap(num=10, den=1000), h, T0 + 2 * DAY, policy)) == []  # episode over
    again = run(snap(num=36, den=1000), h, T0 + 3 * DAY, policy)
    assert notices(again) == ["at_risk"]
    first = next(e for e in run(snap(num=35, den=1000), History(), T0, policy) if isinstance(e, Notify))
    second = next(e for e in again if isinstance(e, Notify))
    assert first.record["notification_id"] != second.record["notification_id"]
    assert first.record["action_id"] is None and "3.5" in first.record["body"]


def test_no_at_risk_notification_without_the_policy_switch() -> None:
    assert notices(run(snap(num=35, den=1000), History(), T0)) == []
