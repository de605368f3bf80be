"""The core's small rooms: calendar months, the deadline heap, the key formats."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tables.deadlines import ORDER, SELLER, Deadlines
from tables.keys import defect_buyer_key, evidence_key, order_key, seller_of, split_order_key
from tables.months import MonthCalendar


def ms(text: str, zone: str = "UTC") -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def test_months_follow_the_zone_and_the_year_boundary() -> None:
    utc, la = MonthCalendar("UTC"), MonthCalendar("America/Los_Angeles")
    instant = ms("2026-01-01T03:00:00")  # still December 31st in Los Angeles
    assert utc.month(instant) == "2026-01" and la.month(instant) == "2025-12"
    assert utc.last_three(instant) == ("2025-11", "2025-12", "2026-01")
    assert utc.next_month_start(instant) == ms("2026-02-01T00:00:00")
    assert la.next_month_start(instant) == ms("2026-01-01T00:00:00", "America/Los_Angeles")
    assert utc.next_month_start(ms("2026-12-15T00:00:00")) == ms("2027-01-01T00:00:00")


def test_deadlines_pop_in_due_order_per_partition() -> None:
    d = Deadlines()
    d.schedule(0, 30, ORDER, "b")
    d.schedule(0, 10, SELLER, "a")
    d.schedule(1, 5, ORDER, "c")
    assert d.count() == 3 and d.count(0) == 2 and d.next_due(0) == 10
    assert d.pop(0) == (10, SELLER, "a") and d.pop(0) == (30, ORDER, "b")
    assert d.next_due(0) is None and d.next_due(1) == 5
    d.clear()
    assert d.count() == 0


def test_keys_start_with_the_seller_and_split_back() -> None:
    key = order_key("s-1", "o-9")
    assert seller_of(key) == "s-1" and split_order_key(key) == ("s-1", "o-9")
    assert seller_of(defect_buyer_key("s-1", 2, "b-3")) == "s-1"
    assert seller_of(evidence_key("s-1", 4)) == "s-1"
    assert evidence_key("s-1", 4) != evidence_key("s-1", 3)


def test_clocks_are_strategies_and_a_wall_clock_needs_its_source() -> None:
    import pytest

    from tables.clocks import EventClock, WallClock, clock_named

    assert EventClock().now(None) == 0 and EventClock().now(42) == 42
    assert WallClock(lambda: 7).now(42) == 7
    assert isinstance(clock_named("event", None), EventClock)
    with pytest.raises(ValueError, match="wall_clock"):
        clock_named("wall", None)
    with pytest.raises(ValueError, match="'event' or 'wall'"):
        clock_named("sundial", None)


def test_the_bit_layout_follows_the_metrics_and_reasons() -> None:
    from rules.metrics import DEN_BITS, FLAWED_REASONS, METRICS, NUM_BITS, REASON_BITS
    from tables.sellers import SellerState

    bits = [*NUM_BITS, *DEN_BITS, *REASON_BITS]
    assert len(bits) == 2 * len(METRICS) + len(FLAWED_REASONS) == len(set(bits))  # no bit shared
    s = SellerState()
    assert len(s.counts) == 2 * len(METRICS) and len(s.defect_buyers) == len(METRICS)
    s.add(NUM_BITS[-1] | DEN_BITS[-1] | REASON_BITS[-1], 1)
    assert s.counts[-2:] == [1, 1] and s.by_reason[-1] == 1 and sum(s.counts) == 2


def test_flawed_items_are_counted_by_month_and_reason() -> None:
    from tables.sellers import SellerState, month_reason

    s = SellerState()
    s.count_month(month_reason("2026-10", 0), 1, "2026-09")
    s.count_month(month_reason("2026-10", 3), 1, "2026-09")
    s.count_month(month_reason("2026-11", 3), 1, "2026-09")
    s.count_month("2026-11", 1, "2026-09")  # kept before reasons were: counted in the total only
    f = s.snapshot(("2026-09", "2026-10", "2026-11"))
    assert f.flawed_monthly == (("2026-09", 0), ("2026-10", 2), ("2026-11", 2))
    assert f.flawed_monthly_by_reason == ((0, 0, 0, 0), (1, 0, 0, 1), (0, 0, 0, 1))
    s.count_month(month_reason("2026-12", 1), 1, "2026-10")  # three months on: September's drop
    assert all(not key.startswith("2026-09") for key in s.monthly)
