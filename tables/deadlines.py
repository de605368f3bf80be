"""The deadline heap: per partition, the instants at which an order's contribution, a
seller's monthly figures or an escalation may change with no event, as (due, kind, key).

Entries are never removed when a deadline moves: the holder keeps its current `due`, and
an entry whose due no longer matches it is skipped when popped (superseded). The heap is
memory only, rebuilt from the tables after every rebalance. An entry is held packed, as
bytes that sort as (due, kind, key) do (the due big-endian): 80 bytes, not 190 as a tuple
of an int, an int and a str.

Bounded (`limit`): a partition's orders' heap holds only the order deadlines due up to
its horizon, at most about `limit` of them; a later one is not held (the order in the
tables keeps it). When the clock reaches the horizon, the engine scans the partition's
orders for the next ones (`refill`). Every deadline due up to the horizon is always held,
so the firing order (due, kind, key) is the same as with every deadline held. The
sellers' and escalations' deadlines, one a seller at most, are all held."""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator

ORDER, SELLER, ENFORCEMENT = 0, 1, 2  # what a deadline is for; the key says whose
Entry = tuple[int, int, str]
_KINDS = (b"\x00", b"\x01", b"\x02")
_AFTER_ALL = b"\xff"  # after the instant's every entry: a kind is 0-2, and UTF-8 has no 0xff


def pack(due: int, kind: int, key: str) -> bytes:
    return due.to_bytes(8, "big") + _KINDS[kind] + key.encode()


def unpack(packed: bytes) -> Entry:
    return int.from_bytes(packed[:8], "big"), packed[8], packed[9:].decode()


