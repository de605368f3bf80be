"""The agent: every input topic of a partition, merged in timestamp order, through the core."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from agents.merge import TimestampMerge
from agents.pipeline import Outcome, Outgoing, Pipeline
from agents.runtime import Checkpoint, InputReading
from agents.views import RedisView
from schemas import compact_json
from streams.faust_internals import (
    Acks,
    Batch,
    active_partitions,
    batch_current,
    rebalance_generation,
    rebalancing,
    sought_offsets,
)
from streams.observability import (
    DEADLINE_REFILLS,
    EVENT_TO_DECISION,
    INPUT_POSITION,
    PENDING_DEADLINES,
    REBALANCES,
    STARTUP_PHASE,
)
from streams.table_setup import bind_fast
from streams.table_stores import Changelogs
from tables.engine import Engine

# handling a fetch gives the event loop a turn at least this often (a fetch of 5,000
# records takes a quarter of a second at 1M events of state)
SLICE_S = 0.002
REPUBLISH_HORIZON_S = 600.0  # far beyond the commit interval (WARDEN_COMMIT_INTERVAL)
log = logging.getLogger("warden")


class RecordAbandoned(Exception):
    """A record paused midway can not be finished: the tables under it were dropped."""


class EventProcessor:
    """Handles each fetch's records of the input topics (streams.faust_internals): data
    records through the merge, in timestamp order per partition, then the partitions'
    ticks. A record is acknowledged once handled; one waiting in the merge is not, so not
    committed."""

    def __init__(self, app: Any, engine: Engine, pipeline: Pipeline, changelogs: Changelogs,
                 checkpoint: Checkpoint, view: RedisView, reading: InputReading,
                 publish: Callable[[Outgoing], None], ticks_topic: str, max_idle_s: float,
                 trace: bool = False, arrival_grace_s: float = 0.0) -> None:
        self.app = app
        self.engine = engine
        self.pipeline = pipeline
        self.changelogs = changelogs
        self.checkpoint = checkpoint
        self.view = view
        self.reading = reading
        self.publish = publish
        self.ticks_topic = ticks_topic
        self.trace = trace  # a log line per decision, saying from what it was made
        self.progress: dict[int, float] = {}  # partition -> when an input record of it was last handled
        self._stall_said: dict[int, float] = {}  # partition -> when its stall was last logged
        self.merge: TimestampMerge[Any] = TimestampMerge(
            pipeline.guarded, reading.has_unread, max_idle_s=max_idle_s,
            fetched=reading.fetched, stalled=reading.stalled,
            grace_s=arrival_grace_s, answered_at=reading.answered)
        self.generation = -1  # the rebalance generation the tables were last rebuilt for
        self.positions: dict[TP, int] = {}  # input partition -> the offset after the last record handled
        self._acks: Acks | None = None
        self.started_up = False  # the first assignment's tables and timers are timed (STARTUP_PHASE)
        self._holding = False  # the checkpoint's lock, taken for the rest of a record paused midway
        self._refills = 0  # the deadline heaps' refills counted in warden_deadline_refills_total

    def acks(self) -> Acks:
        if self._acks is None or self._acks.consumer is not self.app.consumer:
            self._acks = Acks(self.app.consumer)
        return self._acks

    def owned(self) -> set[int]:
        """The partitions this worker holds as active."""
        return {tp.partition for tp in active_partitions(self.app) if tp.topic == self.ticks_topic}

    def rebuild_after_rebalance(self) -> None:
        """After a rebalance the tables hold recovered state: rebuild the deadline heaps, and
        drop what the merge buffered (unacked: it is read again from the committed offsets)."""
        generation = rebalance_generation(self.app)
        if generation == self.generation:
            return
        self.generation = generation
        self.merge.forget()
        self.pipeline.forget()
        self.reading.log_ends.clear()
        self.view.forget_facts()  # each seller's orders hash is written whole at its next view
        INPUT_POSITION.clear()
        self.positions.clear()
        REBALANCES.inc()
        owned = self.owned()
        started = time.perf_counter()
        bind_fast(self.engine.stores, self.changelogs, owned, self.engine.partition_of)
        bound = time.perf_counter()
        PENDING_DEADLINES.set(self.engine.rebuild_timers(owned))
        gc.freeze()  # the recovered tables: long-lived, never cyclic garbage
        rebuilt = time.perf_counter()
        log.info("partitions %s: tables read in %.2f s, timers rebuilt in %.2f s", sorted(owned),
                 bound - started, rebuilt - bound)
        if not self.started_up:
            self.started_up = True
            STARTUP_PHASE.labels("tables").set(bound - started)
            STARTUP_PHASE.labels("timers").set(rebuilt - bound)
        # A decision stored just before a crash may not have reached its topic: publish
        # the recent ones again, same records and ids.
        since = int((time.time() - REPUBLISH_HORIZON_S) * 1000)
        outcome = self.pipeline.outcome_of(self.engine.recent_decisions(since, owned))
        for out in outcome.outputs:
            self.publish(out)
        if outcome.actions:
            self.view.stage_actions(outcome.actions, outcome.action_orders, outcome.appeals)
        if outcome.decisions:
            log.info("published again %d recent decisions after a rebalance", outcome.decisions)

    def handle(self, topic: str, partition: int, record: Any) -> Iterator[None]:
        """One record through the pipeline, its outputs published and its views staged; in
        steps (agents.pipeline.Pipeline.handle_steps): the batch loop may give the event
        loop a turn between them."""
        headers = dict(record.headers) if record.headers else None
        outcome = Outcome()
        yield from self.pipeline.handle_steps(outcome, topic, partition, record.offset, record.key, record.value,
                                              headers, record.timestamp / 1000)
        if outcome.outputs:
            publish = self.publish
            for out in outcome.outputs:
                publish(out)
            if outcome.views:
                self.view.stage(outcome.views)
            if outcome.actions:
                self.view.stage_actions(outcome.actions, outcome.action_orders, outcome.appeals)
                if self.trace:
                    self._trace(topic, partition, record, outcome)
            if outcome.decisions:
                # from the event's arrival at the broker to the publication of what it caused
                latency = max(0.0, time.time() - record.timestamp / 1000)
                for _ in range(outcome.decisions):
                    EVENT_TO_DECISION.observe(latency)

    def report_stalls(self, after_s: float = 10.0) -> None:
        """Log, at most every 30 s, each held partition whose inputs have records not handled
        while none was handled for `after_s`: what the merge holds and waits for, and how
        the consumer stands with each topic (what was read, the log ends, the boundaries)."""
        if rebalancing(self.app):
            return
        now = time.monotonic()
        for partition in self.owned():
            unread = self.reading.unread(partition) if self.reading.pipeline is not None else ()
            if not unread and not self.merge.buffered(partition):
                self.progress[partition] = now
                continue
            since = self.progress.setdefault(partition, now)
            if now - since < after_s or now - self._stall_said.get(partition, 0.0) < 30.0:
                continue
            self._stall_said[partition] = now
            log.warning("partition %d: no input record handled for %.0f s; the merge holds %d records, waits "
                        "for %s; inputs: %s; consumer: %s", partition, now - since, self.merge.buffered(partition),
                        [t for t, p in self.merge.waiting_for() if p == partition] or "nothing",
                        self.reading.describe(partition),
                        " | ".join(f"{t.rsplit('.', 1)[-1]}: {self.reading.stalled(t, partition)}" for t in unread))

    def input_positions(self) -> dict[int, dict[str, int]]:
        """partition -> input topic -> the next offset to handle, as the inputs stand now (what
        a checkpoint taken now covers): the records handled since the last rebalance, and
        where reading began for topics with none handled yet."""
        out: dict[int, dict[str, int]] = {}
        for tp, offset in sought_offsets(self.app.consumer).items():
            out.setdefault(tp.partition, {})[tp.topic] = offset
        for tp, offset in self.positions.items():
            out.setdefault(tp.partition, {})[tp.topic] = offset
        return out

    def waiting_for_grace(self) -> tuple[int, ...]:
        """The partitions whose records wait for the arrival grace to pass: the consumer hands
        them over again (an empty batch, fresh log ends) even when nothing new comes."""
        return tuple(self.merge.in_grace)

    def _trace(self, topic: str, partition: int, record: Any, outcome: Outcome) -> None:
        """WARDEN_TRACE_DECISIONS: one line per decision, with what it was made from."""
        state = (f"partition {partition}, caused by {topic}@{record.offset} (timestamp {record.timestamp}), "
                 f"stream time {self.engine.stream_time(partition)}, generation {rebalance_generation(self.app)}; "
                 f"inputs: {self.reading.describe(partition)}; "
                 f"restored checkpoints: {self.changelogs.staging.describe(partition)}")
        for actions in outcome.actions.values():
            for raw in actions.values():
                r = compact_json.loads(raw)
                log.info("decision %s %s %s %s %s/%s seller %s decided_at %s: %s", r["action_id"], r["action"],
                         r["status"], r["metric"], r["numerator"], r["denominator"], r["seller_id"],
                         r["decided_at"], state)

    async def process_batch(self, batch: Batch, generation: int, ends: Mapping[TP, int]) -> None:
        """A fetch's records of the input topics, with the log ends of their partitions.
        The event loop gets a turn every SLICE_S of handling (the timers, the commit, the
        views and the probes run between records, not after a fetch of thousands); if a
        rebalance began meanwhile, the rest stays unacknowledged, to be read again. A
        record gets a turn midway only if it runs longer than SLICE_S itself (one firing
        thousands of timers), not because the slice ran out while it was handled: a turn
        midway waits for a checkpoint that is reading the tables, and after a burst that
        reading takes seconds, which an ordinary record has no reason to wait for."""
        if self.checkpoint.fenced_generation == rebalance_generation(self.app):
            return  # membership lost (agents.runtime.Checkpoint): wait for the next assignment
        if self.changelogs.opening:
            await self.changelogs.wait_opened()  # a restart's databases opened meanwhile: nearly done
            if not batch_current(self.app, generation):
                return
        await self._checkpoint_taken()
        if not batch_current(self.app, generation):
            return
        self.rebuild_after_rebalance()
        self.reading.log_ends.update(ends)
        if ends and self.merge.grace_s > 0:
            answered = time.monotonic()  # the log ends were asked after this batch's fetch
            self.reading.answered_at.update(dict.fromkeys(ends, answered))
        ack = self.acks().ack
        at, trim = self.changelogs.at, self.changelogs.trim
        merge, handle, ticks_topic = self.merge, self.handle, self.ticks_topic
        partitions: set[int] = set()
        ticks: list[tuple[TP, Any]] = []
        for tp, records in batch:
            topic, partition = tp
            partitions.add(partition)
            if topic == ticks_topic:
                ticks.extend((tp, r) for r in records)
                continue
            arrived = time.monotonic()
            for r in records:
                merge.offer(topic, partition, r.offset, r.timestamp, (tp, r), arrived)
        handled: dict[TP, int] = {}
        positions = self.positions  # each record's, as it is handled: a checkpoint between two reads it
        clock = time.perf_counter
        turn_at = clock() + SLICE_S
        count = 0
        try:
            for partition in partitions:
                at(partition)
                for tp, r in merge.releasing(partition):
                    midway = clock() + SLICE_S  # a turn inside a record only if it runs this long
                    for _ in handle(tp.topic, partition, r):  # a record of thousands of timers
                        if clock() > midway:
                            turn_at = midway = await self._turn_in_record(partition)
                    self._end_record()
                    trim()
                    ack(tp, r.offset)
                    handled[tp] = r.offset
                    positions[tp] = r.offset + 1
                    count += 1
                    if count % 32 == 0 and clock() > turn_at:
                        if not await self._turn(generation):
                            return
                        at(partition)
                        turn_at = clock() + SLICE_S
            for tp, r in ticks:
                at(tp.partition)
                midway = clock() + SLICE_S
                for _ in handle(tp.topic, tp.partition, r):
                    if clock() > midway:
                        turn_at = midway = await self._turn_in_record(tp.partition)
                self._end_record()
                trim()
                ack(tp, r.offset)
                handled[tp] = r.offset
                positions[tp] = r.offset + 1
                if clock() > turn_at:
                    if not await self._turn(generation):
                        return
                    turn_at = clock() + SLICE_S
        except RecordAbandoned:
            log.warning("a record paused midway was abandoned: this worker was fenced meanwhile")
        finally:
            self._end_record()
            self.pipeline.export_counts()
            self.changelogs.export_reads()
            refills = self.engine.deadlines.refills
            if refills != self._refills:
                DEADLINE_REFILLS.inc(refills - self._refills)
                self._refills = refills
            now = time.monotonic()
            for tp, offset in handled.items():
                INPUT_POSITION.labels(tp.topic, str(tp.partition)).set(offset + 1)
                if tp.topic != self.ticks_topic:
                    self.progress[tp.partition] = now

    async def _turn_in_record(self, partition: int) -> float:
        """A turn of the event loop in the middle of a record (one that fires thousands of
        timers). The checkpoint must not see half a record in the tables: its lock is
        taken for the rest of the record (a commit waits for the record's end); if a
        checkpoint is reading the tables' changes, the record waits until it has read them
        (tens of ms; seconds after a burst of deadlines), the loop free meanwhile (running
        through would block the loop for as long as the record takes: over a second for a
        day's deadlines at 1M events). The record is finished whatever happens meanwhile (a
        rebalance waits for the checkpoint, so for it), unless the checkpoint it waited for
        found this worker fenced and dropped its tables: then the record is abandoned,
        nothing of it published or acknowledged (RecordAbandoned), to be read again by its
        partition's owner. Returns when the next turn is due."""
        if not self._holding:
            checkpoint = self.checkpoint
            await checkpoint.lock.acquire()  # free: a turn; else after the checkpoint's reading
            if checkpoint.fenced_generation == rebalance_generation(self.app):
                checkpoint.lock.release()
                raise RecordAbandoned
            self._holding = True
        await asyncio.sleep(0)
        self.changelogs.at(partition)
        return time.perf_counter() + SLICE_S

    def _end_record(self) -> None:
        if self._holding:
            self._holding = False
            self.checkpoint.lock.release()

    async def _turn(self, generation: int) -> bool:
        """Give the event loop a turn; whether the batch may go on after it (no rebalance
        began and this worker was not fenced meanwhile)."""
        await asyncio.sleep(0)
        await self._checkpoint_taken()
        app = self.app
        return batch_current(app, generation) and self.checkpoint.fenced_generation != rebalance_generation(app)

    async def _checkpoint_taken(self) -> None:
        """Wait while a checkpoint takes the tables' changes (agents.runtime.Checkpoint: it
        holds the tables' lock while it encodes them, a slice at a time). The values it
        encodes are the core's live objects, changed in place by the next record: a record
        handled between two of its slices would put its effects into a checkpoint whose
        input offsets do not cover it, and a restore from it would count them twice."""
        lock = self.checkpoint.lock
        if lock.locked() and not self._holding:
            async with lock:
                pass

    async def process_events(self, stream: Any) -> None:
        """The input topics' agent: it subscribes them, and Faust assigns their partitions and
        the tables' with them; their records reach `process_batch` in batches, not this
        stream (only if the batch path is not routed)."""
        async for event in stream.noack().events():
            m = event.message
            record = SimpleNamespace(offset=m.offset, timestamp=round(m.timestamp * 1000), key=m.key,
                                     value=m.value, headers=m.headers)
            await self.process_batch([(m.tp, [record])], rebalance_generation(self.app), {})
