"""The engine's clock, as two small strategies (CONTRACT §4, `WARDEN_CLOCK`).

Each answers "what time is it on this partition" from the partition's stream time (the
highest event time seen on its inputs); the engine keeps it monotonic per partition and
holds it back while the partition's inputs are not read up (PartitionClocks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tables.keys import clock_key


class Clock(Protocol):
    name: str

    def now(self, stream_time: int | None) -> int: ...


class EventClock:
    """Stream time: replays and backtests decide exactly as the live worker did."""

    name = "event"

    def now(self, stream_time: int | None) -> int:
        return stream_time if stream_time is not None else 0


class WallClock:
    """Wall-clock time, read through the function given (injected: tests control it)."""

    name = "wall"

    def __init__(self, read: Callable[[], int]) -> None:
        self.read = read

    def now(self, stream_time: int | None) -> int:
        return self.read()


def clock_named(name: str, wall_clock: Callable[[], int] | None) -> Clock:
    if name == "event":
        return EventClock()
    if name == "wall":
        if wall_clock is None:
            raise ValueError("the wall clock needs a wall_clock function")
        return WallClock(wall_clock)
    raise ValueError(f"clock must be 'event' or 'wall', not {name!r}")


class PartitionClocks:
    """Each partition's clock: [stream time, last `now`], kept in the clocks table so that a
    partition's new owner goes on from where its old one stood; monotonic; and held back
    while the partition is `held`."""

    def __init__(self, source: Clock, stores: Any) -> None:
        self.source = source
        self.stores = stores  # its `.clocks` mapping is read at each use (rebound after recovery)
        self._clocks: dict[int, list[Any]] = {}  # partition -> [stream time, last now]
        # partitions whose clock may not pass their stream time (set by the driver while
        # the partition's inputs have records not read yet)
        self.held: set[int] = set()

    def forget(self) -> None:
        """Read every partition's clock from its table again (after recovery)."""
        self._clocks.clear()

    def partitions_seen(self) -> list[int]:
        """The partitions whose clock has been read or moved."""
        return list(self._clocks)

    def stream_time(self, partition: int) -> int | None:
        """The highest event time seen on the partition's inputs (CONTRACT §4)."""
        return self._clock(partition)[0]

    def last_now(self, partition: int) -> int:
        """The partition's clock as it last stood (0: never moved)."""
        return int(self._clock(partition)[1])

    def _clock(self, partition: int) -> list[Any]:
        clock = self._clocks.get(partition)
        if clock is None:
            stored = self.stores.clocks.get(clock_key(partition))
            clock = self._clocks[partition] = list(stored) if stored else [None, 0]
        return clock

    def now(self, partition: int, event_time: int | None) -> int:
        """The clock of a partition: monotonic, and held back while it is `held`.

        A held partition (the driver says its inputs have records not read yet: a backlog,
        a restart, a partition just taken over) runs no further than its stream time, the
        latest event time released to it. The driver releases records in timestamp order
        across the partition's topics (a timestamp merge), so no unread record is older
        than that: a deadline is never judged before the scan that meets it has been read,
        and a history read faster than real time is judged as the event clock judges it.
        """
        clock = self._clock(partition)
        stream, last = clock
        if event_time is not None and (stream is None or event_time > stream):
            stream = event_time
        now = self.source.now(stream)
        if partition in self.held:
            limit = stream if stream is not None else 0
            if now > limit:
                now = limit
        if now < last:
            now = last
        if stream != clock[0] or now != last:
            clock[0], clock[1] = stream, now
            self.stores.clocks[clock_key(partition)] = [stream, now]
        return now
