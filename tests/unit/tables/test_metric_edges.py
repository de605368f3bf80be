"""One table per metric: the edges of CONTRACT §4, case by case, through the decision core."""

from __future__ import annotations

from typing import Any

import pytest

from rules.metrics import METRIC_INDEX
from rules.policy import load_policy
from tables.engine import Engine
from tests.support.events import DAY, HOUR, SELLER, SHIP_BY, WED, at, cancel, order, rating, refund, scan

POLICY = load_policy("rules/policy.yaml")
def figures(metric: str, events: list[tuple[str, dict]], now: int) -> tuple[int, int]:
    """(numerator, denominator) of `metric` after `events` (in the given order), at `now`."""
    engine = Engine(POLICY, clock="event")
    for name, record in events:
        engine.process(0, name, dict(record))
    engine.tick(0, now)
    seller = engine.stores.sellers.get(SELLER)
    if seller is None:
        return 0, 0
    i = METRIC_INDEX[metric]
    return seller.counts[2 * i], seller.counts[2 * i + 1]


def case(label: str, events: list[tuple[str, dict]], now: int, expected: tuple[int, int]) -> Any:
    return pytest.param(events, now, expected, id=label)


NOW = WED + 10 * DAY

CANCELLATION = [
    case("seller-initiated", [order(), cancel(WED + HOUR)], NOW, (1, 1)),
    case("buyer-initiated", [order(), cancel(WED + HOUR, "BUYER")], NOW, (0, 1)),
    case("system-initiated", [order(), cancel(WED + HOUR, "SYSTEM")], NOW, (0, 1)),
    case("cancelled before ship_by", [order(), cancel(SHIP_BY - HOUR)], NOW, (1, 1)),
    case("cancelled after ship_by", [order(), cancel(SHIP_BY + HOUR)], NOW, (1, 1)),
    case("cancellation before its order", [cancel(WED + HOUR), order()], NOW, (1, 1)),
    case("cancellation delivered twice", [order(), cancel(WED + HOUR), cancel(WED + HOUR)], NOW, (1, 1)),
    case("placed exactly 30 days ago", [order(placed=NOW - 30 * DAY)], NOW, (0, 0)),
    case("placed 30 days ago less 1 ms", [order(placed=NOW - 30 * DAY + 1)], NOW, (0, 1)),
    case("order out of window, cancellation in", [order(placed=NOW - 31 * DAY), cancel(NOW - 29 * DAY)],
         NOW, (1, 0)),
]

