"""The core in steps (Engine.process_steps): a record that fires thousands of timers pauses
between them, and its effects are those of `process`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rules.effects import PublishMetrics
from rules.policy import load_policy
from tables.engine import PAUSE_EVERY, Engine

POLICY = load_policy("rules/policy.yaml")
SELLERS = 3 * PAUSE_EVERY


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("UTC")).timestamp() * 1000)


SHIP_BY = ms("2026-03-31T00:00:00")


def order(seller: str, oid: str, placed: int, ship_by: int | None = None) -> dict[str, Any]:
    return dict(event_id=f"e-{oid}", order_id=oid, seller_id=seller, buyer_id="b", show_id=None,
                amount_cents=1000, currency="USD", placed_at=placed, ship_by=ship_by)


def engine_with_sellers() -> Engine:
    """An engine whose partition holds SELLERS sellers with an order each, all to be shipped
    by the same instant: when it has passed (and the scan's grace), every one is late."""
    engine = Engine(POLICY, clock="event")
    for i in range(SELLERS):
        engine.process(0, "OrderPlaced", order(f"s{i}", f"o{i}", ms("2026-03-30T10:00:00") + i, SHIP_BY))
    return engine


def published(effects: list[Any]) -> list[tuple[str, Any]]:
    return [(e.seller_id, e.record) for e in effects if isinstance(e, PublishMetrics)]


def test_a_record_that_makes_every_order_late_pauses_and_decides_as_process_does() -> None:
    crossing = order("s0", "next", SHIP_BY + POLICY.scan_grace_ms + 1)
    whole = engine_with_sellers().process(0, "OrderPlaced", crossing)
    stepped: list[Any] = []
    pauses = sum(1 for _ in engine_with_sellers().process_steps(0, "OrderPlaced", crossing, stepped))
    assert len(published(whole)) >= SELLERS  # every seller's order went late: each is published
    assert pauses >= 2 * SELLERS // PAUSE_EVERY - 1  # timers fired, then sellers published, in slices
    assert published(stepped) == published(whole)


def test_an_ordinary_record_does_not_pause() -> None:
    engine = engine_with_sellers()
    effects: list[Any] = []
    assert sum(1 for _ in engine.process_steps(0, "OrderPlaced", order("s1", "more", ms("2026-03-30T11:00:00")),
                                               effects)) == 0
    assert [seller for seller, _ in published(effects)] == ["s1"]


def drained(engine: Engine) -> dict[int, list[Any]]:
    heaps = engine.deadlines.heaps
    return {p: [engine.deadlines.pop(p) for _ in range(len(heaps[p]))] for p in sorted(heaps)}


def engine_on_partitions() -> Engine:
    """engine_with_sellers, and 50 more sellers over 4 partitions with orders due at other instants."""
    engine = engine_with_sellers()
    engine.partition_of = lambda seller_id: 0 if seller_id.startswith("s") else len(seller_id) % 4
    for i in range(50):
        seller = f"t{i}" + "x" * (i % 4)
        engine.process(engine.partition_of(seller), "OrderPlaced",
                       order(seller, f"p{i}", ms("2026-03-02T10:00:00") + 997 * i))
    return engine


def test_timers_rebuilt_from_the_tables_pop_as_the_ones_scheduled_live() -> None:
    live = engine_on_partitions()
    scheduled = live.pending_timers()
    assert scheduled > SELLERS
    rebuilt = live.rebuild_timers()
    assert rebuilt == live.pending_timers() == scheduled
    assert len(live.deadlines.heaps) == 4
    assert drained(live) == drained(engine_on_partitions())  # the same entries, popped in the same order
