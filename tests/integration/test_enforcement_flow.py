"""The enforcement ladder end to end through the real broker, on the event clock:
warning -> cooldown -> escalation for review -> approval -> appeal -> overturned, reinstated."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import api_headers
from tests.support.kafka import consume_until, producer
from tests.support.ladder import (
    DAY,
    HOUR,
    ORDERS,
    OTHER,
    SELLER,
    SHIP_BY,
    WED,
    Outputs,
    codec,
    decision,
    order,
    policy_file,
    scan,
    settle,
)

pytestmark = pytest.mark.integration
def test_enforcement_ladder_end_to_end(worker_factory: type, tmp_path: Path) -> None:
    w = worker_factory.start(WARDEN_PARTITIONS="1", WARDEN_TICK_INTERVAL="0.2",
                             WARDEN_POLICY=str(policy_file(tmp_path)))
    p = producer(w.env["KAFKA_BOOTSTRAP_SERVERS"])
    topic = w.topic
    key = SELLER.encode()
    enforcements = Outputs(w, "trust-safety.enforcements")
    notifications = Outputs(w, "trust-safety.notifications")
    metrics = Outputs(w, "trust-safety.seller-metrics")

    # 40 orders on Wednesday; 30 handed to the carrier before ship_by.
    for i, oid in enumerate(ORDERS):
        p.produce(topic("marketplace.orders"), key=key, value=order(SELLER, oid, WED + i * 60_000))
    for oid in ORDERS[:30]:
        p.produce(topic("marketplace.shipment-scans"), key=key, value=scan(oid, SHIP_BY - 8 * HOUR, f"ev-ok-{oid}"))
    p.flush()
    metrics.until(lambda rs: any(r["seller_id"] == SELLER and r["cancellation_rate"]["denominator"] == 40
                                 for r in rs))
    time.sleep(0.5)  # every topic read to its end: the clock is no longer held

    # Late shipments, one at a time: the 2nd makes 2/40 = 5 % > 4 %.
    for k in (1, 2):
        p.produce(topic("marketplace.shipment-scans"), key=key,
                  value=scan(ORDERS[29 + k], SHIP_BY + k * HOUR, f"ev-late-{k}"))
        p.flush()
        time.sleep(0.3)
    actions = enforcements.until(lambda rs: len(rs) >= 1)
    notes = notifications.until(lambda rs: len(rs) >= 1)
    assert len(actions) == 1 and len(notes) == 1
    warning = actions[0]
    late = metrics.until(lambda rs: any(r["seller_id"] == SELLER and r["late_dropoff_rate"]["numerator"] == 2
                                        for r in rs))
    assert warning == {
        "action_id": warning["action_id"], "seller_id": SELLER, "action": "WARNING", "status": "ISSUED",
        "rule_id": "ladder.warning", "metric": "late_dropoff_rate", "observed_rate": 2 / 40, "numerator": 2,
        "denominator": 40, "threshold": 0.04, "window_days": 30, "evidence_order_ids": ORDERS[30:32],
        "policy_version": "2026.11.1", "reason": warning["reason"], "decided_at": SHIP_BY + 2 * HOUR,
        "caused_by": "ev-late-2",
    }
    assert warning["action_id"].startswith("act_") and "5.0 %" in warning["reason"]
    assert any(r["late_dropoff_rate"]["standing"] == "BELOW" for r in late if r["seller_id"] == SELLER)
    note = notes[0]
    assert note["action_id"] == warning["action_id"] and note["template"] == "warning_late_dropoff_rate"
    assert note["channels"] == ["EMAIL", "PUSH"] and note["seller_id"] == SELLER
    assert "5.0 %" in note["body"] and "4.0 %" in note["body"] and "What to do:" in note["body"]

    # More late shipments while the warning is live (the rest of the orders): nothing new.
    for k in range(3, 11):
        p.produce(topic("marketplace.shipment-scans"), key=key,
                  value=scan(ORDERS[29 + k], SHIP_BY + k * HOUR, f"ev-late-{k}"))
    p.flush()
    metrics.until(lambda rs: any(r["seller_id"] == SELLER and r["late_dropoff_rate"]["numerator"] == 10
                                 for r in rs))
    settle()
    assert len(enforcements.settled()) == 1
    assert len(notifications.settled()) == 1

    # Still BELOW escalate_after (14 days) later: another seller's order moves the clock on.
    later = SHIP_BY + 2 * HOUR + 14 * DAY + 60_000
    p.produce(topic("marketplace.orders"), key=OTHER.encode(), value=order(OTHER, "x1", later))
    p.flush()
    actions = enforcements.until(lambda rs: len(rs) >= 2)
    suspension = actions[1]
    assert (suspension["action"], suspension["status"], suspension["rule_id"]) == (
        "SUSPENSION", "PENDING_REVIEW", "ladder.escalation")
    assert (suspension["numerator"], suspension["denominator"]) == (10, 40)
    assert suspension["observed_rate"] == 0.25 and suspension["threshold"] == 0.04
    assert sorted(suspension["evidence_order_ids"]) == ORDERS[30:]
    assert suspension["caused_by"] == f"ev-{OTHER}-x1" and suspension["decided_at"] == later
    settle()
    assert len(notifications.settled()) == 1  # none for a pending review

    # APPROVE -> APPROVED, and the seller is notified.
    sid = suspension["action_id"]
    p.produce(topic("trust-safety.review-decisions"), key=key, value=decision(sid, "APPROVE", "ev-d1", later + HOUR))
    p.flush()
    actions = enforcements.until(lambda rs: len(rs) >= 3)
    assert (actions[2]["action_id"], actions[2]["status"], actions[2]["caused_by"]) == (sid, "APPROVED", "ev-d1")
    notes = notifications.until(lambda rs: len(rs) >= 2)
    assert notes[1]["template"] == "suspension_approved" and notes[1]["action_id"] == sid

    # The seller appeals -> APPEALED.
    p.produce(topic("trust-safety.appeals"), key=key, value=codec.encode("AppealFiled", dict(
        event_id="ev-a1", appeal_id="ap-1", action_id=sid, seller_id=SELLER,
        message="My carrier <lost> the scans", filed_at=later + 2 * HOUR)))
    p.flush()
    actions = enforcements.until(lambda rs: len(rs) >= 4)
    assert (actions[3]["action_id"], actions[3]["status"]) == (sid, "APPEALED")

    # The appeal is granted -> OVERTURNED, then a REINSTATEMENT, each with a notification.
    p.produce(topic("trust-safety.review-decisions"), key=key,
              value=decision(sid, "APPROVE", "ev-d2", later + 3 * HOUR))
    # and a decision for an action that does not exist goes to the dead-letter topic
    p.produce(topic("trust-safety.review-decisions"), key=key,
              value=decision("act_unknown", "APPROVE", "ev-d3", later + 3 * HOUR))
    p.flush()
    actions = enforcements.until(lambda rs: len(rs) >= 6)
    overturned, reinstated = actions[4], actions[5]
    assert (overturned["action_id"], overturned["status"], overturned["caused_by"]) == (sid, "OVERTURNED", "ev-d2")
    assert (reinstated["action"], reinstated["status"], reinstated["rule_id"]) == (
        "REINSTATEMENT", "ISSUED", "appeal.reinstatement")
    assert reinstated["action_id"] not in (sid, warning["action_id"])
    notes = notifications.until(lambda rs: len(rs) >= 4)
    assert [n["template"] for n in notes[2:]] == ["appeal_granted", "reinstatement"]
    assert "&lt;lost&gt;" in notes[2]["body"] and "<lost>" not in notes[2]["body"]
    assert len({n["notification_id"] for n in notes}) == 4

    dead = consume_until(w.env["KAFKA_BOOTSTRAP_SERVERS"], topic("trust-safety.dead-letter"),
                         lambda ms: len(ms) >= 1)
    assert dict(dead[0].headers())["warden.error"].startswith(b"unknown_action")

    # The HTTP view: every action once, newest first; /metrics shows the decisions. The view
    # is written to Redis every 100 ms, after the topics: give it a few flushes to catch up.
    want = [("REINSTATEMENT", "ISSUED"), ("SUSPENSION", "OVERTURNED"), ("WARNING", "ISSUED")]
    deadline = time.monotonic() + 5
    while True:
        request = urllib.request.Request(f"http://127.0.0.1:{w.port}/api/sellers/{SELLER}/actions",
                                         headers=api_headers("seller", SELLER))
        with urllib.request.urlopen(request, timeout=5) as r:
            view = json.loads(r.read())["actions"]
        if [(a["action"], a["status"]) for a in view] == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(a["action"], a["status"]) for a in view] == [
        ("REINSTATEMENT", "ISSUED"), ("SUSPENSION", "OVERTURNED"), ("WARNING", "ISSUED")]
    with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=5) as r:
        exposition = r.read().decode()
    for name in ("warden_events_total", "warden_events_invalid_total", "warden_enforcements_total",
                 "warden_notifications_total", "warden_event_to_decision_seconds",
                 "warden_rule_evaluations_total", "warden_pending_reviews", "warden_oldest_pending_review_seconds"):
        assert name in exposition, name
    count = next(line for line in exposition.splitlines()
                 if line.startswith("warden_event_to_decision_seconds_count"))
    assert float(count.split()[-1]) == len(actions) + len(notes)  # one observation per publication

