"""Timestamp-ordered merge of a partition's input topics, as Kafka Streams does per task.

Faust hands over a partition's topics in fetch-sized runs (all of a batch's orders, then
its scans), so a seller's events would be applied in an order that depends on fetch
timing, and so could the decisions made on intermediate figures. The merge buffers each
(topic, partition) in offset order and releases the record with the lowest (timestamp,
topic rank) among the heads, but only while every topic with nothing buffered has
nothing unread either (asked of the consumer), or has kept the others waiting longer
than `max_idle_s` with no fetch progress on it (`fetched`, the consumer's position: a
topic that is being fetched, however slowly while the worker catches up, is waited for).
The processing order is then the records' timestamp order, the same on every run, on
every worker, and in a replay through the core without a broker.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
log = logging.getLogger("warden")


class TimestampMerge(Generic[Item]):
    def __init__(self, topics: tuple[str, ...], has_unread: Callable[[str, int, int | None], bool],
                 max_idle_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 fetched: Callable[[str, int], Any] = lambda topic, partition: None,
                 stalled: Callable[[str, int], str] = lambda topic, partition: "",
                 grace_s: float = 0.0,
                 answered_at: Callable[[str, int], float | None] = lambda topic, partition: None) -> None:
        self.rank = {t: i for i, t in enumerate(topics)}
        self.topics = topics
        self.has_unread = has_unread  # (topic, partition, last offset received or None) -> bool
        self.max_idle_s = max_idle_s
        self.clock = clock
        self.fetched = fetched
        # (topic, partition) waited for 5 s with no fetch progress: what the consumer can do
        # about it, and its state, for the log
        self.stalled = stalled
        self.queues: dict[int, dict[str, deque[tuple[int, int, Item]]]] = {}
        self.received: dict[tuple[str, int], int] = {}
        # partition -> (since, topic, fetched, said): waiting for that topic since then
        self.blocked_since: dict[int, tuple[float, str, Any, bool]] = {}
        # The arrival grace: a record passes a topic with nothing buffered only once the
        # broker has answered for that topic `grace_s` after the record arrived here
        # (`answered_at`: when the log end last asked was answered, on `clock`), so a record
        # its producer sent before, but the broker appended after, is still waited for.
        self.grace_s = grace_s
        self.answered_at = answered_at
        self.arrivals: dict[tuple[str, int], deque[float]] = {}  # arrival of each buffered record
        self.in_grace: set[int] = set()  # partitions whose release waits for the grace now

    def offer(self, topic: str, partition: int, offset: int, timestamp: int, item: Item,
              arrived: float | None = None) -> None:
        queues = self.queues.setdefault(partition, {})
        q = queues.get(topic)
        if q is None:
            q = queues[topic] = deque()
        q.append((timestamp, offset, item))
        self.received[(topic, partition)] = offset
        if self.grace_s > 0:
            self.arrivals.setdefault((topic, partition), deque()).append(
                self.clock() if arrived is None else arrived)

    def buffered(self, partition: int | None = None) -> int:
        parts = self.queues.values() if partition is None else [self.queues.get(partition, {})]
        return sum(len(q) for queues in parts for q in queues.values())

    def release(self, partition: int) -> list[Item]:
        """The records of `partition` that may be processed now, in order."""
        return list(self.releasing(partition))

    def releasing(self, partition: int) -> Iterator[Item]:
        """`release`, one record at a time: each is taken off the buffer only when asked
        for, so a caller that stops early (to give the event loop a turn, or because a
        rebalance began) leaves the rest buffered, in order, as if never released."""
        queues = self.queues.get(partition)
        if not queues:
            return
        rank = self.rank
        read_up: set[str] = set()  # topics found with nothing unread, during this call
        self.in_grace.discard(partition)
        grace = self.grace_s > 0
        while True:
            best_topic, best_key = None, None
            for topic, q in queues.items():
                if q:
                    key = (q[0][0], rank.get(topic, 99))
                    if best_key is None or key < best_key:
                        best_topic, best_key = topic, key
            if best_topic is None:
                return
            arrived = self.arrivals[(best_topic, partition)][0] if grace else None
            if self._waiting_for_others(partition, queues, read_up, arrived):
                return
            if grace:
                self.arrivals[(best_topic, partition)].popleft()
            yield queues[best_topic].popleft()[2]

    def _waiting_for_others(self, partition: int, queues: dict[str, deque[Any]], read_up: set[str],
                            arrived: float | None = None) -> bool:
        for topic in self.topics:
            if topic in read_up or queues.get(topic):
                continue
            if self.has_unread(topic, partition, self.received.get((topic, partition))):
                now = self.clock()
                position = self.fetched(topic, partition)
                blocked = self.blocked_since.get(partition)
                if blocked is None or blocked[1] != topic or blocked[2] != position:
                    self.blocked_since[partition] = (now, topic, position, False)  # (still) coming
                    return True
                if now - blocked[0] < self.max_idle_s:
                    if now - blocked[0] >= 5.0 and not blocked[3]:
                        self.blocked_since[partition] = (*blocked[:3], True)
                        log.warning("partition %d: waiting %.0f s for %s (unread records, no fetch progress; %s)",
                                    partition, now - blocked[0], topic, self.stalled(topic, partition))
                    return True
                return False  # no progress for long enough: go on without it, as Kafka Streams does
            if arrived is not None:
                answered = self.answered_at(topic, partition)
                if answered is None or answered < arrived + self.grace_s:
                    self.in_grace.add(partition)  # asked again once the grace has passed
                    return True
                continue  # read up for this record; a later record is checked again
            read_up.add(topic)
        self.blocked_since.pop(partition, None)
        return False

    def waiting_for(self) -> tuple[tuple[str, int], ...]:
        """The (topic, partition)s the partitions' releases wait for now: the consumer hands
        their fetched records over first (streams.faust_internals.fetched_in_turn). Safe to
        call from the consumer's thread (the dict is copied in one step)."""
        return tuple((blocked[1], partition) for partition, blocked in tuple(self.blocked_since.items()))

    def forget(self, partitions: set[int] | None = None) -> list[Item]:
        """Drop buffered records (partitions revoked); they were not acked, so they are
        read again by whoever owns the partition next. Returns what was dropped."""
        dropped: list[Item] = []
        for p in list(self.queues):
            if partitions is None or p in partitions:
                for q in self.queues.pop(p).values():
                    dropped.extend(item for _, _, item in q)
                self.blocked_since.pop(p, None)
                self.in_grace.discard(p)
        self.received = {k: v for k, v in self.received.items() if partitions is not None and k[1] not in partitions}
        self.arrivals = {k: v for k, v in self.arrivals.items() if partitions is not None and k[1] not in partitions}
        return dropped
