"""Publishes the simulated marketplace to Kafka: history first, then live, with progress."""

from __future__ import annotations

import sys
import time
from typing import Any

from confluent_kafka import Producer

from schemas.codec import Codec
from schemas.validation import EVENT_TIME
from simulator.marketplace import DAY, Marketplace
from streams.contract.settings import Settings
from streams.contract.topics import RECORD_TOPIC


def producer(servers: str, **extra: Any) -> Producer:
    """A producer partitioning like Kafka's Java client (murmur2), as Warden expects."""
    conf = {"bootstrap.servers": servers, "partitioner": "murmur2_random", "linger.ms": 5,
            "batch.num.messages": 10_000, "queue.buffering.max.messages": 500_000,
            "enable.idempotence": False, "acks": "all"}
    conf.update(extra)
    return Producer(conf)


class Progress:
    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet = label, quiet
        self.count, self.start, self.last = 0, time.monotonic(), 0.0

    def tick(self, n: int = 1, extra: str = "") -> None:
        self.count += n
        now = time.monotonic()
        if not self.quiet and now - self.last >= 0.5:
            self.last = now
            rate = self.count / max(1e-9, now - self.start)
            sys.stderr.write(f"\r{self.label}: {self.count:,} events ({rate:,.0f}/s) {extra}   ")
            sys.stderr.flush()

    def done(self) -> None:
        if not self.quiet:
            sys.stderr.write(f"\r{self.label}: {self.count:,} events in {time.monotonic() - self.start:.1f} s\n")


def simulate(settings: Settings, *, seed: int, sellers: int, days: float, rate: float,
             duration: float, zipf: float = 0.0, quiet: bool = False) -> int:
    """Publish `days` of history ending now, then live events at `rate`/s for `duration` s."""
    codec = Codec(settings.schema_registry_url)
    prod = producer(settings.kafka_bootstrap_servers)
    now = int(time.time() * 1000)
    market = Marketplace(seed, sellers, now - int(days * DAY), zipf=zipf, timezone=settings.timezone)

    def send(name: str, record: dict[str, Any], at: int | None = None) -> None:
        topic = settings.topic(RECORD_TOPIC[name])
        value = codec.encode(name, record, topic)
        while True:
            try:
                # history keeps its simulated time as the record timestamp, so a worker
                # merges the topics in the order things happened
                prod.produce(topic, value=value, key=record["seller_id"].encode(), timestamp=at or 0)
                break
            except BufferError:
                prod.poll(0.05)
        prod.poll(0)

    progress = Progress("history", quiet)
    for ts, name, record in market.events(now):
        send(name, record, ts)
        progress.tick(extra=f"simulated {time.strftime('%Y-%m-%d', time.gmtime(ts / 1000))}")
    prod.flush()
    progress.done()
    total = progress.count
    if rate <= 0:
        return total
    live = Progress("live", quiet)
    started = time.monotonic()
    interval = 1.0 / rate
    next_at = started
    # Live: simulated time follows the wall clock; events are due as their time comes.
    source = market.events(int(time.time() * 1000) + 365 * DAY)
    for ts, name, record in source:
        if duration and time.monotonic() - started >= duration:
            break
        now_ms = int(time.time() * 1000)
        if ts > now_ms:
            # Live time runs faster than the simulated plan: an event planned for later
            # happens now (order is kept, since planned times are non-decreasing).
            record = dict(record, **{EVENT_TIME[name]: now_ms})
        send(name, record)
        live.tick()
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    prod.flush()
    live.done()
    return total + live.count
