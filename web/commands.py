"""Commands from people, published to Warden's input topics (CONTRACT §9): the workers
apply them like any other input, so enforcement state has one writer. A command is
either on the broker when `publish` returns or refused with `Unavailable`: the producer
gives a record up after DELIVERY_TIMEOUT_MS, so a refused one is never delivered later."""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import KafkaError, Producer

from schemas.codec import Codec
from streams.view_reader import Unavailable

DELIVERY_TIMEOUT_MS = 5_000


class CommandPublisher:
    """Publishes records keyed by seller, one at a time, waiting for the broker's ack."""

    def __init__(self, servers: str, topic_prefix: str, codec: Codec, security: dict[str, str] | None = None) -> None:
        self.prefix = topic_prefix
        self.codec = codec
        self.producer = Producer({
            "bootstrap.servers": servers,
            "partitioner": "murmur2_random",  # as Kafka's Java client: the seller's partition
            "acks": "all",
            "linger.ms": 0,
            "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            "socket.connection.setup.timeout.ms": DELIVERY_TIMEOUT_MS,
            **(security or {}),  # TLS and SASL (Settings.kafka_client_config)
        })

    async def publish(self, topic: str, record_name: str, record: dict[str, Any]) -> None:
        """Publish `record` to `topic` (unprefixed), keyed by its seller; Unavailable if the
        broker did not take it within the delivery timeout."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[KafkaError | None] = loop.create_future()

        def settle(err: KafkaError | None) -> None:
            if not done.done():
                done.set_result(err)

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            loop.call_soon_threadsafe(settle, err)

        full = self.prefix + topic
        value = self.codec.encode(record_name, record, full)
        self.producer.produce(full, key=record["seller_id"].encode(), value=value, on_delivery=delivered)
        while not done.done():
            # the delivery callback runs in the thread that polls: never the event loop's
            await loop.run_in_executor(None, self.producer.poll, 0.1)
        err = done.result()
        if err is not None:
            raise Unavailable(f"the broker did not take the record ({err.str()}): nothing was filed")

    def close(self) -> None:
        self.producer.flush(DELIVERY_TIMEOUT_MS / 1000)
