"""Time passes with no event: tick every owned partition (deadlines, the clock guard).

A tick is a record on the internal ticks topic, co-partitioned with the inputs, so the
deadline sweep runs inside the partition's own stream (its table writes go to the right
changelog partition, and it never races the events of that partition).
"""

from __future__ import annotations

import time
from typing import Any

from streams.observability import OLDEST_PENDING_REVIEW, PENDING_DEADLINES, PENDING_REVIEWS
from tables.engine import Engine


async def sweep_deadlines(app: Any, ticks: Any, tick_topic: str, engine: Engine) -> None:
    """One tick for every partition this worker holds as active, and the timer gauges."""
    if app.rebalancing:
        return
    for tp in app.assignor.assigned_actives():
        if tp.topic == tick_topic:
            await ticks.send(key=b"tick", value=b"", partition=tp.partition)
    PENDING_DEADLINES.set(engine.pending_timers())
    PENDING_REVIEWS.set(len(engine.pending))
    oldest = min((since for _, since in engine.pending.values()), default=None)
    OLDEST_PENDING_REVIEW.set(0 if oldest is None else max(0.0, time.time() - oldest / 1000))
