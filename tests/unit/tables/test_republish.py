"""After a restart, recent decisions are published again: same records, same ids."""

from __future__ import annotations

import time

from rules.effects import DecideAction, Notify
from rules.policy import load_policy
from tables.engine import Engine
from tests.support.events import HOUR, SHIP_BY, WED, order, scan


def test_recent_decisions_are_the_records_first_published() -> None:
    engine = Engine(load_policy("rules/policy.yaml"), clock="event",
                    wall_clock=lambda: int(time.time() * 1000))  # stamps each decision for republication
    published = []
    for i in range(40):
        published += engine.process(0, *order(f"o{i}", placed=WED + i * 60_000, buyer=f"b{i}"))
    for i in range(40):
        when = SHIP_BY - HOUR if i < 30 else SHIP_BY + HOUR
        published += engine.process(0, *scan(when, f"o{i}"))
    decided = [e for e in published if isinstance(e, (DecideAction, Notify))]
    assert any(isinstance(e, DecideAction) and e.record["action"] == "WARNING" for e in decided)

    since = int(time.time() * 1000) - 600_000
    again = engine.recent_decisions(since)
    assert [dict(e.record) for e in again] == [dict(e.record) for e in decided]
    assert engine.recent_decisions(int(time.time() * 1000) + 60_000) == []
    assert engine.recent_decisions(since, partitions={1}) == []
