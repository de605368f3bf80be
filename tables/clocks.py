"""The engine's clock, as two small strategies (CONTRACT §4, `WARDEN_CLOCK`).

Each answers "what time is it on this partition" from the partition's stream time (the
highest event time seen on its inputs); the engine keeps it monotonic per partition and
holds it back while the partition's inputs are not read up (Engine._now)."""

from __future__ import annotations

from typing import Callable, Protocol


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
