"""The agent: every input topic of a partition, in one stream, through the decision core."""

from __future__ import annotations

import time
from typing import Any

from agents.runtime import engine, pipeline, publish, view
from streams.app import app, input_topic
from streams.observability import EVENT_TO_DECISION, PENDING_DEADLINES

_generation: list[int] = [-1]


def _rebuild_after_rebalance() -> None:
    """After a rebalance the tables hold recovered state: rebuild the deadline heaps."""
    generation = app.consumer_generation_id
    if generation != _generation[0]:
        _generation[0] = generation
        PENDING_DEADLINES.set(engine.rebuild_timers())


@app.agent(input_topic)
async def process_events(stream: Any) -> None:
    async for event in stream.events():
        _rebuild_after_rebalance()
        message = event.message
        headers = dict(message.headers) if message.headers else None
        outcome = pipeline.handle(message.topic, message.partition, message.offset,
                                  message.key, message.value, headers)
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


@app.task
async def declare_output_topics() -> None:
    """Create the output topics up front, with the configured partitions and compaction."""
    from streams.app import output_topics

    for topic in output_topics.values():
        await topic.maybe_declare()
