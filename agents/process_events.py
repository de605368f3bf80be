"""The agent: every input topic of a partition, merged in timestamp order, through the core."""

from __future__ import annotations

import gc
import logging
import time
from types import SimpleNamespace
from typing import Any, Mapping

from faust.types import TP

from agents.merge import TimestampMerge
from agents.runtime import (
    changelogs,
    checkpoint,
    engine,
    fetch_stalled,
    fetched,
    has_unread,
    log_ends,
    pipeline,
    publish,
    view,
)
from streams import topics as T
from streams.app import app, input_topic, settings
from streams.faust_internals import Acks, Batch, route_batches
from streams.observability import EVENT_TO_DECISION, INPUT_POSITION, PENDING_DEADLINES
from streams.table_stores import bind_fast

_generation: list[int] = [-1]
REPUBLISH_HORIZON_S = 600.0  # far beyond the commit interval (WARDEN_COMMIT_INTERVAL)
log = logging.getLogger("warden")
TICKS = settings.topic(T.TICKS)


merge: TimestampMerge[Any] = TimestampMerge(pipeline.guarded, has_unread, max_idle_s=settings.max_task_idle_s,
                                               fetched=fetched, stalled=fetch_stalled)


def _rebuild_after_rebalance() -> None:
    """After a rebalance the tables hold recovered state: rebuild the deadline heaps, and
    drop what the merge buffered (unacked: it is read again from the committed offsets)."""
    generation = app.consumer_generation_id
    if generation != _generation[0]:
        _generation[0] = generation
        merge.forget()
        pipeline.forget()
        log_ends.clear()
        INPUT_POSITION.clear()
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == TICKS}
        started = time.perf_counter()
        bind_fast(engine.stores, changelogs, owned)
        bound = time.perf_counter()
        PENDING_DEADLINES.set(engine.rebuild_timers())
        gc.freeze()  # the recovered tables: long-lived, never cyclic garbage
        log.info("partitions %s: tables read in %.2f s, timers rebuilt in %.2f s", sorted(owned),
                 bound - started, time.perf_counter() - bound)
        # A decision stored just before a crash may not have reached its topic: publish
        # the recent ones again, same records and ids.
        since = int((time.time() - REPUBLISH_HORIZON_S) * 1000)
        outcome = pipeline.outcome_of(engine.recent_decisions(since, owned))
        for out in outcome.outputs:
            publish(out)
        if outcome.actions:
            view.stage_actions(outcome.actions)
        if outcome.decisions:
            log.info("published again %d recent decisions after a rebalance", outcome.decisions)


def _handle(topic: str, partition: int, record: Any) -> None:
    headers = dict(record.headers) if record.headers else None
    outcome = pipeline.handle(topic, partition, record.offset, record.key, record.value, headers,
                              record.timestamp / 1000)
    if outcome.outputs:
        for out in outcome.outputs:
            publish(out)
        if outcome.views:
            view.stage(outcome.views)
        if outcome.actions:
            view.stage_actions(outcome.actions)
        if outcome.decisions:
            # from the event's arrival at the broker to the publication of what it caused
            latency = max(0.0, time.time() - record.timestamp / 1000)
            for _ in range(outcome.decisions):
                EVENT_TO_DECISION.observe(latency)


_acks: list[Acks] = []


def acks() -> Acks:
    if not _acks or _acks[0].consumer is not app.consumer:
        _acks[:] = [Acks(app.consumer)]
    return _acks[0]


async def process_batch(batch: Batch, generation: int, ends: Mapping[TP, int]) -> None:
    """A fetch's records of the input topics (streams.faust_internals): data records through the
    merge, in timestamp order per partition, then the partitions' ticks. A record is
    acknowledged once handled; one waiting in the merge is not, so not committed."""
    if checkpoint.fenced_generation == app.consumer_generation_id:
        return  # membership lost (agents.runtime.Checkpoint): wait for the next assignment
    _rebuild_after_rebalance()
    log_ends.update(ends)
    ack = acks().ack
    at = changelogs.at
    partitions: set[int] = set()
    ticks: list[tuple[TP, Any]] = []
    for tp, records in batch:
        topic, partition = tp
        partitions.add(partition)
        if topic == TICKS:
            ticks.extend((tp, r) for r in records)
            continue
        for r in records:
            merge.offer(topic, partition, r.offset, r.timestamp, (tp, r))
    handled: dict[TP, int] = {}
    for partition in partitions:
        at(partition)
        for tp, r in merge.release(partition):
            _handle(tp.topic, partition, r)
            ack(tp, r.offset)
            handled[tp] = r.offset
    for tp, r in ticks:
        at(tp.partition)
        _handle(tp.topic, tp.partition, r)
        ack(tp, r.offset)
        handled[tp] = r.offset
    pipeline.export_counts()
    for tp, offset in handled.items():
        INPUT_POSITION.labels(tp.topic, str(tp.partition)).set(offset + 1)


route_batches(app, input_topic.topics, process_batch)


@app.agent(input_topic)
async def process_events(stream: Any) -> None:
    """The input topics' agent: it subscribes them, and Faust assigns their partitions and
    the tables' with them; their records reach `process_batch` in batches, not this stream."""
    async for event in stream.noack().events():
        m = event.message
        record = SimpleNamespace(offset=m.offset, timestamp=round(m.timestamp * 1000), key=m.key,
                                 value=m.value, headers=m.headers)
        await process_batch([(m.tp, [record])], app.consumer_generation_id, {})


@app.task
async def declare_output_topics() -> None:
    """Create the output topics up front, with the configured partitions and compaction."""
    from streams.app import output_topics

    for topic in output_topics.values():
        await topic.maybe_declare()
