"""The batch path: Faust's aiokafka consumer delivering the hot topics in batches, in
offset order, none skipped; acks; the consumer's state as Warden reads it."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from aiokafka.consumer.fetcher import FetchError
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance
from aiokafka.errors import ConsumerStoppedError
from aiokafka.structs import TopicPartition as AIOKafkaTP
from faust.transport import consumer as faust_consumer_module
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as KafkaConsumer
from faust.types import TP
from faust.utils.functional import consecutive_numbers as faust_consecutive_numbers

# (topic partition, its records as aiokafka returns them: .offset .timestamp (ms) .key .value .headers)
Batch = list[tuple[TP, list[Any]]]
log = logging.getLogger("warden")

# (the batch, its rebalance generation, the log ends of its partitions' batch-routed topics)
BatchHandler = Callable[[Batch, int, Mapping[TP, int]], Awaitable[None]]


class Acks:
    """Acknowledge processed records to Faust's consumer, as `Consumer.ack` does for a message."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.committed = consumer._committed_offset
        self.index = consumer._acked_index
        self.acked = consumer._acked

    def ack(self, tp: TP, offset: int) -> None:
        committed = self.committed[tp]
        if committed is None or offset >= committed:
            index = self.index[tp]
            if offset not in index:
                index.add(offset)
                self.acked[tp].append(offset)
                self.consumer._n_acked += 1


class FairConsumerThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, handing over first the fetched records the batch handler
    waits for. aiokafka holds a fetch's records per partition (up to a megabyte each) and
    hands them over in the order the fetches arrived, `max_poll_records` at a time: a
    partition at the back waits until every one before it is drained, tens of thousands of
    records at 1M events, and the timestamp merge, which needs every input topic of a
    partition, waits with it (seconds at a time: README, "Processing order"). The merge names the
    (topic, partition) each partition waits for (`route_batches`' `wanted`); those held
    are served first, then the rest in aiokafka's order."""

    async def _fetch_records(self, consumer: Any, active_partitions: Any, timeout: float | None = None,
                             max_records: int | None = None) -> Any:  # pragma: no cover - run by Faust
        if not self.consumer.flow_active:
            return {}
        fetcher = consumer._fetcher
        if consumer._closed or fetcher._closed:
            raise ConsumerStoppedError()
        wanted_now = getattr(self.consumer.app, "batch_wanted", None)
        wanted = wanted_now() if wanted_now is not None else ()
        boundaries = getattr(self.consumer, "boundaries", None)
        with fetcher._subscriptions.fetch_context():
            if boundaries is not None:
                boundaries.observe(fetcher)
            return await fetched_in_turn(fetcher, active_partitions, timeout or 0.0, max_records or 5_000, wanted,
                                         boundaries)


class Boundaries:
    """Offsets of the batch-routed partitions known, from what fetches returned, to lie
    between two record batches of the log: where the timestamp merge may trust a broker's
    log end. A broker may report a partition's end short of its last record (Tansu answers
    its last batch's base offset + 1), so "the end is at or before the next offset to
    read" proves nothing unread only where that offset is not inside a batch. Two kinds of
    evidence, both from aiokafka's fetcher, read in the consumer's thread where it runs:

    - a fetch's records handed over whole: aiokafka's position then stands after the last
      batch the broker returned (a broker returns whole batches);
    - a fetch answered at the position with no records: the position was the log's end
      when the broker answered (seen as a newer answer for an unchanged position with
      nothing held: an answer with records would be held until handed over).

    A seek forgets what was seen of the partition's answers. Dict reads and writes from
    the worker's thread are single steps (a snapshot: a stale answer only delays)."""

    def __init__(self, topics: Collection[str]) -> None:
        self.route = topics  # as routed (route_batches): a new route makes new Boundaries
        self.topics = frozenset(topics)
        self.known: dict[TP, int] = {}  # partition -> the latest offset known to be a boundary
        self._seen: dict[Any, tuple[int, int | None]] = {}  # aiokafka tp -> (position, answered at)

    def observe(self, fetcher: Any) -> None:
        """Note a fetch answered empty at an unchanged position since the last look."""
        subscription = fetcher._subscriptions.subscription
        if subscription is None or subscription.assignment is None:
            return
        held = fetcher._records
        seen = self._seen
        for tp, state in subscription.assignment._tp_state.items():
            if tp.topic not in self.topics or not state.has_valid_position or state.paused:
                seen.pop(tp, None)
                continue
            if tp in held:
                seen.pop(tp, None)
                continue
            position, answered = state.position, state.timestamp
            before = seen.get(tp)
            if before is not None and before[0] == position and answered is not None and before[1] != answered:
                self.known[TP(tp.topic, tp.partition)] = position
            seen[tp] = (position, answered)

    def drained(self, subscriptions: Any, tp: Any) -> None:
        """Every record of a fetch's answer for `tp` was handed over: its position is a boundary."""
        if tp.topic not in self.topics:
            return
        subscription = subscriptions.subscription
        state = None if subscription is None or subscription.assignment is None else \
            subscription.assignment.state_value(tp)
        if state is not None and state.has_valid_position:
            self.known[TP(tp.topic, tp.partition)] = state.position

    def sought(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            self._seen.pop(AIOKafkaTP(tp.topic, tp.partition), None)

    def at(self, tp: TP) -> int | None:
        return self.known.get(tp)


async def fetched_in_turn(fetcher: Any, partitions: Any, timeout: float, max_records: int,
                          wanted: tuple[tuple[str, int], ...] = (),
                          boundaries: Boundaries | None = None) -> dict[Any, list[Any]]:
    """aiokafka's `Fetcher.fetched_records`, serving the `wanted` partitions it holds first
    (at most an eighth of `max_records` each), then the others in its order."""
    subscriptions = fetcher._subscriptions
    while True:
        if subscriptions.reassignment_in_progress:
            await subscriptions.wait_for_assignment()
        started = time.monotonic()
        held = fetcher._records
        drained: dict[Any, list[Any]] = {}
        budget = max_records
        first = [tp for tp in held if tp in wanted] if wanted else []
        share = max(100, max_records // 8)
        for tp in first + [tp for tp in held if tp not in first] if first else list(held):
            if partitions and tp not in partitions:
                if not subscriptions.is_assigned(tp):
                    del held[tp]
                continue
            result = held[tp]
            if isinstance(result, FetchError):
                if drained:
                    return drained  # the error is raised on the next call
                del held[tp]
                fetcher._notify(fetcher._wait_consume_future)
                result.check_raise()
                continue
            records = result.getall(min(share, budget) if tp in first else budget)
            if not result.has_more():
                del held[tp]
                fetcher._notify(fetcher._wait_consume_future)
                if records and boundaries is not None:
                    boundaries.drained(subscriptions, tp)
            if records:
                drained[tp] = records
                budget -= len(records)
                if budget <= 0:
                    break
        if drained or not timeout:
            return drained
        waiter = fetcher._create_fetch_waiter()
        done, pending = await asyncio.wait([waiter], timeout=timeout)
        if not done or fetcher._closed:
            for fut in pending:
                fut.cancel()
            return {}
        if waiter.done():
            waiter.result()
        timeout = max(0.0, timeout - (time.monotonic() - started))


def consecutive_runs(numbers: Iterable[int]) -> Iterator[Sequence[int]]:
    """The runs of consecutive numbers in `numbers`, as Faust's `consecutive_numbers`
    yields them, found without a Python step per number when `numbers` is a sorted list
    (Faust's commit asks for the first run of a partition's acknowledged offsets, sorted:
    a busy worker acknowledges a hundred thousand between two commits, and a Python step
    for each blocks the loop). A run's end is found by bisection (in a sorted list of
    distinct numbers, the first run is the longest prefix whose last number is the first
    plus its length less one) and checked for duplicates at C speed; duplicates, which
    defeat the bisection, fall back to Faust's way from there."""
    if not isinstance(numbers, list):
        yield from faust_consecutive_numbers(numbers)
        return
    start, n = 0, len(numbers)
    while start < n:
        first = numbers[start]
        lo, hi = start, n - 1  # the last index whose number continues the run from `start`
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if numbers[mid] - first == mid - start:
                lo = mid
            else:
                hi = mid - 1
        run = numbers[start:lo + 1]
        if len(set(run)) != len(run):  # sorted, distinct, last - first == len - 1: consecutive
            yield from faust_consecutive_numbers(numbers[start:])
            return
        yield run
        start = lo + 1


JOIN_SENT_AT = "_warden_join_sent_at"  # set on aiokafka's group coordinator by use_join_marker


def use_join_marker() -> None:
    """aiokafka's group coordinator notes when it begins a JoinGroup (`group_join_begun`)."""
    original = getattr(CoordinatorGroupRebalance.perform_group_join, "__wrapped__",
                       CoordinatorGroupRebalance.perform_group_join)

    @functools.wraps(original)
    async def perform_group_join(self: Any) -> Any:
        setattr(self._coordinator, JOIN_SENT_AT, time.monotonic())
        return await original(self)

    CoordinatorGroupRebalance.perform_group_join = perform_group_join  # type: ignore[method-assign]


def use_quick_commit_offsets() -> None:
    """Faust's commit finds a partition's committable offset with `consecutive_runs`."""
    faust_consumer_module.consecutive_numbers = consecutive_runs  # type: ignore[assignment]  # (parameter named `it` there)


class BatchConsumer(KafkaConsumer):
    """Faust's aiokafka consumer, delivering the batch-routed topics' records in batches.

    Every record of a batch-routed partition is delivered exactly in offset order, none
    skipped. After every rebalance a partition's records are delivered only once it has
    been sought to its committed offset (or, with none committed, to the start of the
    log): records held unacknowledged when the rebalance began (in the merge) are
    dropped then, and must be read again. aiokafka's `seek_to_committed` moves only
    partitions with a committed offset above 0, so a partition kept through the
    rebalance with nothing committed yet went on from where it had fetched, past the
    dropped records.

    From the seek on, the consumer knows the offset it expects next of each partition.
    A fetch that starts beyond it is not taken as a gap in the log at once: records can
    be fetched past without being delivered (fetched before a seek and returned after
    it, fetched for a partition paused meanwhile, cut off by a rebalance), and counting
    them as a gap would commit past records never handled. The partition is sought back
    to the expected offset and read again; only if the broker then answers from beyond it
    again is the gap real (transaction markers, compaction) and acknowledged."""

    _sought_generation = -2  # the generation whose partitions were last sought
    _seeking = False  # perform_seek under way: its seeks decide the positions
    _expected: dict[TP, int | None]  # batch-routed partition -> the offset delivered next (None: any)
    _sought: dict[TP, int | None]  # batch-routed partition -> where this generation began reading it
    _reread: dict[TP, int]  # partition -> the offset it was sought back to, to verify a gap

    def __post_init__(self) -> None:  # pragma: no cover - called by Faust's Service
        super().__post_init__()
        self._expected = {}
        self._sought = {}
        self._reread = {}
        self._seeks: set[asyncio.Task[None]] = set()

    _boundaries: Boundaries | None = None

    @property
    def boundaries(self) -> Boundaries | None:
        """What fetches showed of the batch-routed partitions' batch boundaries (Boundaries)."""
        route = getattr(self.app, "batch_route", None)
        if route is None:
            return None
        if self._boundaries is None or self._boundaries.route is not route[0]:
            self._boundaries = Boundaries(route[0])
        return self._boundaries

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return FairConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by Faust's fetcher
        route = getattr(self.app, "batch_route", None)
        if route is None:
            return await super()._drain_messages(fetcher)
        topics, handler = route
        changelogs = getattr(self.app, "changelog_route", None)
        callback = self.callback
        to_message = self._to_message
        read_offset = self._read_offset
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        app = self.app
        again = getattr(app, "batch_again", None)
        any_topic = next(iter(topics))
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                waiting = again() if again is not None else ()
                records, active = await self._wait_next_records(0.02 if waiting else 1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                generation = app.consumer_generation_id
                sought = self._sought_generation == generation
                if not records:
                    if waiting and sought and self.flow_active and not app.rebalancing:
                        # nothing new: the partitions waiting on time are asked again
                        parts = set(waiting)
                        ends = await self._log_ends(topics, parts)
                        if self.flow_active and app.consumer_generation_id == generation:
                            await handler([(TP(any_topic, p), []) for p in sorted(parts)], generation, ends)
                    continue
                batch: Batch = []
                for tp, recs in records.items():
                    if not self.flow_active or app.consumer_generation_id != generation:
                        break
                    if active is not None and tp not in active and tp not in self._buffered_partitions:
                        continue
                    if tp.topic in topics:
                        if not sought:
                            continue  # fetched before the seek of this generation: read again after it
                        recs = await self._in_order(tp, recs, generation)
                        if recs:
                            batch.append((tp, recs))
                        continue
                    last = read_offset[tp]
                    if last is not None and recs[0].offset < last:
                        recs = [r for r in recs if r.offset >= last]  # read already: dropped, as Faust does
                        if not recs:
                            continue
                    if changelogs is not None and changelogs(app, tp, recs):
                        read_offset[tp] = recs[-1].offset
                    else:
                        for r in recs:
                            if not self.flow_active or app.consumer_generation_id != generation:
                                break
                            await self.wait_first(callback(to_message(tp, r)), self.suspend_flow.wait())
                            read_offset[tp] = r.offset
                if batch:
                    ends = await self._log_ends(topics, {tp.partition for tp, _ in batch})
                    if self.flow_active and app.consumer_generation_id == generation:
                        await handler(batch, generation, ends)
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise

    async def _in_order(self, tp: TP, recs: list[Any], generation: int) -> list[Any]:
        """The records of `recs` to deliver now: those from the offset expected next, if the
        fetch reached it (see the class). Marks where delivery stands. Nothing while the
        app is still rebalancing: the handler refuses a batch then (`batch_current`), and
        records marked delivered but not handled would be skipped for the rest of the
        generation (Faust resumes the flow and seeks before its rebalance has ended; a
        fetch answered between the two was lost, and the timestamp merge then waited for
        them for good). Left undelivered, the next fetch begins past the expected offset
        and the partition is read again from it."""
        if self.app.rebalancing:
            return []
        expected = self._expected.get(tp)
        if expected is not None:
            if recs[-1].offset < expected:
                return []  # read already
            if recs[0].offset < expected:
                recs = [r for r in recs if r.offset >= expected]
            elif recs[0].offset > expected:
                if self._reread.get(tp) != expected:
                    # fetched past records never delivered: read them again
                    if not self._seeking and self.app.consumer_generation_id == generation:
                        self._reread[tp] = expected
                        log.info("%s[%d]: fetch began at %d, %d expected: reading from %d again",
                                 tp.topic, tp.partition, recs[0].offset, expected, expected)
                        await self._seek_in_thread({tp: expected})
                    return []
                await self._add_gap(tp, expected, recs[0].offset - 1)  # the broker holds none between
        self._reread.pop(tp, None)
        await self._note_gaps(tp, recs[0].offset, recs)
        self._expected[tp] = recs[-1].offset + 1
        self._read_offset[tp] = recs[-1].offset
        return recs

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, at the end of every rebalance (see
        `seek_to_committed`)."""
        self._seeking = True
        try:
            await super().perform_seek()
            # a partition sought past its committed offset (to a restored checkpoint's input
            # offsets): the records before are covered by the tables, so they count as
            # acknowledged, and the next commit moves the committed offset there even if no
            # record follows (Faust commits only partitions with acknowledgements pending)
            for tp, offset in self._sought.items():
                committed = self._committed_offset.get(tp)
                if offset is None or offset <= 0 or (committed is not None and offset <= committed):
                    continue
                if committed is not None and offset - 2 >= committed:
                    await self._add_gap(tp, committed, offset - 2)
                Acks(self).ack(tp, offset - 1)
        finally:
            self._seeking = False

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset, and the batch-routed ones
        with none (or 0) committed to the start of the log, which aiokafka leaves where
        they are (see the class). Each batch-routed partition's expected offset is where
        it was sought to; from then on this generation's records are delivered. Records
        fetched between the first seek and that moment were dropped, so every batch-routed
        partition is sought to its expected offset once more, in the same step."""
        generation = self.app.consumer_generation_id
        committed = await super().seek_to_committed()
        route = getattr(self.app, "batch_route", None)
        if route is None:
            return committed
        expected: dict[TP, int | None] = {
            TP(tp.topic, tp.partition): offset for tp, offset in committed.items()
            if tp.topic in route[0] and offset is not None and offset > 0}
        fresh = [AIOKafkaTP(tp.topic, tp.partition) for tp in self.assignment()
                 if tp.topic in route[0] and tp not in expected]
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
            try:
                starts = await self._thread.earliest_offsets(*fresh)
            except Exception as exc:  # not known: the first record fetched is where it starts
                log.warning("the log starts of %d partitions are not known (%r)", len(fresh), exc)
                starts = {}
            for tp in fresh:
                start = starts.get(tp)
                expected[TP(tp.topic, tp.partition)] = start if isinstance(start, int) else None
        restored = getattr(self.app, "restored_input_offset", None)
        if restored is not None:
            # the tables hold what the newest restored checkpoint covers: its input offsets
            # come before the committed ones (Kafka's commit may lag the checkpoint, or
            # follow it by records that changed nothing)
            for tp in self.assignment():
                if tp.topic in route[0]:
                    offset = restored(tp.topic, tp.partition)
                    if offset is not None:
                        expected[TP(tp.topic, tp.partition)] = offset
        if self.app.consumer_generation_id != generation:
            return committed  # a newer rebalance began: its own seek follows
        self._expected = expected
        self._sought = dict(expected)
        self._reread = {}
        self._sought_generation = generation
        await self._seek_in_thread({tp: offset for tp, offset in expected.items() if offset is not None})
        return committed

    async def _seek_in_thread(self, offsets: Mapping[TP, int]) -> None:
        """Seek partitions in the consumer's thread, where aiokafka's fetcher runs (a seek
        from this thread can delete a partition's fetched records while that thread reads
        them: a KeyError that crashes the fetcher). A partition no longer assigned is left."""
        consumer = self._thread._ensure_consumer()

        boundaries = self.boundaries

        async def seek() -> None:
            if boundaries is not None:
                boundaries.sought(offsets)
            for tp, offset in offsets.items():
                try:
                    consumer.seek(AIOKafkaTP(tp.topic, tp.partition), offset)
                except Exception as exc:  # revoked meanwhile: its next owner seeks it
                    log.info("%s[%d] not sought to %d: %r", tp.topic, tp.partition, offset, exc)

        await self._thread.call_thread(seek)

    def reread_if_skipped(self, tp: TP) -> bool:
        """Seek `tp` back to the offset expected next if aiokafka has fetched past it with
        nothing delivered (records dropped and no later ones to reveal the hole: the
        merge asks when it has waited for `tp` a while). True if it did."""
        expected = self._expected.get(tp)
        if expected is None or self._seeking:
            return False
        if self._sought_generation != self.app.consumer_generation_id:
            return False
        try:
            state = partition_state(self, tp)
        except Exception:  # stopping
            return False
        position = state.position if state is not None and state.has_valid_position else None
        if position is None or position <= expected:
            return False
        self._reread[tp] = expected
        log.warning("%s[%d]: fetched up to %d with nothing delivered from %d: reading from %d again",
                    tp.topic, tp.partition, position, expected, expected)
        task = asyncio.ensure_future(self._seek_in_thread({tp: expected}))
        self._seeks.add(task)  # held until done (the loop keeps only a weak reference)
        task.add_done_callback(self._seeks.discard)
        return True

    async def _log_ends(self, topics: Collection[str], partitions: set[int]) -> dict[TP, int]:
        """The log end of every batch-routed topic's `partitions`, asked of the broker after
        the fetch (ListOffsets): what the timestamp merge needs to know whether a topic with
        nothing buffered has records still to come. A fetch response's high watermark is
        not enough: a broker may answer a fetch from some partitions only, and report the
        others' ends as of an earlier read (Tansu does), so a record could be released
        ahead of earlier ones of another topic already on the broker. Empty when the
        broker does not answer: the merge then waits."""
        started = time.monotonic()
        timeout = self.app.conf.broker_request_timeout
        ask = getattr(self.app, "batch_log_ends", None)
        try:
            if ask is not None:  # on a connection of its own (agents.outputs.LogEnds)
                answered = await asyncio.wait_for(ask([(t, p) for t in topics for p in partitions], timeout),
                                                  timeout=timeout)
                return {TP(t, p): end for (t, p), end in answered.items()}
            ends = await asyncio.wait_for(self.highwaters(*(TP(t, p) for t in topics for p in partitions)),
                                          timeout=timeout)
        except Exception as exc:  # the broker is away: nothing known, nothing released past an empty topic
            log.warning("the log ends of partitions %s are not known (%r after %.1f s): records wait",
                        sorted(partitions), exc, time.monotonic() - started)
            return {}
        return {TP(tp.topic, tp.partition): end for tp, end in ends.items() if end is not None}

    async def _note_gaps(self, tp: TP, first: int, recs: list[Any]) -> None:
        """Offsets with no record within one fetch (compacted away, transaction markers)
        count as acked, as Faust's own drain loop makes them, or commits would stop at the
        first."""
        previous: int | None = first
        for r in recs:
            if previous is not None and r.offset - previous > 1:
                await self._add_gap(tp, previous + 1, r.offset - 1)
            previous = r.offset


def batch_current(app: Any, generation: int) -> bool:
    """Whether records of a batch of rebalance `generation` may still be handled: no
    rebalance has begun since (Faust stops the consumer's flow first thing on revocation,
    before it commits or recovers anything). A handler that gives the event loop a turn in
    the middle of a batch asks this before going on."""
    return bool(app.consumer.flow_active and not app.rebalancing and app.consumer_generation_id == generation)


def membership_lost(consumer: Any) -> bool:
    """Whether aiokafka's group coordinator has found that the group no longer counts this
    consumer as a member (a heartbeat answered "unknown member" or "illegal generation":
    a worker paused past its session, whose partitions have moved). Read from the
    coordinator's state, not asked over the network: a call into the consumer thread from
    here can wait behind that thread's own work. A rebalance in progress is not a loss: a
    member giving its partitions up keeps its id and must still hand its state over."""
    try:
        coordinator = consumer._thread._ensure_consumer()._coordinator
    except Exception:  # not started, or stopping
        return False
    if coordinator is None:
        return False
    return not coordinator.member_id or coordinator.generation < 0


def group_join_begun(consumer: Any, settle_s: float = 0.05) -> bool:
    """Whether the consumer has sent its JoinGroup (at least `settle_s` ago, use_join_marker):
    from then on the worker waits on the broker (the join's holds) until its partitions
    are assigned, and work done meanwhile delays nothing. Its coordinator's steps before
    that (finding the coordinator, the JoinGroup itself) run in the consumer's thread: work
    that holds the interpreter then puts the join behind it."""
    try:
        inner = consumer._thread._ensure_consumer()
    except Exception:  # the consumer's thread has not started yet
        return False
    coordinator = inner._coordinator
    if coordinator is None or inner._subscription.subscription is None:
        return False
    sent_at = getattr(coordinator, JOIN_SENT_AT, None)
    return sent_at is not None and time.monotonic() - sent_at >= settle_s


def committed_offset(consumer: Any, tp: TP) -> int | None:
    """The offset Faust's consumer holds as committed for `tp` (next to read), or None."""
    return consumer._committed_offset.get(tp)  # type: ignore[no-any-return]


def batch_boundary(consumer: Any, tp: TP) -> int | None:
    """The latest offset of `tp` that fetches showed to lie between two record batches
    (Boundaries), or None if none is known."""
    boundaries = getattr(consumer, "boundaries", None)
    return None if boundaries is None else boundaries.at(tp)  # type: ignore[no-any-return]


def sought_offsets(consumer: Any) -> dict[TP, int]:
    """Where the consumer began reading each batch-routed partition in this generation."""
    sought = getattr(consumer, "_sought", None) or {}
    return {tp: offset for tp, offset in sought.items() if offset is not None}


def fetch_position(consumer: Any, tp: TP) -> int | None:
    """How far Faust's consumer has read `tp`: changes while records come."""
    return consumer._read_offset.get(tp)  # type: ignore[no-any-return]


def partition_state(consumer: Any, tp: TP) -> Any:
    """aiokafka's state of `tp` (paused, position, awaiting a reset), or None if aiokafka
    does not hold it assigned. Read from this thread: a snapshot, for decisions that a
    stale answer only delays."""
    inner = consumer._thread._ensure_consumer()
    subscription = inner._subscription.subscription
    if subscription is None or subscription.assignment is None:
        return None
    return subscription.assignment.state_value(AIOKafkaTP(tp.topic, tp.partition))


def fetch_state(consumer: Any, tp: TP) -> str:
    """How the consumer stands with `tp`, in words (for a log line when its records do not
    come): aiokafka's view (assigned, paused, position, awaiting a reset) and Faust's
    (active, paused, read offset, whether this generation's seek is done)."""
    parts = []
    try:
        state = partition_state(consumer, tp)
        if state is None:
            parts.append("not assigned in aiokafka")
        else:
            parts.append("aiokafka: " + ", ".join((
                "paused" if state.paused else "fetching",
                f"position {state.position}" if state.has_valid_position else "no position",
            ) + (("awaiting reset",) if state.awaiting_reset else ())))
        fetcher = consumer._thread._ensure_consumer()._fetcher
        held = fetcher._records.get(AIOKafkaTP(tp.topic, tp.partition))
        parts.append(f"aiokafka fetcher: {'records held' if held is not None else 'none held'} for it, "
                     f"{len(fetcher._records)} partitions' held, "
                     f"{'a fetch in flight' if fetcher._in_flight else 'no fetch in flight'}")
    except Exception as exc:  # stopping, or aiokafka changed: say so, never fail the caller
        parts.append(f"aiokafka state unknown ({exc!r})")
    active = consumer._active_partitions
    parts.append("faust: " + ", ".join((
        "active" if active is None or tp in active else "not active",
        "paused" if tp in consumer._paused_partitions else "not paused",
        f"read {consumer._read_offset.get(tp)}",
        f"expected {getattr(consumer, '_expected', {}).get(tp)}",
        "sought" if getattr(consumer, "_sought_generation", None) == consumer.app.consumer_generation_id
        else "not sought",
    )))
    return "; ".join(parts)


