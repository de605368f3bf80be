"""The review console's pure parts: the SLA clock and order of cases, decision ids, the
timeline's de-duplication."""

from __future__ import annotations

import dataclasses

from rules.policy import Review, load_policy
from web.review import ReviewPages, case_of, decision_event_id, duration
from web.review_store import Claim

POLICY = dataclasses.replace(load_policy("rules/policy.yaml"),
                             review=Review({"SUSPENSION": 24.0, "BAN": 12.0, "APPEAL": 72.0}, 30.0))
HOUR = 3_600_000
NOW = 1_800_000_000_000


def action(action_id: str, kind: str, status: str, since: int) -> dict:
    return {"action_id": action_id, "seller_id": "s", "action": kind, "status": status, "decided_at": since,
            "metric": "late_dropoff_rate"}


def test_a_case_runs_on_its_kinds_sla_and_says_when_it_is_overdue() -> None:
    fresh = case_of(action("a", "SUSPENSION", "PENDING_REVIEW", NOW - 2 * HOUR), POLICY, NOW, None)
    assert fresh["kind"] == "SUSPENSION" and fresh["deadline"] == NOW + 22 * HOUR and not fresh["overdue"]
    assert fresh["left"] == "22h 0m" and fresh["age"] == "2h 0m" and fresh["holder"] is None
    late = case_of(action("b", "BAN", "PENDING_REVIEW", NOW - 13 * HOUR), POLICY, NOW, Claim("rv", NOW, NOW + 1))
    assert late["overdue"] and late["left"] == "1h 0m" and late["holder"] == "rv"
    appeal = case_of(action("c", "WARNING", "APPEALED", NOW - HOUR), POLICY, NOW, None)
    assert appeal["kind"] == "APPEAL" and appeal["deadline"] == NOW + 71 * HOUR


def test_cases_are_ordered_by_sla_deadline_not_by_age() -> None:
    # a ban waiting 10 h (due in 2 h) comes before a suspension waiting 20 h (due in 4 h)
    cases = [case_of(action("susp", "SUSPENSION", "PENDING_REVIEW", NOW - 20 * HOUR), POLICY, NOW, None),
             case_of(action("ban", "BAN", "PENDING_REVIEW", NOW - 10 * HOUR), POLICY, NOW, None)]
    cases.sort(key=lambda c: (c["deadline"], c["since"], c["action_id"]))
    assert [c["action_id"] for c in cases] == ["ban", "susp"]
    backlog = ReviewPages.backlog(cases, NOW)
    assert [(b["kind"], b["count"], b["oldest"]) for b in backlog] == [
        ("SUSPENSION", 1, "20h 0m"), ("BAN", 1, "10h 0m"), ("APPEAL", 0, "—")]


def test_one_decision_id_per_action_status_and_reviewer() -> None:
    assert decision_event_id("a", "PENDING_REVIEW", "rv") == decision_event_id("a", "PENDING_REVIEW", "rv")
    assert decision_event_id("a", "PENDING_REVIEW", "rv") != decision_event_id("a", "APPEALED", "rv")
    assert decision_event_id("a", "PENDING_REVIEW", "rv") != decision_event_id("a", "PENDING_REVIEW", "other")


def test_the_timeline_shows_each_status_change_once_in_time_order() -> None:
    first = action("a", "SUSPENSION", "PENDING_REVIEW", 10)
    approved = dict(first, status="APPROVED", decided_at=20)
    assert ReviewPages.dedup([approved, first, dict(first), approved]) == [first, approved]


def test_durations_read_as_people_say_them() -> None:
    assert [duration(ms) for ms in (59_000, 7 * 60_000, 5 * HOUR + 12 * 60_000, 76 * HOUR)] == [
        "0m", "7m", "5h 12m", "3d 4h"]
