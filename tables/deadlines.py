"""The deadline heap: per partition, the instants at which an order's contribution, a
seller's monthly figures or an escalation may change with no event, as (due, kind, key).

Entries are never removed when a deadline moves: the holder keeps its current `due`, and
an entry whose due no longer matches it is skipped when popped (superseded). The heap is
memory only, rebuilt from the tables after every rebalance."""

from __future__ import annotations

import heapq

ORDER, SELLER, ENFORCEMENT = 0, 1, 2  # what a deadline is for; the key says whose
Entry = tuple[int, int, str]


class Deadlines:
    def __init__(self) -> None:
        self.heaps: dict[int, list[Entry]] = {}

    def schedule(self, partition: int, due: int, kind: int, key: str) -> None:
        heapq.heappush(self.heaps.setdefault(partition, []), (due, kind, key))

    def next_due(self, partition: int) -> int | None:
        heap = self.heaps.get(partition)
        return heap[0][0] if heap else None

    def pop(self, partition: int) -> Entry:
        return heapq.heappop(self.heaps[partition])

    def count(self, partition: int | None = None) -> int:
        if partition is None:
            return sum(len(h) for h in self.heaps.values())
        return len(self.heaps.get(partition, ()))

    def clear(self) -> None:
        self.heaps = {}

    def load(self, entries: dict[int, list[Entry]]) -> int:
        """Replace every heap with `entries` (partition -> its entries, in any order), each
        made a heap in linear time. Returns how many entries were loaded."""
        for heap in entries.values():
            heapq.heapify(heap)
        self.heaps = entries
        return sum(len(h) for h in entries.values())
