"""Every few seconds: how far behind each input partition is, how far the tables' restore
has to go, and whether the worker is ready and live, as Prometheus gauges (the probes
`/readyz` and `/livez` answer from the same checks)."""

from __future__ import annotations

from typing import Any

from agents.outputs import BrokerProbe
from agents.process_events import EventProcessor
from agents.runtime import LoopWatch
from agents.serve_api import waiting_for
from streams.faust_internals import active_partitions, committed_offset, rebalancing, restore_remaining
from streams.observability import (
    CONSUMER_COMMITTED_LAG,
    CONSUMER_LAG,
    LIVE,
    READY,
    TABLE_RESTORE_REMAINING,
)


def report_health(app: Any, processor: EventProcessor, broker: BrokerProbe, loop_watch: LoopWatch,
                  inputs: frozenset[str]) -> None:
    """Lag per assigned input partition: log end (the high watermark the consumer last
    fetched) minus the offset after the last record handled, and minus the committed
    offset; the restore's remaining records; ready and live."""
    READY.set(0 if waiting_for(app, broker) else 1)
    LIVE.set(1 if loop_watch.responsive() else 0)
    try:
        TABLE_RESTORE_REMAINING.set(restore_remaining(app))
    except Exception:  # the recovery service not built yet
        TABLE_RESTORE_REMAINING.set(0)
    CONSUMER_LAG.clear()
    CONSUMER_COMMITTED_LAG.clear()
    if rebalancing(app):
        return
    consumer = app.consumer
    for tp in active_partitions(app):
        if tp.topic not in inputs:
            continue
        end = consumer.highwater(tp)
        if end is None or end < 0:
            continue  # nothing fetched yet: the log end is not known here
        committed = committed_offset(consumer, tp)
        position = processor.positions.get(tp, committed)
        labels = (tp.topic, str(tp.partition))
        if position is not None:
            CONSUMER_LAG.labels(*labels).set(max(0, end - position))
        if committed is not None:
            CONSUMER_COMMITTED_LAG.labels(*labels).set(max(0, end - committed))
