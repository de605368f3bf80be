"""Records out of the worker: its outputs and changelog records through librdkafka,
whether the brokers answer, and how far they hold the inputs. Nothing here blocks the
event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from agents.pipeline import Outgoing
from streams.observability import OUTPUT_DELIVERY_FAILURES

log = logging.getLogger("warden")

DELIVERY_TIMEOUT_MS = 300_000  # a record not on the broker this long after it was handed over has failed


class DeliveryFailed(RuntimeError):
    """A record could not be delivered: the worker stops (a restart replays from the last commit)."""


class OutputProducer:
    """Records out through librdkafka (confluent-kafka): a produce call costs a few µs,
    against tens through Faust's producer buffer and aiokafka. At-least-once holds as with
    Faust's producer: Faust's offset commit first flushes `app.producer`, and this
    producer's flush is chained onto that, so no offset is committed before what the
    records under it caused (outputs, table changes) is on the broker.

    Nothing here blocks the event loop or recurses. When librdkafka's local queue is full
    (the broker away for long), records wait in `backlog`, in order, and `flush` hands
    them over as room frees, giving the loop a turn in between; a broker that stops
    answering for a while only makes the flush (and so the commit) wait. A record that
    librdkafka gives up on (`DELIVERY_TIMEOUT_MS`) stops the worker with one line: nothing
    past it was committed, so a restart publishes it again."""

    def __init__(self, servers: str, reports: bool = False, name: str = "outputs",
                 on_failure: Callable[[str], None] | None = None, topic_prefix: str = "",
                 delivery_timeout_ms: int = DELIVERY_TIMEOUT_MS, queue_size: int = 1_000_000,
                 security: dict[str, str] | None = None) -> None:
        from confluent_kafka import Producer

        # linger 5 ms, Kafka's own default since 4.0: a busy worker's outputs go in batches
        # of tens, not of one or two (a broker pays per batch: Tansu ~0.17 ms of CPU each)
        self.producer = Producer({
            "bootstrap.servers": servers, "partitioner": "murmur2_random",  # as Kafka's Java client
            "linger.ms": 5, "acks": "all", "enable.idempotence": False, "batch.num.messages": 10_000,
            "queue.buffering.max.messages": queue_size, "delivery.report.only.error": not reports,
            "message.timeout.ms": delivery_timeout_ms, "on_delivery": self._delivered,
            **(security or {}),  # TLS and SASL (Settings.kafka_client_config)
        })
        self.name = name
        self.prefix = topic_prefix
        self.delivery_timeout_ms = delivery_timeout_ms
        self.failure: str | None = None
        self.on_failure = on_failure
        self.backlog: deque[tuple[Any, ...]] = deque()
        self._unpolled = 0
        self._produce = self.producer.produce
        self._topics: dict[str, str] = {}  # contract name -> the prefixed topic

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            OUTPUT_DELIVERY_FAILURES.labels(self.name).inc()
        if err is not None and self.failure is None:
            self.failure = f"{msg.topic()}[{msg.partition()}]: {err}"
            if self.on_failure is not None:
                self.on_failure(f"{self.name}: a record was not delivered to {self.failure}")

    def produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int = -1,
                timestamp: int = 0, headers: Any = None, on_delivery: Any = None) -> None:
        entry = (topic, value, key, partition, timestamp, headers, on_delivery)
        if self.backlog:  # keep the order: behind what already waits
            self.backlog.append(entry)
            return
        try:
            self._hand_over(entry)
        except BufferError:  # the local queue is full: the record waits for `flush`
            self.producer.poll(0)
            self.backlog.append(entry)
            return
        self._unpolled += 1
        if self._unpolled >= 1000:
            self.producer.poll(0)
            self._unpolled = 0

    def _hand_over(self, entry: tuple[Any, ...]) -> None:
        """One record into librdkafka's queue; BufferError when it is full."""
        topic, value, key, partition, timestamp, headers, on_delivery = entry
        if on_delivery is None:
            self._produce(topic, value, key, partition=partition, timestamp=timestamp, headers=headers)
        else:
            self._produce(topic, value, key, partition=partition, timestamp=timestamp, headers=headers,
                          on_delivery=on_delivery)

    def _hand_over_backlog(self) -> None:
        """Move waiting records into librdkafka's queue while it has room (never blocks)."""
        backlog = self.backlog
        while backlog:
            try:
                self._hand_over(backlog[0])
            except BufferError:
                return
            backlog.popleft()

    def send(self, out: Outgoing) -> None:
        topic = self._topics.get(out.topic)
        if topic is None:
            topic = self._topics[out.topic] = self.prefix + out.topic
        self.produce(topic, out.value, out.key,
                     partition=-1 if out.partition is None else out.partition,
                     timestamp=int(out.timestamp * 1000) if out.timestamp else 0,
                     headers=list(out.headers) if out.headers else None)

    async def flush(self) -> None:
        """Wait, giving the loop a turn every 2 ms, until every record handed over is on
        the broker; raise DeliveryFailed if one failed. Bounded: librdkafka fails a record
        after DELIVERY_TIMEOUT_MS, and the backlog drains as the queue does."""
        deadline = time.monotonic() + self.delivery_timeout_ms / 1000 + 60
        while self.backlog or len(self.producer) > 0:
            self._hand_over_backlog()
            self.producer.poll(0)
            if self.failure is not None:
                break
            if time.monotonic() > deadline:
                queued = len(self.producer) + len(self.backlog)
                self.failure = self.failure or f"{queued} records still queued"
                break
            await asyncio.sleep(0.002)
        self.producer.poll(0)
        if self.failure is not None:
            raise DeliveryFailed(f"{self.name}: a record was not delivered ({self.failure}); not committing")


