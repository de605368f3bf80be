"""Whether an input topic of a partition has records still to read: a broker's log end is
trusted only at an offset a fetch showed to lie between two record batches (unit: fakes,
no broker). The broker of these cases reports a partition's end as its last batch's base
offset + 1, as Tansu does; Apache Kafka reports the true end, which these rules also take."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from agents.runtime import InputReading
from streams.faust_internals import Boundaries

ORDERS = "marketplace.orders"
TP0 = TP(ORDERS, 0)


def reading(committed: int | None = None, sought: int | None = None) -> tuple[InputReading, Any]:
    consumer = SimpleNamespace(_committed_offset={TP0: committed}, _sought={TP0: sought},
                               boundaries=Boundaries({ORDERS}))
    return InputReading(SimpleNamespace(consumer=consumer)), consumer


def test_a_short_log_end_does_not_say_read_up_at_an_offset_inside_the_last_batch() -> None:
    """The regression: the last batch holds offsets 5-9, the broker says the end is 6, and
    the worker restarted from a commit at 7 (it had handled 5 and 6 of that batch). Taking
    7 >= 6 for "nothing unread" let the merge release other topics' later records first."""
    r, consumer = reading(committed=7)
    r.log_ends[TP0] = 6
    assert r.has_unread(ORDERS, 0, None)
    # a fetch from 7 hands over 7-9 and the broker's answer ends there: a boundary at 10
    consumer.boundaries.known[TP0] = 10
    assert not r.has_unread(ORDERS, 0, 9)
    # the fetch's records handed over in parts (8 of 7-9 so far): more of the batch is held
    assert r.has_unread(ORDERS, 0, 7)


def test_a_partition_starts_where_it_was_sought_and_is_read_up_there_once_a_fetch_shows_it() -> None:
    r, consumer = reading(committed=3, sought=10)  # a restored checkpoint covers up to 9
    r.log_ends[TP0] = 10
    assert r.has_unread(ORDERS, 0, None)  # nothing known of offset 10 yet
    consumer.boundaries.known[TP0] = 10  # a fetch at 10 came back empty
    assert not r.has_unread(ORDERS, 0, None)
    r.log_ends[TP0] = 11  # a record arrived since
    assert r.has_unread(ORDERS, 0, None)


def test_an_exact_log_end_past_the_next_offset_says_unread() -> None:
    r, consumer = reading(committed=0)
    consumer.boundaries.known[TP0] = 4
    r.log_ends[TP0] = 9
    assert r.has_unread(ORDERS, 0, 3)
    assert r.has_unread(ORDERS, 0, None)
    del r.log_ends[TP0]
    assert r.has_unread(ORDERS, 0, 8)  # the end not known yet: wait for it


class State:
    def __init__(self, position: int, answered: int | None, paused: bool = False) -> None:
        self.position, self.timestamp, self.paused = position, answered, paused
        self.has_valid_position = True


def fetcher(states: dict[Any, State], held: set[Any]) -> Any:
    assignment = SimpleNamespace(_tp_state=states, state_value=states.get)
    return SimpleNamespace(_subscriptions=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment)),
                           _records={tp: object() for tp in held})


def test_an_empty_answer_at_an_unchanged_position_makes_it_a_boundary() -> None:
    from aiokafka.structs import TopicPartition

    tp, other = TopicPartition(ORDERS, 0), TopicPartition("warden-orders-changelog", 0)
    states = {tp: State(7, 100), other: State(3, 100)}
    b = Boundaries({ORDERS})
    f = fetcher(states, set())
    b.observe(f)
    assert b.at(TP0) is None  # one look tells nothing: the answer may have been for another position
    states[tp].timestamp = 120  # answered again, nothing handed over, still at 7
    states[other].timestamp = 120
    b.observe(f)
    assert b.at(TP0) == 7 and b.at(TP("warden-orders-changelog", 0)) is None  # only the routed topics
    # an answer with records is held until handed over: no boundary from it
    states[tp].timestamp = 140
    b.observe(fetcher(states, {tp}))
    states[tp].position, states[tp].timestamp = 9, 160  # handed over in parts: 7-8 of 7-11
    b.observe(f)
    assert b.at(TP0) == 7
    b.sought([TP0])  # sought to 9 again: what was seen of its answers is forgotten
    states[tp].timestamp = 180
    b.observe(f)
    assert b.at(TP0) == 7
    states[tp].timestamp = 200
    b.observe(f)
    assert b.at(TP0) == 9


def test_a_record_waits_while_a_checkpoint_takes_the_tables_changes() -> None:
    """A checkpoint encodes the changed values (live objects the core changes in place) over
    several turns of the loop: a record handled meanwhile would put its effects into a
    checkpoint whose input offsets do not cover it, and a restore would count them twice."""
    from agents.process_events import EventProcessor

    async def scenario() -> None:
        app = SimpleNamespace(consumer_generation_id=3, rebalancing=False,
                              consumer=SimpleNamespace(flow_active=True))
        checkpoint = SimpleNamespace(lock=asyncio.Lock(), fenced_generation=None)
        r = SimpleNamespace(has_unread=lambda *a: False, fetched=lambda *a: None, stalled=lambda *a: "",
                            answered=lambda *a: None)
        processor = EventProcessor(app, None, SimpleNamespace(guarded=()), SimpleNamespace(at=lambda p: None),  # type: ignore[arg-type]
                                   checkpoint, None, r, lambda out: None, "ticks", 30.0)  # type: ignore[arg-type]
        await checkpoint.lock.acquire()  # a checkpoint is encoding the tables' changes
        turn = asyncio.ensure_future(processor._turn(3))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not turn.done()
        checkpoint.lock.release()  # encoded: it waits for the broker now, records go on
        assert await asyncio.wait_for(turn, 1)

    asyncio.run(scenario())
