"""Property: the incremental figures equal a brute-force recomputation by CONTRACT §4,
whatever the arrival order, duplicates and clock times."""

from __future__ import annotations

import os
import random
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rules.policy import load_policy
from schemas.validation import EVENT_TIME
from tables.engine import Engine
from tests.support.reference import reference_figures

POLICY = load_policy("rules/policy.yaml")
DAY = 86_400_000
BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z: New Year, MLK day, weekends in range
SCANS = ["LABEL_CREATED", "ACCEPTED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED",
         "DELIVERY_EXCEPTION", "RETURN_TO_SENDER"]
REASONS = ["DAMAGED", "WRONG_ITEM", "MISSING_ITEM", "COUNTERFEIT", "NOT_DELIVERED",
           "NOT_AS_DESCRIBED", "BUYER_REMORSE", "OTHER"]
INITIATORS = ["SELLER", "BUYER", "SYSTEM", "TRUST_AND_SAFETY"]
EXAMPLES = int(os.environ.get("WARDEN_PROPERTY_EXAMPLES", "1000"))


def history(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """A random marketplace history for a few sellers, facts near each order's placement."""
    events: list[tuple[str, dict[str, Any]]] = []
    n = 0

    def eid() -> str:
        nonlocal n
        n += 1
        return f"e{n}"

    for s in range(rng.randint(1, 3)):
        seller = f"s{s}"
        orders = [f"o{s}-{i}" for i in range(rng.randint(1, 10))]
        placements = {oid: BASE + rng.randrange(0, 60 * DAY) for oid in orders}
        for oid in orders:
            placed = placements[oid]
            buyer = f"b{rng.randint(0, 3)}"
            if rng.random() < 0.9:
                ship_by = None if rng.random() < 0.7 else placed + rng.randrange(DAY, 4 * DAY)
                events.append(("OrderPlaced", dict(
                    event_id=eid(), order_id=oid, seller_id=seller, buyer_id=buyer, show_id="show",
                    amount_cents=1000, currency="USD", placed_at=placed, ship_by=ship_by)))
            for _ in range(rng.randint(0, 3)):
                # a shipment may hold several orders; it is scanned after they were all placed
                batch = [oid, *rng.sample(orders, k=min(len(orders), rng.randint(0, 2)))]
                earliest = max(placements[o] for o in batch)
                events.append(("ShipmentScan", dict(
                    event_id=eid(), shipment_id="sh", order_ids=batch, seller_id=seller, carrier="ups",
                    tracking_number="1z", scan_type=rng.choice(SCANS), carrier_fault=rng.random() < 0.2,
                    scanned_at=earliest + rng.randrange(0, 8 * DAY))))
            for _ in range(rng.choice([0, 0, 1, 1, 2])):
                events.append(("OrderCancelled", dict(
                    event_id=eid(), order_id=oid, seller_id=seller, initiated_by=rng.choice(INITIATORS),
                    reason="x", cancelled_at=placed + rng.randrange(0, 6 * DAY))))
            for _ in range(rng.choice([0, 0, 1, 2])):
                events.append(("RefundIssued", dict(
                    event_id=eid(), refund_id=f"r{n}", order_id=oid, seller_id=seller,
                    reason=rng.choice(REASONS), amount_cents=10,
                    refunded_at=placed + rng.randrange(2 * DAY, 15 * DAY))))
            for _ in range(rng.choice([0, 1, 1, 2])):
                events.append(("RatingSubmitted", dict(
                    event_id=eid(), rating_id=f"rt{n}", order_id=oid, seller_id=seller,
                    buyer_id=buyer, stars=rng.randint(1, 5), show_id=None,
                    rated_at=placed + rng.randrange(3 * DAY, 15 * DAY))))
    return events


def event_time(name: str, r: dict[str, Any]) -> int:
    return int(r[EVENT_TIME[name]])


def figures(engine: Engine, now: int) -> dict[str, dict[str, Any]]:
    out = {}
    months = engine.months.last_three(now)
    for seller_id, s in engine.stores.sellers.items():
        snap = s.snapshot(months)
        out[seller_id] = {
            "num": list(snap.numerators), "den": list(snap.denominators),
            "defect_buyers": list(snap.defect_buyers),
            "by_reason": dict(zip(("DAMAGED", "WRONG_ITEM", "MISSING_ITEM", "COUNTERFEIT"),
                                  snap.flawed_by_reason, strict=False)),
            "months": {m: c for m, c in snap.flawed_monthly if c},
        }
    return out


def expected(events: list[tuple[str, dict[str, Any]]], now: int, months: tuple[str, ...]) -> dict[str, Any]:
    ref = reference_figures(events, now, POLICY)
    for fig in ref.values():
        fig["months"] = {m: c for m, c in fig["months"].items() if m in months and c}
    return ref


def same(engine_figs: dict[str, Any], ref: dict[str, Any]) -> None:
    zero = {"num": [0] * 5, "den": [0] * 5, "defect_buyers": [0] * 5,
            "by_reason": {r: 0 for r in ("DAMAGED", "WRONG_ITEM", "MISSING_ITEM", "COUNTERFEIT")},
            "months": {}}
    for seller in set(engine_figs) | set(ref):
        assert engine_figs.get(seller, zero) == ref.get(seller, zero), seller


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# a refund arriving months late, after the order's first flawed refund's month left the show
@example(seed=1978, dup_rate=0.0, shuffle=False, checkpoints=4)
@given(seed=st.integers(0, 2**32 - 1), dup_rate=st.sampled_from([0.0, 0.2, 0.5]),
       shuffle=st.booleans(), checkpoints=st.integers(1, 4))
def test_incremental_equals_brute_force(seed: int, dup_rate: float, shuffle: bool, checkpoints: int) -> None:
    rng = random.Random(seed)
    events = history(rng)
    feed = list(events)
    feed += [e for e in events if rng.random() < dup_rate]  # re-deliveries
    if shuffle:
        rng.shuffle(feed)
    else:
        feed.sort(key=lambda e: event_time(*e))
    engine = Engine(POLICY, clock="event")
    seen: list[tuple[str, dict[str, Any]]] = []
    check_at = set(rng.sample(range(len(feed)), k=min(len(feed), checkpoints)))
    for i, (name, record) in enumerate(feed):
        engine.process(0, name, record)
        seen.append((name, record))
        if i in check_at:
            now = engine.stream_time(0)
            assert now is not None
            same(figures(engine, now), expected(seen, now, engine.months.last_three(now)))
            # time passes with no event: deadlines and window exits fire on their own
            later = now + rng.randrange(0, 40 * DAY)
            engine.tick(0, later)
            same(figures(engine, later), expected(seen, later, engine.months.last_three(later)))
    # an empty history (every order without events) has no stream time yet: start at BASE
    end = (engine.stream_time(0) or BASE) + rng.randrange(0, 100 * DAY)
    engine.tick(0, end)
    same(figures(engine, end), expected(seen, end, engine.months.last_three(end)))