class BrokerProbe:
    """Whether the brokers answer, asked every second off the loop (a metadata request for
    one output topic through the output producer's connections): the worker is not ready
    while they do not (`/healthz`)."""

    def __init__(self, producer: OutputProducer, topic: str, timeout_s: float = 2.0) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s
        self.reachable = True
        self.since = time.monotonic()

    def _ask(self) -> bool:
        try:
            self.producer.producer.list_topics(topic=self.topic, timeout=self.timeout_s)
            return True
        except Exception:
            return False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            reachable = await loop.run_in_executor(None, self._ask)
            if reachable != self.reachable:
                self.reachable, self.since = reachable, time.monotonic()
                if reachable:
                    log.warning("the brokers answer again")
                else:
                    log.warning("the brokers do not answer: not ready until they do")
            await asyncio.sleep(1.0)


class LogEnds:
    """The log end of input partitions, asked of the brokers (ListOffsets) through a client
    of its own (librdkafka's admin client), for the timestamp merge (streams.faust_internals:
    BatchConsumer._log_ends). Asked through the consumer, the request goes on the connection
    its fetches use, and a broker answers a connection's requests one at a time: it waited
    behind a fetch the broker held up to fetch.wait.max.ms, longer than handling the batch
    under a live load."""

    def __init__(self, servers: str, security: dict[str, str] | None = None) -> None:
        from confluent_kafka.admin import AdminClient, OffsetSpec

        self.admin = AdminClient({"bootstrap.servers": servers, **(security or {})})
        self.latest = OffsetSpec.latest()

    async def __call__(self, partitions: Iterable[tuple[str, int]], timeout_s: float) -> dict[tuple[str, int], int]:
        from confluent_kafka import TopicPartition

        futures = self.admin.list_offsets({TopicPartition(t, p): self.latest for t, p in partitions},
                                          request_timeout=timeout_s)
        ends = {}
        for tp, future in futures.items():
            info = await asyncio.wrap_future(future)
            if info.offset >= 0:
                ends[(tp.topic, tp.partition)] = info.offset
        return ends