LATE = [
    case("scanned before ship_by", [order(), scan(SHIP_BY - HOUR)], NOW, (0, 1)),
    case("scanned exactly at ship_by", [order(), scan(SHIP_BY)], NOW, (0, 1)),
    case("scanned after ship_by", [order(), scan(SHIP_BY + 1)], NOW, (1, 1)),
    case("carrier-fault late scan is excused", [order(), scan(SHIP_BY + DAY, fault=True)], NOW, (0, 1)),
    case("label only is not possession", [order(), scan(SHIP_BY - DAY, kind="LABEL_CREATED")], NOW, (1, 1)),
    case("no scan, scan grace not over", [order()], SHIP_BY + 23 * HOUR, (0, 1)),
    case("no scan, scan grace over", [order()], SHIP_BY + 24 * HOUR, (1, 1)),
    case("late-arriving scan within ship_by corrects it", [order(), scan(SHIP_BY - HOUR)], SHIP_BY + 5 * DAY,
         (0, 1)),
    case("scan before its order", [scan(SHIP_BY + HOUR), order()], NOW, (1, 1)),
    case("cancelled before ship_by", [order(), cancel(SHIP_BY - HOUR)], NOW, (0, 0)),
    case("cancelled after ship_by, never scanned", [order(), cancel(SHIP_BY + HOUR)], NOW, (1, 1)),
    case("buyer cancelled before ship_by", [order(), cancel(SHIP_BY - HOUR, "BUYER")], NOW, (0, 0)),
    case("one late scan for three orders", [order("o1", buyer="b1"), order("o2", buyer="b2"),
                                            order("o3", buyer="b3"), scan(SHIP_BY + HOUR, "o1", "o2", "o3")],
         NOW, (3, 3)),
    case("ship_by over a weekend: Thursday -> Monday",
         [order(placed=at("2026-11-19T15:00")), scan(at("2026-11-23T20:00"))], NOW, (0, 1)),
    case("after the weekend's ship_by",
         [order(placed=at("2026-11-19T15:00")), scan(at("2026-11-24T00:00"))], NOW, (1, 1)),
    case("ship_by over Thanksgiving: Tuesday -> Friday",
         [order(placed=at("2026-11-24T09:00")), scan(at("2026-11-27T22:00"))], at("2026-12-05T00:00"), (0, 1)),
    case("ship_by exactly 30 days ago", [order(), scan(SHIP_BY + HOUR)], SHIP_BY + 30 * DAY, (0, 0)),
    case("ship_by 30 days ago less 1 ms", [order(), scan(SHIP_BY + HOUR)], SHIP_BY + 30 * DAY - 1, (1, 1)),
    case("ship_by not passed yet", [order()], SHIP_BY - 1, (0, 0)),
    case("explicit ship_by is used", [order(ship_by=WED + DAY), scan(WED + 2 * DAY)], NOW, (1, 1)),
]

UNFULFILLED = [
    case("never scanned", [order()], SHIP_BY + 3 * DAY, (1, 1)),
    case("grace not over", [order()], SHIP_BY + 3 * DAY - 1, (0, 0)),
    case("scanned within the grace", [order(), scan(SHIP_BY + 2 * DAY)], NOW, (0, 1)),
    case("scanned after the grace", [order(), scan(SHIP_BY + 4 * DAY)], NOW, (1, 1)),
    case("cancelled before ship_by", [order(), cancel(SHIP_BY - HOUR)], NOW, (0, 0)),
    case("cancelled after ship_by, within the grace", [order(), cancel(SHIP_BY + DAY)], NOW, (0, 1)),
    case("cancelled after the grace", [order(), cancel(SHIP_BY + 4 * DAY)], NOW, (1, 1)),
    case("one scan for two orders", [order("o1"), order("o2", buyer="b2"), scan(SHIP_BY, "o1", "o2")],
         NOW, (0, 2)),
    case("due exactly 30 days ago", [order()], SHIP_BY + 3 * DAY + 30 * DAY, (0, 0)),
]

FLAWED = [
    case("damaged after delivery", [order(), scan(WED + DAY, kind="DELIVERED"), refund(WED + 2 * DAY)],
         NOW, (1, 1)),
    case("counterfeit", [order(), scan(WED + DAY, kind="DELIVERED"), refund(WED + 2 * DAY, "COUNTERFEIT")],
         NOW, (1, 1)),
    case("two flawed refunds on one order",
         [order(), scan(WED + DAY, kind="DELIVERED"), refund(WED + 2 * DAY), refund(WED + 3 * DAY, "WRONG_ITEM")],
         NOW, (1, 1)),
    case("buyer remorse is not a flaw", [order(), scan(WED + DAY, kind="DELIVERED"),
                                         refund(WED + 2 * DAY, "BUYER_REMORSE")], NOW, (0, 1)),
    case("refund of an undelivered order", [order(), refund(WED + 2 * DAY)], NOW, (1, 0)),
    case("refund before its delivery scan arrives", [refund(WED + 2 * DAY), scan(WED + DAY, kind="DELIVERED")],
         NOW, (1, 1)),
    case("refund exactly 30 days ago", [scan(WED, kind="DELIVERED"), refund(WED + DAY)], WED + 31 * DAY, (0, 0)),
    case("refund 30 days ago less 1 ms", [scan(WED + 2 * DAY, kind="DELIVERED"), refund(WED + DAY)],
         WED + 31 * DAY - 1, (1, 1)),
    case("the same refund twice", [scan(WED, kind="DELIVERED"), refund(WED + DAY), refund(WED + DAY)],
         NOW, (1, 1)),
]

