"""Time passes with no event: tick every owned partition (deadlines, the clock guard).

A tick is a record on the internal ticks topic, co-partitioned with the inputs, so the
deadline sweep runs inside the partition's own stream (its table writes go to the right
changelog partition, and it never races the events of that partition).
"""

from __future__ import annotations

import time

from agents.runtime import broker, engine, loop_watch, view
from streams import topics as T
from streams.app import app, output_topics, settings
from streams.observability import OLDEST_PENDING_REVIEW, PENDING_DEADLINES, PENDING_REVIEWS


@app.timer(interval=settings.tick_interval_s)
async def sweep_deadlines() -> None:
    if app.rebalancing:
        return
    ticks = output_topics[T.TICKS]
    tick_topic = settings.topic(T.TICKS)
    for tp in app.assignor.assigned_actives():
        if tp.topic == tick_topic:
            await ticks.send(key=b"tick", value=b"", partition=tp.partition)
    PENDING_DEADLINES.set(engine.pending_timers())
    PENDING_REVIEWS.set(len(engine.pending))
    oldest = min((since for _, since in engine.pending.values()), default=None)
    OLDEST_PENDING_REVIEW.set(0 if oldest is None else max(0.0, time.time() - oldest / 1000))


@app.task
async def flush_views() -> None:
    await view.run()


@app.task
async def probe_brokers() -> None:
    await broker.run()


@app.task
async def watch_the_loop() -> None:
    await loop_watch.run()
