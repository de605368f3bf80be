"""Producing and consuming through the real broker in tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition


def producer(broker: str) -> Producer:
    return Producer({"bootstrap.servers": broker, "partitioner": "murmur2_random", "linger.ms": 1})


def _from_the_start(broker: str, topic: str, deadline: float,
                    config: dict[str, object] | None = None) -> tuple[Consumer, int]:
    """A consumer assigned every partition of `topic` from its start, once the topic exists,
    and how many partitions it has. Assigned directly (no consumer group): nothing waits
    for a group join."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"test-{time.time_ns()}",
                         "enable.auto.commit": False, **(config or {})})
    while True:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            break
        if time.monotonic() > deadline:
            consumer.close()
            raise AssertionError(f"topic {topic} never appeared")
        time.sleep(0.2)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    return consumer, len(meta.partitions)


def consume_until(broker: str, topic: str, done: Callable[[list[Message]], bool],
                  timeout: float = 60.0) -> list[Message]:
    """Read `topic` from the start until `done(messages)` holds; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    consumer, _ = _from_the_start(broker, topic, deadline)
    messages: list[Message] = []
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                messages.append(msg)
            if done(messages):
                return messages
    finally:
        consumer.close()
    raise AssertionError(f"timed out after {timeout} s on {topic} with {len(messages)} messages")


def consume_all(broker: str, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every record of `topic`, read from the start to the end of each partition (the end a
    fetch reports, then no new record for a second more)."""
    deadline = time.monotonic() + timeout
    consumer, partitions = _from_the_start(broker, topic, deadline, {"enable.partition.eof": True})
    messages: list[Message] = []
    at_end: set[int] = set()
    quiet_until: float | None = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                error = msg.error()
                if error is None:
                    messages.append(msg)
                    at_end.discard(msg.partition())
                    quiet_until = None
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
            if len(at_end) == partitions:
                if quiet_until is None:
                    quiet_until = time.monotonic() + 1.0
                elif time.monotonic() >= quiet_until:
                    return messages
    finally:
        consumer.close()
    raise AssertionError(f"timed out after {timeout} s reading {topic} to its end ({len(messages)} messages)")
