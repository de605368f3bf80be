"""The batch path delivers a partition's records in offset order, none skipped: a fetch
that begins past the offset expected next is read again, and only a gap the broker
confirms is acknowledged (unit: the consumer's bookkeeping, no broker)."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.faust_internals import BatchConsumer

TOPIC = "marketplace.orders"


class Thread:
    """The consumer's thread: seeks are made in it (call_thread), never from the loop's."""

    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, int]] = []
        self.in_thread = False

    def _ensure_consumer(self) -> Any:
        def seek(tp: Any, offset: int) -> None:
            assert self.in_thread, "a seek from outside the consumer's thread"
            self.seeks.append((tp.topic, tp.partition, offset))
        return SimpleNamespace(seek=seek)

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        self.in_thread = True
        try:
            result = fun(*args)
            return await result if inspect.isawaitable(result) else result
        finally:
            self.in_thread = False


def consumer(expected: dict[TP, int | None]) -> Any:
    c: Any = BatchConsumer.__new__(BatchConsumer)
    c.app = SimpleNamespace(consumer_generation_id=3, rebalancing=False)
    c._thread = Thread()
    c._expected = dict(expected)
    c._reread = {}
    c._seeks = set()
    c._seeking = False
    c._read_offset = {}
    c.gaps = []

    async def add_gap(tp: TP, offset_from: int, offset_to: int) -> None:
        c.gaps.append((tp.partition, offset_from, offset_to))

    c._add_gap = add_gap
    return c


def recs(*offsets: int) -> list[Any]:
    return [SimpleNamespace(offset=o) for o in offsets]


def deliver(c: Any, tp: TP, records: list[Any], generation: int = 3) -> list[int]:
    return [r.offset for r in asyncio.run(c._in_order(tp, records, generation))]


def test_records_from_the_expected_offset_are_delivered_and_move_it_on() -> None:
    tp = TP(TOPIC, 2)
    c = consumer({tp: 145})
    assert deliver(c, tp, recs(145, 146, 147)) == [145, 146, 147]
    assert c._expected[tp] == 148 and c._read_offset[tp] == 147
    assert deliver(c, tp, recs(146, 147, 148)) == [148]  # read already: dropped
    assert deliver(c, tp, recs(140, 141)) == []
    assert c._thread.seeks == [] and c.gaps == []


def test_a_fetch_past_the_expected_offset_is_read_again_not_taken_for_a_gap() -> None:
    tp = TP(TOPIC, 3)
    c = consumer({tp: 148})
    # fetched from a stale position (before the seek, returned after it): 148..4167 never delivered
    assert deliver(c, tp, recs(4168, 4169)) == []
    assert c._thread.seeks == [(TOPIC, 3, 148)] and c.gaps == [] and c._expected[tp] == 148
    # read again from 148: delivered in order
    assert deliver(c, tp, recs(148, 149)) == [148, 149]
    assert c._expected[tp] == 150


def test_a_gap_the_broker_confirms_is_acknowledged() -> None:
    tp = TP(TOPIC, 1)
    c = consumer({tp: 10})
    assert deliver(c, tp, recs(12, 13)) == []  # offsets 10, 11 hold no record (transaction markers)
    assert deliver(c, tp, recs(12, 13)) == [12, 13]  # read again from 10: the broker begins at 12 again
    assert c.gaps == [(1, 10, 11)] and c._thread.seeks == [(TOPIC, 1, 10)]
    assert deliver(c, tp, recs(14, 16)) == [14, 16]  # a gap inside one fetch is the broker's own answer
    assert c.gaps == [(1, 10, 11), (1, 15, 15)]


def test_no_seek_back_while_a_rebalance_seeks_or_after_the_generation_changed() -> None:
    tp = TP(TOPIC, 0)
    c = consumer({tp: 5})
    c._seeking = True
    assert deliver(c, tp, recs(9)) == [] and c._thread.seeks == []  # the rebalance's seek decides
    c._seeking = False
    assert deliver(c, tp, recs(9), generation=2) == [] and c._thread.seeks == []  # an older batch
    assert deliver(c, tp, recs(9)) == [] and c._thread.seeks == [(TOPIC, 0, 5)]


def test_nothing_is_delivered_until_the_rebalance_has_ended() -> None:
    """Faust resumes the flow and seeks before its rebalance ends, and the handler refuses
    a batch until then: records delivered meanwhile were marked delivered and never
    handled (a partition stalled for the rest of the generation)."""
    tp = TP(TOPIC, 0)
    c = consumer({tp: 5})
    c.app.rebalancing = True
    assert deliver(c, tp, recs(5, 6, 7)) == [] and c._expected[tp] == 5
    c.app.rebalancing = False
    assert deliver(c, tp, recs(8, 9)) == []  # fetched past them: read again from 5
    assert c._thread.seeks == [(TOPIC, 0, 5)] and c.gaps == []
    assert deliver(c, tp, recs(5, 6, 7, 8, 9)) == [5, 6, 7, 8, 9] and c._expected[tp] == 10


def test_a_partition_with_no_known_start_takes_the_first_record_fetched() -> None:
    tp = TP(TOPIC, 0)
    c = consumer({tp: None})
    assert deliver(c, tp, recs(7, 8)) == [7, 8] and c._expected[tp] == 9
