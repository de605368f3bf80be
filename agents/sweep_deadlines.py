"""Time passes with no event: tick every owned partition (deadlines, the clock guard).

A tick is a record on the internal ticks topic, co-partitioned with the inputs, so the
deadline sweep runs inside the partition's own stream (its table writes go to the right
changelog partition, and it never races the events of that partition).
"""

from __future__ import annotations

import time
from typing import Any

from streams.faust_internals import active_partitions, rebalancing
from streams.observability import (
    OLDEST_PENDING_REVIEW,
    PENDING_DEADLINES,
    PENDING_REVIEWS,
    REVIEW_DECISIONS,
    REVIEW_KINDS,
    REVIEW_SECONDS,
    REVIEW_SLA_BREACHES,
)
from tables.engine import Engine


async def sweep_deadlines(app: Any, ticks: Any, tick_topic: str, engine: Engine) -> None:
    """One tick for every partition this worker holds as active, and the timer gauges."""
    if rebalancing(app):
        return
    for tp in active_partitions(app):
        if tp.topic == tick_topic:
            await ticks.send(key=b"tick", value=b"", partition=tp.partition)
    PENDING_DEADLINES.set(engine.pending_timers())
    report_reviews(engine)


def report_reviews(engine: Engine) -> None:
    """The review backlog by kind, and the reviews decided since the last report."""
    counts = dict.fromkeys(REVIEW_KINDS, 0)
    oldest: dict[str, int] = {}
    for _, since, kind in engine.pending.values():
        counts[kind] = counts.get(kind, 0) + 1
        if kind not in oldest or since < oldest[kind]:
            oldest[kind] = since
    now = time.time()
    for kind, count in counts.items():
        PENDING_REVIEWS.labels(kind).set(count)
        OLDEST_PENDING_REVIEW.labels(kind).set(max(0.0, now - oldest[kind] / 1000) if kind in oldest else 0)
    decided, engine.reviews_decided = engine.reviews_decided, []
    sla = engine.policy.review.sla_hours
    for kind, outcome, waited_ms in decided:
        REVIEW_DECISIONS.labels(kind, outcome).inc()
        REVIEW_SECONDS.labels(kind).observe(max(0, waited_ms) / 1000)
        if waited_ms > sla.get(kind, 0) * 3_600_000:
            REVIEW_SLA_BREACHES.labels(kind).inc()
