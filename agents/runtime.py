"""The parts of a live worker around the decision core: the checkpoint before every
commit, the watch of the loop, the input positions the merge asks about.
Each is a class built by agents.worker.build_worker; nothing is made at import."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from typing import Any

from faust.types import TP

from agents.outputs import OutputProducer
from agents.pipeline import Pipeline
from streams.faust_internals import (
    batch_boundary,
    changelog_topic_name,
    committed_offset,
    fetch_position,
    fetch_state,
    membership_lost,
    rebalance_generation,
    recover_from_the_start,
    sought_offsets,
)
from streams.observability import EVENT_LOOP_LAG, EVENT_LOOP_LAG_MAX, STARTUP_PHASE
from streams.table_stores import Changelogs

log = logging.getLogger("warden")


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class InputReading:
    """How far the broker holds each input (topic, partition) of this worker, and how far it
    was read: what the timestamp merge and the wall clock's guard ask."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # The log end of each input (topic, partition), as the broker answered it after
        # the latest fetch of that partition (streams.faust_internals: ListOffsets).
        self.log_ends: dict[TP, int] = {}
        self.answered_at: dict[TP, float] = {}  # when each log end was last answered (monotonic)
        self.pipeline: Pipeline | None = None

    def answered(self, topic: str, partition: int) -> float | None:
        return self.answered_at.get(TP(topic, partition))

    def has_unread(self, topic: str, partition: int, last_offset: int | None) -> bool:
        """Whether (topic, partition) may hold records past `last_offset` (the last one
        received or handled; None: nothing yet since the partition was assigned, so its
        committed offset is next). The broker's log end (asked after the latest fetch) says
        no only where the next offset is known, from what a fetch returned, to lie between
        two record batches (streams.faust_internals.Boundaries): a broker may report the
        end short of its last record (Tansu: its last batch's base offset + 1), and a
        committed offset, or a fetch's records handed over in parts, can stand inside that
        batch. Until a fetch shows it, the topic counts as unread and the merge waits."""
        tp = TP(topic, partition)
        end = self.log_ends.get(tp)
        if end is None:
            return True  # not known yet: wait (for the next fetch's answer)
        if last_offset is not None:
            following = last_offset + 1
        else:
            # nothing handed to us yet: the partition starts where this generation sought it
            # (a restored checkpoint's input offset, else the committed one)
            start = sought_offsets(self.app.consumer).get(tp)
            following = start if start is not None else committed_offset(self.app.consumer, tp) or 0
        if following < end:
            return True
        return batch_boundary(self.app.consumer, tp) != following

    def describe(self, partition: int) -> str:
        """How each input topic of `partition` stands, for a decision's trace: the offset
        this generation started from (committed), the next to handle, the log end last
        answered and the latest batch boundary a fetch showed."""
        positions = self.pipeline.positions if self.pipeline is not None else {}
        consumer = self.app.consumer
        parts = []
        for topic in (self.pipeline.guarded if self.pipeline is not None else ()):
            tp = TP(topic, partition)
            handled = positions.get((topic, partition))
            parts.append(f"{topic.rsplit('.', 1)[-1]} from {committed_offset(consumer, tp)} "
                         f"next {None if handled is None else handled + 1} end {self.log_ends.get(tp)} "
                         f"boundary {batch_boundary(consumer, tp)}")
        return "; ".join(parts)

    def fetched(self, topic: str, partition: int) -> int | None:
        """How far the consumer has fetched (topic, partition): changes while records come."""
        return fetch_position(self.app.consumer, TP(topic, partition))

    def stalled(self, topic: str, partition: int) -> str:
        """The merge has waited for (topic, partition) with no fetch progress: if the consumer
        fetched past records it never delivered, read them again; say how it stands."""
        tp = TP(topic, partition)
        consumer = self.app.consumer
        reread = getattr(consumer, "reread_if_skipped", None)
        state = fetch_state(consumer, tp)
        return f"{state}; read again" if reread is not None and reread(tp) else state

    def unread(self, partition: int) -> tuple[str, ...]:
        """The input topics whose partition `partition` has records not handled yet."""
        assert self.pipeline is not None
        positions = self.pipeline.positions
        return tuple(t for t in self.pipeline.guarded
                     if self.has_unread(t, partition, positions.get((t, partition))))


def stop_on_delivery_failure(line: str) -> None:
    """A delivery that really failed: say so in one line and stop the worker at once. No
    offset past the record was committed, so a restart publishes it again; going on would
    make every later commit wait for what can no longer arrive."""
    log.critical("%s; stopping: a restart publishes it again from the last commit", line)
    asyncio.get_event_loop().call_soon(os._exit, 70)