LOW_RATING = [
    case("one star", [rating(WED + DAY, 1)], NOW, (1, 1)),
    case("two stars", [rating(WED + DAY, 2)], NOW, (1, 1)),
    case("three stars", [rating(WED + DAY, 3)], NOW, (0, 1)),
    case("re-rated up: the latest counts", [rating(WED + DAY, 1), rating(WED + 2 * DAY, 5)], NOW, (0, 1)),
    case("re-rated down", [rating(WED + DAY, 5), rating(WED + 2 * DAY, 2)], NOW, (1, 1)),
    case("re-rating arrives first", [rating(WED + 2 * DAY, 5), rating(WED + DAY, 1)], NOW, (0, 1)),
    case("the same rating twice", [rating(WED + DAY, 1, rid="r1"), rating(WED + DAY, 1, rid="r1")], NOW, (1, 1)),
    case("ratings of two orders", [rating(WED + DAY, 1, "o1"), rating(WED + DAY, 4, "o2")], NOW, (1, 2)),
    case("rated exactly 30 days ago", [rating(WED, 1)], WED + 30 * DAY, (0, 0)),
    case("earlier rating out of window, re-rated in it", [rating(NOW - 31 * DAY, 1), rating(NOW - DAY, 5)],
         NOW, (0, 1)),
]


@pytest.mark.parametrize("events,now,expected", CANCELLATION)
def test_cancellation_rate(events: list, now: int, expected: tuple[int, int]) -> None:
    assert figures("cancellation_rate", events, now) == expected


@pytest.mark.parametrize("events,now,expected", LATE)
def test_late_dropoff_rate(events: list, now: int, expected: tuple[int, int]) -> None:
    assert figures("late_dropoff_rate", events, now) == expected


@pytest.mark.parametrize("events,now,expected", UNFULFILLED)
def test_unfulfilled_rate(events: list, now: int, expected: tuple[int, int]) -> None:
    assert figures("unfulfilled_rate", events, now) == expected


@pytest.mark.parametrize("events,now,expected", FLAWED)
def test_flawed_item_rate(events: list, now: int, expected: tuple[int, int]) -> None:
    assert figures("flawed_item_rate", events, now) == expected


@pytest.mark.parametrize("events,now,expected", LOW_RATING)
def test_low_rating_rate(events: list, now: int, expected: tuple[int, int]) -> None:
    assert figures("low_rating_rate", events, now) == expected


def test_deadline_fires_with_no_event_and_order_leaves_the_window() -> None:
    """The timer: late at ship_by + grace with nothing about the order, gone 30 days on."""
    engine = Engine(POLICY, clock="event")
    name, record = order()
    engine.process(0, name, record)
    i = METRIC_INDEX["late_dropoff_rate"]
    engine.tick(0, SHIP_BY + 24 * HOUR - 1)
    assert engine.stores.sellers[SELLER].counts[2 * i: 2 * i + 2] == [0, 1]
    published = engine.tick(0, SHIP_BY + 24 * HOUR)
    assert engine.stores.sellers[SELLER].counts[2 * i: 2 * i + 2] == [1, 1]
    assert published and published[0].record["late_dropoff_rate"]["numerator"] == 1
    engine.tick(0, SHIP_BY + 30 * DAY)
    counts = engine.stores.sellers[SELLER].counts
    assert counts[2 * i: 2 * i + 2] == [0, 0]
    assert sum(counts) == 2  # still unfulfilled: its instant is ship_by + 3 days
    engine.tick(0, SHIP_BY + 33 * DAY)
    assert sum(engine.stores.sellers[SELLER].counts) == 0
