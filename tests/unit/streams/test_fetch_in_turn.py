"""The consumer thread hands over first the fetched records the timestamp merge waits for
(streams.faust_internals.fetched_in_turn): a partition's input topic held at the back of
aiokafka's records does not wait behind the others' backlog."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from streams.faust_internals.consumer import fetched_in_turn


class Held:
    """What aiokafka holds of one partition's fetch: `n` records from offset 0."""

    def __init__(self, n: int) -> None:
        self.next, self.end = 0, n

    def getall(self, max_records: int) -> list[int]:
        taken = list(range(self.next, min(self.end, self.next + max_records)))
        self.next += len(taken)
        return taken

    def has_more(self) -> bool:
        return self.next < self.end


class Subscriptions:
    reassignment_in_progress = False

    def is_assigned(self, tp: Any) -> bool:
        return True


class Fetcher:
    def __init__(self, held: dict[str, Held]) -> None:
        self._records: OrderedDict[str, Any] = OrderedDict(held)
        self._subscriptions = Subscriptions()
        self._wait_consume_future = None
        self._closed = False
        self.notified = 0

    def _notify(self, future: Any) -> None:
        self.notified += 1


def test_a_wanted_partition_behind_a_backlog_is_served_at_once() -> None:
    # 36 partitions hold 8,000 records each: in aiokafka's order the last one is served
    # only after the 280,000 records before it
    held = {f"p{i}": Held(8_000) for i in range(36)}
    fetcher = Fetcher(held)
    drained = asyncio.run(fetched_in_turn(fetcher, set(held), 0.0, 5_000))
    assert "p35" not in drained and sum(len(r) for r in drained.values()) == 5_000
    drained = asyncio.run(fetched_in_turn(fetcher, set(held), 0.0, 5_000, wanted=("p35",)))
    assert drained["p35"] == list(range(625))  # an eighth of the call's records
    assert sum(len(r) for r in drained.values()) == 5_000  # the rest in aiokafka's order


def test_records_come_in_offset_order_and_none_is_lost() -> None:
    held = {"a": Held(1_000), "b": Held(10), "c": Held(3_000)}
    fetcher = Fetcher(held)
    got: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    while fetcher._records:
        for tp, records in asyncio.run(fetched_in_turn(fetcher, {"a", "b", "c"}, 0.0, 700, ("c",))).items():
            got[tp].extend(records)
    assert got == {"a": list(range(1_000)), "b": list(range(10)), "c": list(range(3_000))}
    assert fetcher.notified == 3  # each partition exhausted: fetched again


def test_partitions_not_asked_for_stay_held() -> None:
    fetcher = Fetcher({"a": Held(10), "paused": Held(10)})
    drained = asyncio.run(fetched_in_turn(fetcher, {"a"}, 0.0, 5_000))
    assert set(drained) == {"a"}
    assert "paused" in fetcher._records
