"""The same history gives the same decisions: two fresh workers fed day by day, and the
decision core fed in timestamp order with no broker, decide the same action and
notification ids."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest

from rules.effects import DecideAction, Notify
from rules.policy import load_policy
from schemas.codec import Codec
from simulator.marketplace import DAY, Marketplace
from streams.contract import topics as T
from tables.engine import Engine
from tests.support.kafka import consume_until, producer

pytestmark = pytest.mark.integration
codec = Codec()
SELLERS, DAYS, SEED = 12, 40, 3
RANK = {t: i for i, t in enumerate(T.INPUT_TOPICS)}


def history() -> list[tuple[int, str, dict[str, Any]]]:
    end = int(time.time() * 1000) // DAY * DAY - DAY
    market = Marketplace(SEED, SELLERS, end - DAYS * DAY)
    return [(ts, name, dict(record)) for ts, name, record in market.events(end)]


def in_timestamp_order(events: list[tuple[int, str, dict[str, Any]]]) -> list[tuple[int, str, dict[str, Any]]]:
    """Timestamp order, ties by topic (as the worker's merge breaks them), then as emitted."""
    order = sorted(range(len(events)), key=lambda i: (events[i][0], RANK[T.RECORD_TOPIC[events[i][1]]], i))
    return [events[i] for i in order]


def events_consumed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("warden_events_total{"))


def through_worker(worker_factory: type, events: list[tuple[int, str, dict[str, Any]]]) -> tuple[set, set]:
    w = worker_factory.start(WARDEN_PARTITIONS="2", WARDEN_TICK_INTERVAL="0.2")
    p = producer(w.env["KAFKA_BOOTSTRAP_SERVERS"])
    sent = 0
    day_end = events[0][0] // DAY * DAY + DAY
    for i, (ts, name, record) in enumerate(events):
        if ts >= day_end or i == len(events) - 1:
            if i == len(events) - 1:
                p.produce(w.topic(T.RECORD_TOPIC[name]), key=record["seller_id"].encode(),
                          value=codec.encode(name, record), timestamp=ts)
                sent += 1
            p.flush()
            deadline = time.monotonic() + 120
            while events_consumed(w.port) < sent:  # let the worker catch up with the day
                assert time.monotonic() < deadline, f"worker stuck at {events_consumed(w.port)} of {sent}"
                time.sleep(0.1)
            day_end = ts // DAY * DAY + DAY
            if i == len(events) - 1:
                break
        p.produce(w.topic(T.RECORD_TOPIC[name]), key=record["seller_id"].encode(),
                  value=codec.encode(name, record), timestamp=ts)
        sent += 1
    time.sleep(1.0)
    broker = w.env["KAFKA_BOOTSTRAP_SERVERS"]
    actions = consume_until(broker, w.topic(T.ENFORCEMENTS), quiet(), timeout=60)
    notes = consume_until(broker, w.topic(T.NOTIFICATIONS), quiet(), timeout=60)
    return ({codec.decode(m.value())[1]["action_id"] for m in actions},
            {codec.decode(m.value())[1]["notification_id"] for m in notes})


def quiet() -> Any:
    """A `done` check: true once nothing new has arrived for a second."""
    last: dict[str, Any] = {}

    def done(messages: list[Any]) -> bool:
        now = time.monotonic()
        if last.get("n") != len(messages):
            last.update(n=len(messages), at=now)
            return False
        return now - last["at"] >= 1.0

    return done


def through_core(events: list[tuple[int, str, dict[str, Any]]]) -> tuple[set, set]:
    engine = Engine(load_policy("rules/policy.yaml"), clock="event")
    actions, notes = set(), set()
    for _, name, record in in_timestamp_order(events):
        for e in engine.process(0, name, dict(record)):
            if isinstance(e, DecideAction):
                actions.add(e.record["action_id"])
            elif isinstance(e, Notify):
                notes.add(e.record["notification_id"])
    return actions, notes


def test_same_history_same_decisions(worker_factory: type) -> None:
    events = history()
    core_actions, core_notes = through_core(events)
    assert core_actions, "the history must provoke some decisions to compare"
    first = through_worker(worker_factory, events)
    second = through_worker(worker_factory, events)
    assert first == second
    assert first == (core_actions, core_notes)
    print(f"\n{len(events):,} events -> {len(core_actions)} actions, {len(core_notes)} notifications, "
          "identical ids in both workers and the core")