class Deadlines:
    """Per partition two heaps of packed entries: the orders' (bounded by `limit`, with a
    horizon) and the sellers' and escalations' (one entry a seller at most: whole)."""

    def __init__(self, limit: int | None = None) -> None:
        self.heaps: dict[int, list[bytes]] = {}  # the orders' deadlines, packed
        self.others: dict[int, list[bytes]] = {}  # the sellers' and escalations', packed
        self.limit = limit  # order entries held per partition, about (None: every one)
        self.horizons: dict[int, int] = {}  # partition -> no order entry due after it is held
        self.refills = 0  # scans of a partition's orders for its next deadlines

    def schedule(self, partition: int, due: int, kind: int, key: str) -> None:
        packed = due.to_bytes(8, "big") + _KINDS[kind] + key.encode()
        if kind != ORDER:
            heapq.heappush(self.others.setdefault(partition, []), packed)
            return
        horizon = self.horizons.get(partition)
        if horizon is not None and due > horizon:
            return  # found again when the clock reaches the horizon
        heap = self.heaps.get(partition)
        if heap is None:
            heap = self.heaps[partition] = []
        heapq.heappush(heap, packed)
        if self.limit is not None and len(heap) > self.limit + self.limit // 4:
            self._bound(partition, heap)

    def next_due(self, partition: int) -> int | None:
        """The next instant something is due: the heaps' first entry, or just past the
        horizon (the engine then refills the partition's orders)."""
        heap = self.heaps.get(partition)
        if heap:
            due: int | None = int.from_bytes(heap[0][:8], "big")
        else:
            horizon = self.horizons.get(partition)
            due = None if horizon is None else horizon + 1
        others = self.others.get(partition)
        if others:
            other = int.from_bytes(others[0][:8], "big")
            if due is None or other < due:
                return other
        return due

    def beyond_horizon(self, partition: int, due: int) -> bool:
        """Whether `due` lies past the order deadlines the partition holds (refill first)."""
        horizon = self.horizons.get(partition)
        return horizon is not None and due > horizon

    def pop(self, partition: int) -> Entry:
        """The earliest entry of the partition (its order heap holds every order deadline
        up to the horizon, and the engine pops nothing past it)."""
        heap, others = self.heaps.get(partition), self.others.get(partition)
        if others and (not heap or others[0] < heap[0]):
            return unpack(heapq.heappop(others))
        assert heap is not None
        return unpack(heapq.heappop(heap))

    def entries(self, partition: int) -> list[Entry]:
        """The partition's entries held, in no order."""
        return [unpack(e) for e in (*self.heaps.get(partition, ()), *self.others.get(partition, ()))]

    def count(self, partition: int | None = None) -> int:
        if partition is None:
            return sum(len(h) for h in self.heaps.values()) + sum(len(h) for h in self.others.values())
        return len(self.heaps.get(partition, ())) + len(self.others.get(partition, ()))

    def clear(self) -> None:
        self.heaps, self.others, self.horizons = {}, {}, {}

    def load(self, entries: dict[int, list[Entry]]) -> int:
        """Replace every heap with `entries` (partition -> every deadline of it, in any
        order). Returns how many entries are held."""
        self.clear()
        for partition, found in entries.items():
            others = [pack(*e) for e in found if e[1] != ORDER]
            heapq.heapify(others)
            self.others[partition] = others
            self.refill(partition, lambda found=found: (e for e in found if e[1] == ORDER),  # type: ignore[misc]
                        complete=True)
        return self.count()

    def refill(self, partition: int, entries: Callable[[], Iterable[Entry]], complete: bool = False) -> None:
        """`refill_steps` at once."""
        for _ in self.refill_steps(partition, entries, complete):
            pass

    def refill_steps(self, partition: int, entries: Callable[[], Iterable[Entry]], complete: bool = False,
                     step: int = 512, batch_size: int = 4096) -> Iterator[None]:
        """The partition's order heap made of what `entries()` yields: every order deadline
        past its horizon (every one if `complete`), in any order, streamed: the earliest
        `limit` are held and the horizon set just before the first one left out (none: all
        held). Pauses (yields) every `step` entries (a store's scan reads a few µs an entry).
        The entries are taken in sorted batches of `batch_size`, each merged into what is
        held (two sorted runs: a linear merge, not a sort), so no single step sorts more
        than a batch. Holds about `limit` + `batch_size` entries at most meanwhile: once
        `limit` + 1 are held, an entry due after the latest of them is passed over."""
        self.refills += 0 if complete else 1
        limit = self.limit
        kept: list[bytes] = []
        horizon: int | None = None
        if limit is None:
            for n, e in enumerate(entries(), 1):
                kept.append(pack(*e))
                if n % step == 0:
                    yield
        else:
            latest: int | None = None  # the due of the (limit + 1)-th earliest so far
            batch: list[bytes] = []
            for n, (due, kind, key) in enumerate(entries(), 1):
                if latest is None or due <= latest:
                    batch.append(pack(due, kind, key))
                    if len(batch) >= batch_size:
                        batch.sort()
                        kept += batch
                        kept.sort()  # two sorted runs: merged
                        batch = []
                        if len(kept) > limit:
                            # the earliest `limit` + 1 and every tie of the last one's instant
                            last = kept[limit][:8]
                            del kept[bisect.bisect_right(kept, last + _AFTER_ALL):]
                            latest = int.from_bytes(last, "big")
                if n % step == 0:
                    yield
            # every entry passed over is due after the earliest left out: the ties of an
            # instant are all in `kept` + `batch`
            batch.sort()
            held = kept + batch  # two sorted runs
            kept, horizon = self._earliest(lambda: held)
        heapq.heapify(kept)
        self.heaps[partition] = kept
        if horizon is None:
            self.horizons.pop(partition, None)
        else:
            self.horizons[partition] = horizon

    def _bound(self, partition: int, heap: list[bytes]) -> None:
        """Too many scheduled before the horizon: hold the earliest, move the horizon back."""
        kept, horizon = self._earliest(lambda: heap)
        heapq.heapify(kept)
        self.heaps[partition] = kept
        if horizon is not None:
            self.horizons[partition] = horizon

    def _earliest(self, entries: Callable[[], Iterable[bytes]]) -> tuple[list[bytes], int | None]:
        """The earliest `limit` packed entries of `entries()` and the horizon: every entry due
        up to it is among them (None: every entry is). More than `limit` due at the first
        instant: all of them."""
        limit = self.limit
        if limit is None:
            return list(entries()), None
        kept = sorted(entries())
        if len(kept) <= limit:
            return kept, None
        first_out = kept[limit][:8]  # every entry not kept is at or after its instant
        first_due = int.from_bytes(first_out, "big")
        cut = bisect.bisect_left(kept, first_out)  # the entries due before that instant
        if cut == 0:  # more than `limit` due at the first instant: hold them all
            return kept[:bisect.bisect_right(kept, first_out + _AFTER_ALL)], first_due
        del kept[cut:]
        return kept, first_due - 1
