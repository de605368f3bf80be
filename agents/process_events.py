"""The agent: every input topic of a partition, merged in timestamp order, through the core."""

from __future__ import annotations

import logging
import time
from typing import Any

from agents.merge import TimestampMerge
from agents.runtime import engine, fetched, has_unread, pipeline, publish, view
from streams import topics as T
from streams.app import app, input_topic, settings
from streams.observability import EVENT_TO_DECISION, PENDING_DEADLINES

_generation: list[int] = [-1]
REPUBLISH_HORIZON_S = 600.0  # far beyond the 1 s commit interval
log = logging.getLogger("warden")
TICKS = settings.topic(T.TICKS)


merge: TimestampMerge[Any] = TimestampMerge(pipeline.guarded, has_unread, max_idle_s=settings.max_task_idle_s,
                                               fetched=fetched)


def _rebuild_after_rebalance() -> None:
    """After a rebalance the tables hold recovered state: rebuild the deadline heaps, and
    drop what the merge buffered (unacked: it is read again from the committed offsets)."""
    generation = app.consumer_generation_id
    if generation != _generation[0]:
        _generation[0] = generation
        merge.forget()
        PENDING_DEADLINES.set(engine.rebuild_timers())
        # A decision stored just before a crash may not have reached its topic: publish
        # the recent ones again, same records and ids.
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == TICKS}
        since = int((time.time() - REPUBLISH_HORIZON_S) * 1000)
        outcome = pipeline.outcome_of(engine.recent_decisions(since, owned))
        for out in outcome.outputs:
            publish(out)
        if outcome.actions:
            view.stage_actions(outcome.actions)
        if outcome.decisions:
            log.info("published again %d recent decisions after a rebalance", outcome.decisions)


def _handle(event: Any) -> None:
    message = event.message
    headers = dict(message.headers) if message.headers else None
    outcome = pipeline.handle(message.topic, message.partition, message.offset,
                              message.key, message.value, headers, message.timestamp)
    if outcome.outputs:
        for out in outcome.outputs:
            publish(out)
        if outcome.views:
            view.stage(outcome.views)
        if outcome.actions:
            view.stage_actions(outcome.actions)
        if outcome.decisions:
            # from the event's arrival at the broker to the publication of what it caused
            latency = max(0.0, time.time() - message.timestamp)
            for _ in range(outcome.decisions):
                EVENT_TO_DECISION.observe(latency)
    event.ack()


@app.agent(input_topic)
async def process_events(stream: Any) -> None:
    # Acks are ours: a record waiting in the merge is not acked, so not committed.
    async for event in stream.noack().events():
        _rebuild_after_rebalance()
        message = event.message
        partition = message.partition
        if message.topic != TICKS:
            merge.offer(message.topic, partition, message.offset, round(message.timestamp * 1000), event)
        for ready in merge.release(partition):
            _handle(ready)
        if message.topic == TICKS:
            _handle(event)


@app.task
async def declare_output_topics() -> None:
    """Create the output topics up front, with the configured partitions and compaction."""
    from streams.app import output_topics

    for topic in output_topics.values():
        await topic.maybe_declare()
