"""The workers' consumer-group lag, read from outside the group as a lag exporter (Burrow,
kafka-lag-exporter) does: for each input partition, its log end minus the offset the group
committed. It is on the web service's `/metrics`, so it reads right while no worker runs
(a worker's own `warden_consumer_lag` dies with it)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger("warden.web")
NO_OFFSET = -1001  # librdkafka's OFFSET_INVALID: the group committed nothing yet


class GroupLag:
    """Reads the group's committed offsets (an OffsetFetch, never a join) and each partition's
    log end, every `interval_s`, in a thread."""

    def __init__(self, servers: str, group: str, topics: list[str], registry: CollectorRegistry,
                 interval_s: float = 5.0, security: dict[str, str] | None = None) -> None:
        self.servers, self.group, self.topics, self.interval_s = servers, group, topics, interval_s
        self.security = security or {}
        self.lag = Gauge("warden_consumer_group_lag", "Log end minus the workers' committed offset, per input "
                         "partition, read from outside the group.", ["topic", "partition"], registry=registry)
        self.reads = Gauge("warden_consumer_group_lag_read_timestamp_seconds",
                           "When the group's lag was last read.", registry=registry)
        self._consumer: Any = None

    def read(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> lag; the group's committed offset, or the log's start."""
        if self._consumer is None:
            self._consumer = Consumer({"bootstrap.servers": self.servers, "group.id": self.group,
                                       "enable.auto.commit": False, "socket.timeout.ms": 5000, **self.security})
        consumer = self._consumer
        metadata = consumer.list_topics(timeout=5)
        partitions = [TopicPartition(t, p) for t in self.topics if t in metadata.topics
                      for p in metadata.topics[t].partitions]
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=5)}
        out = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=5, cached=False)
            at = committed.get((tp.topic, tp.partition), NO_OFFSET)
            out[(tp.topic, tp.partition)] = max(0, high - (at if at >= 0 else low))
        return out

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        warned = False
        while True:
            try:
                lags = await loop.run_in_executor(None, self.read)
            except Exception as exc:  # the brokers away: keep the last figures, say so once
                if not warned:
                    log.warning("the group's lag could not be read (%s); trying again", exc)
                    warned = True
            else:
                warned = False
                for (topic, partition), lag in lags.items():
                    self.lag.labels(topic, str(partition)).set(lag)
                self.reads.set_to_current_time()
            await asyncio.sleep(self.interval_s)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