class Checkpoint:
    """What must be on the broker before input offsets are committed, in this order (as
    quix-streams' checkpoint and Kafka Streams' commit do): Faust's own producer buffer,
    then the tables' changed keys to their changelogs and every output (each changelog
    partition's last record after the rest, for its delivery report), then a marker per
    partition that ends the checkpoint and names the input offsets it covers
    (streams.checkpoints), then a persistent store told how far its changelogs are
    applied. While it takes and encodes the changes it holds the tables' lock, and no
    record is handled (agents.process_events). Faust awaits it before every
    offset commit, on revocation and before recovery (streams.faust_internals.CheckpointProducer).
    One at a time: a second one (a rebalance during a commit) waits, then covers what
    changed since the first took its keys.

    A worker that has lost its group membership (paused past its session: its partitions
    have moved, and their new owner restored them and replays what came after the last
    commit) writes nothing: its changes would put older state behind the new owner's."""

    def __init__(self, app: Any, changelogs: Changelogs, outputs: OutputProducer,
                 changelog_out: OutputProducer, changelog_last: OutputProducer, loop_watch: LoopWatch,
                 failpoint: str | None = None) -> None:
        self.app = app
        self.failpoint = failpoint
        self.changelogs = changelogs
        self.outputs = outputs
        self.changelog_out = changelog_out  # the changelog records of a flush but each partition's last
        self.changelog_last = changelog_last  # those last records, then the end markers (delivery reports)
        self.loop_watch = loop_watch
        self.freezer = Freezer()
        # The tables' lock: held while a checkpoint takes and encodes the tables' changes
        # (and while it fences), and by a record paused midway (agents.process_events), so
        # a checkpoint never sees half a record, nor a record after its input offsets. Not
        # held while the checkpoint waits for the broker: records go on meanwhile (a
        # checkpoint at 1M events waits for seconds).
        self.lock = asyncio.Lock()
        self._one_at_a_time = asyncio.Lock()
        # the generation in which this worker found its membership lost: nothing of it is
        # processed (its records are left unacknowledged) until the next assignment
        self.fenced_generation: int | None = None

    async def __call__(self) -> None:
        app, changelogs, changelog_out = self.app, self.changelogs, self.changelog_out
        async with self._one_at_a_time:
            last = self.changelog_last
            async with self.lock:
                generation = rebalance_generation(app)  # the epoch its changelog writes carry
                # A worker frozen past its session is checked even with nothing to write: its
                # tables may be behind what its partitions' new owner wrote meanwhile, and the
                # fence makes it read them whole again
                if (changelogs.pending() or self.loop_watch.paused_recently()) and await self._fenced():
                    return
                if (self.failpoint == "checkpoint-partial" and changelogs.pending()
                        and changelogs.checkpoint_seq >= 1):
                    await self._die_mid_checkpoint(generation)
                taken = await changelogs.take_pending_sliced(generation)
            # encoded: records go on while the changes are handed to the producer
            held = await changelogs.send_taken_sliced(taken, changelog_out.produce)
            await asyncio.gather(self.outputs.flush(), changelog_out.flush())
            if held:
                changelogs.produce_last(last.produce, held)
                await last.flush()
            if changelogs.unended:
                # every record is on the broker: end the checkpoint (streams.checkpoints), unless
                # this worker froze meanwhile and lost its partitions; then it stays unended and
                # no reader applies it
                async with self.lock:
                    if await self._fenced():
                        return
                    changelogs.end_checkpoint(last.produce)
                await last.flush()
            await changelogs.persist()
            self.freezer.freeze_survivors()


    async def _die_mid_checkpoint(self, generation: int) -> None:
        """WARDEN_FAILPOINT=checkpoint-partial: the orders table's changes on the broker, the
        other tables' not, then an exit as abrupt as kill -9."""
        orders = changelog_topic_name(self.changelogs.stores[0].table)
        out = self.changelog_out

        def orders_only(topic: str, *args: Any, **kwargs: Any) -> None:
            if topic == orders:
                out.produce(topic, *args, **kwargs)

        self.changelogs.produce_last(orders_only, self.changelogs.produce_pending(orders_only, generation))
        await out.flush()
        log.critical("failpoint checkpoint-partial: exiting with checkpoint %d unended",
                     self.changelogs.checkpoint_seq)
        os._exit(137)

    async def _fenced(self) -> bool:
        """Whether this worker has lost its group membership; if so, its pending changes and
        tables are dropped (`_fence`). A process frozen longer than its session first gives
        the coordinator's heartbeat (every 0.5 s, in the consumer's thread) time to find out."""
        if self.loop_watch.paused_recently():
            await asyncio.sleep(2.0)
        if not membership_lost(self.app.consumer):
            return False
        self._fence()
        return True

    def _fence(self) -> None:
        app, changelogs = self.app, self.changelogs
        self.fenced_generation = rebalance_generation(app)
        dropped = changelogs.discard_pending()
        recover_from_the_start(app)  # the tables are empty now: read them back whole
        log.warning("this worker lost its group membership (paused past its session): %d unflushed "
                    "table changes dropped, their partitions' new owner makes them again", dropped)


