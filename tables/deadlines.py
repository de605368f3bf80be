"""The deadline heap: per partition, the instants at which an order's contribution, a
seller's monthly figures or an escalation may change with no event, as (due, kind, key).

Entries are never removed when a deadline moves: the holder keeps its current `due`, and
an entry whose due no longer matches it is skipped when popped (superseded). The heap is
memory only, rebuilt from the tables after every rebalance.

Bounded (`limit`): a partition's heap holds only the deadlines due up to its horizon, at
most about `limit` of them; a later one is not held (its holder in the tables keeps it).
When the clock reaches the horizon, the engine scans the partition's tables for the next
ones (`refill`). Every deadline due up to the horizon is always held, so the firing order
(due, kind, key) is the same as with every deadline held."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

ORDER, SELLER, ENFORCEMENT = 0, 1, 2  # what a deadline is for; the key says whose
Entry = tuple[int, int, str]


class Deadlines:
    def __init__(self, limit: int | None = None) -> None:
        self.heaps: dict[int, list[Entry]] = {}
        self.limit = limit  # entries held per partition, about (None: every one)
        self.horizons: dict[int, int] = {}  # partition -> no entry due after it is held
        self.refills = 0  # scans of a partition's tables for its next deadlines

    def schedule(self, partition: int, due: int, kind: int, key: str) -> None:
        horizon = self.horizons.get(partition)
        if horizon is not None and due > horizon:
            return  # found again when the clock reaches the horizon
        heap = self.heaps.get(partition)
        if heap is None:
            heap = self.heaps[partition] = []
        heapq.heappush(heap, (due, kind, key))
        if self.limit is not None and len(heap) > 2 * self.limit:
            self._bound(partition, heap)

    def next_due(self, partition: int) -> int | None:
        """The next instant something is due: the heap's first entry, or just past the
        horizon (the engine then refills the partition)."""
        heap = self.heaps.get(partition)
        if heap:
            return heap[0][0]
        horizon = self.horizons.get(partition)
        return None if horizon is None else horizon + 1

    def beyond_horizon(self, partition: int, due: int) -> bool:
        """Whether `due` lies past what the partition's heap holds (refill first)."""
        horizon = self.horizons.get(partition)
        return horizon is not None and due > horizon

    def pop(self, partition: int) -> Entry:
        return heapq.heappop(self.heaps[partition])

    def count(self, partition: int | None = None) -> int:
        if partition is None:
            return sum(len(h) for h in self.heaps.values())
        return len(self.heaps.get(partition, ()))

    def clear(self) -> None:
        self.heaps = {}
        self.horizons = {}

    def load(self, entries: dict[int, list[Entry]]) -> int:
        """Replace every heap with `entries` (partition -> every deadline of it, in any
        order). Returns how many entries are held."""
        self.heaps, self.horizons = {}, {}
        for partition, found in entries.items():
            self.refill(partition, lambda found=found: found, complete=True)  # type: ignore[misc]
        return self.count()

    def refill(self, partition: int, entries: Callable[[], Iterable[Entry]], complete: bool = False) -> None:
        """The partition's heap made of what `entries()` yields: every deadline past its
        horizon (every one if `complete`), in any order, streamed: the earliest `limit` are
        held and the horizon set just before the first one left out (none: all held)."""
        self.refills += 0 if complete else 1
        kept, horizon = self._earliest(entries)
        heapq.heapify(kept)
        self.heaps[partition] = kept
        if horizon is None:
            self.horizons.pop(partition, None)
        else:
            self.horizons[partition] = horizon

    def _bound(self, partition: int, heap: list[Entry]) -> None:
        """Too many scheduled before the horizon: hold the earliest, move the horizon back."""
        kept, horizon = self._earliest(lambda: heap)
        heapq.heapify(kept)
        self.heaps[partition] = kept
        if horizon is not None:
            self.horizons[partition] = horizon

    def _earliest(self, entries: Callable[[], Iterable[Entry]]) -> tuple[list[Entry], int | None]:
        """The earliest `limit` entries of `entries()` and the horizon: every entry due up to
        it is among them (None: every entry is). In one pass, holding `limit` entries; a
        second pass only if more than `limit` are due at one instant (all are held)."""
        limit = self.limit
        if limit is None:
            return list(entries()), None
        latest: list[tuple[int, int, str]] = []  # the earliest so far, as a max-heap (due negated)
        first_out: int | None = None  # the earliest due of an entry left out
        push, replace = heapq.heappush, heapq.heapreplace
        for due, kind, key in entries():
            if len(latest) < limit:
                push(latest, (-due, kind, key))
                continue
            out = due
            if due < -latest[0][0]:
                out = -replace(latest, (-due, kind, key))[0]
            if first_out is None or out < first_out:
                first_out = out
        kept = [(-due, kind, key) for due, kind, key in latest]
        if first_out is None:
            return kept, None
        kept = [e for e in kept if e[0] < first_out]
        if not kept:  # more than `limit` due at the first instant: hold them all
            kept = [e for e in entries() if e[0] == first_out]
            return kept, first_out
        return kept, first_out - 1