class LoopWatch:
    """Notices when this process did not run for longer than its group session (SIGSTOP, a
    frozen VM, a very long pause): its partitions may have moved meanwhile."""

    def __init__(self, session_timeout_s: float, step_s: float = 0.05, window_s: float = 10.0) -> None:
        self.session_timeout_s = session_timeout_s
        self.step_s = step_s
        self.last = time.monotonic()
        self.paused_at: float | None = None
        self.running = False
        # the longest lag of the current window and of the one before (the max gauge)
        self.window_s = window_s
        self.window_started = self.last
        self.window_max = 0.0
        self.previous_max = 0.0

    def responsive(self, within_s: float = 10.0) -> bool:
        """The loop ran this watch's step within `within_s` (or the watch has not started)."""
        return not self.running or time.monotonic() - self.last < within_s

    def paused_recently(self, within_s: float = 10.0) -> bool:
        """A pause seen in the last `within_s`, or one this watch has not woken up from yet."""
        now = time.monotonic()
        if self.running and now - self.last > self.session_timeout_s:
            return True
        return self.paused_at is not None and now - self.paused_at < within_s

    async def run(self) -> None:
        self.last = time.monotonic()
        self.running = True
        while True:
            await asyncio.sleep(self.step_s)
            now = time.monotonic()
            self.observe(max(0.0, now - self.last - self.step_s), now)
            if now - self.last > self.session_timeout_s:
                self.paused_at = now
                log.warning("this process did not run for %.1f s, longer than its %.0f s group session",
                            now - self.last, self.session_timeout_s)
            self.last = now


    def observe(self, lag: float, now: float) -> None:
        """One wake-up's lag: into the histogram, and into the windowed max."""
        EVENT_LOOP_LAG.observe(lag)
        if now - self.window_started >= self.window_s:
            self.previous_max, self.window_max, self.window_started = self.window_max, 0.0, now
        if lag > self.window_max:
            self.window_max = lag
        EVENT_LOOP_LAG_MAX.set(max(self.window_max, self.previous_max))


def process_started_at() -> float:
    """When this process started (wall clock, s, to the kernel's 10 ms tick): from /proc
    on Linux (its start in ticks since boot, against the uptime now; /proc/stat's boot time
    is whole seconds), else now."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


class StartupPhases:
    """Times the phases of this worker's start (warden_startup_phase_seconds): join and
    restore from Faust's signals; tables and timers set by the event processor."""

    def __init__(self, app: Any) -> None:
        self.started = process_started_at()
        self.assigned_at: float | None = None
        self.restored = False
        app.on_partitions_assigned.connect(self._assigned)
        app.on_rebalance_complete.connect(self._restored)

    async def _assigned(self, sender: Any, assigned: Any = None, **kwargs: Any) -> None:
        if self.assigned_at is None:
            self.assigned_at = time.time()
            STARTUP_PHASE.labels("join").set(self.assigned_at - self.started)

    async def _restored(self, sender: Any, **kwargs: Any) -> None:
        if self.assigned_at is not None and not self.restored:
            self.restored = True
            STARTUP_PHASE.labels("restore").set(time.time() - self.assigned_at)


FULL_SWEEP_S = 600.0  # seconds between full collections of everything frozen


class Freezer:
    def __init__(self) -> None:
        self.last_sweep = time.monotonic()

    def freeze_survivors(self) -> None:
        """Move every object alive now out of the cyclic collector's reach (`gc.freeze`), once
        a commit: the tables' state is long-lived and acyclic, and a collection of the older
        generations would otherwise scan all of it again (at 20,000 events a second, 0.17 s of
        the loop blocked every few seconds, growing with the state). The collector then looks
        only at what was made since the last commit. Cyclic garbage made of objects that were
        alive at a freeze waits for the full sweep, every FULL_SWEEP_S."""
        now = time.monotonic()
        if now - self.last_sweep >= FULL_SWEEP_S:
            self.last_sweep = now
            gc.unfreeze()
            started = time.perf_counter()
            found = gc.collect()
            log.info("full collection: %d unreachable objects in %.0f ms", found,
                     (time.perf_counter() - started) * 1000)
        gc.freeze()
