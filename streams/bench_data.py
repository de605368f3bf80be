"""The benchmark's data set: the simulated marketplace, encoded once, loaded under a prefix,
and the outputs a correct run must publish for it (from the decision core, no broker).

The events are the simulator's (Zipf-skewed seller sizes, every profile), in the real
Avro encoding, keyed by seller, each with its simulated time as the record timestamp, so
that a worker processes them in the same order (CONTRACT §4) as the replay here does.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from agents.pipeline import Pipeline, partition_for
from rules.policy import Policy
from schemas.codec import Codec
from streams import topics as T
from streams.publisher import producer
from streams.simulator import DAY, Marketplace
from tables.engine import Engine

# events per seller and day the simulator gives with Zipf skew 1.0 (measured); used to
# choose the span of history that ends now for a requested number of events
EVENTS_PER_SELLER_DAY = 10.7
RANK = {t: i for i, t in enumerate(T.INPUT_TOPICS)}


@dataclass
class Dataset:
    """Encoded input records: (topic, partition, key, value, timestamp ms) in emission order."""

    sellers: int
    partitions: int
    records: list[tuple[str, int, bytes, bytes, int]] = field(default_factory=list)
    seconds_to_build: float = 0.0

    def __len__(self) -> int:
        return len(self.records)

    @property
    def end_ms(self) -> int:
        return max(r[4] for r in self.records)

    def end_offsets(self, prefix: str) -> dict[tuple[str, int], int]:
        """Records per (prefixed topic, partition): the end offsets of freshly loaded topics."""
        ends: dict[tuple[str, int], int] = {}
        for topic, partition, *_ in self.records:
            ends[(prefix + topic, partition)] = ends.get((prefix + topic, partition), 0) + 1
        return ends


def build(events: int, sellers: int, partitions: int, seed: int = 7, zipf: float = 1.0,
          progress: Callable[[str], None] = lambda _: None) -> Dataset:
    """The first `events` events of a marketplace of `sellers` whose history ends now."""
    started = time.perf_counter()
    now = int(time.time() * 1000)
    days = events / (sellers * EVENTS_PER_SELLER_DAY) + 3  # the first days have few scans and ratings
    market = Marketplace(seed, sellers, now - int(days * DAY), zipf=zipf)
    codec = Codec()
    data = Dataset(sellers, partitions)
    append = data.records.append
    keys: dict[str, tuple[bytes, int]] = {}
    for ts, name, record in market.events(now):
        seller = record["seller_id"]
        kp = keys.get(seller)
        if kp is None:
            key = seller.encode()
            kp = keys[seller] = (key, partition_for(key, partitions))
        append((T.RECORD_TOPIC[name], kp[1], kp[0], codec.encode(name, record), ts))
        if len(data.records) >= events:
            break
        if len(data.records) % 50_000 == 0:
            progress(f"building the data set: {len(data.records):,} of {events:,} events")
    data.seconds_to_build = time.perf_counter() - started
    return data


def load(data: Dataset, servers: str, prefix: str, progress: Callable[[str], None] = lambda _: None) -> float:
    """Produce the data set to the prefixed input topics (created beforehand); return seconds."""
    prod = producer(servers, **{"linger.ms": 20, "compression.type": "none"})
    started = time.perf_counter()
    produce = prod.produce
    for i, (topic, partition, key, value, ts) in enumerate(data.records):
        while True:
            try:
                produce(prefix + topic, value=value, key=key, partition=partition, timestamp=ts)
                break
            except BufferError:
                prod.poll(0.01)
        if i % 50_000 == 0:
            prod.poll(0)
            progress(f"loading {prefix}*: {i:,} of {len(data):,} events")
    remaining = prod.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} records not delivered to the broker")
    return time.perf_counter() - started


@dataclass
class Expected:
    """What a correct run publishes for a data set: distinct records per output topic."""

    outputs: dict[str, int]
    seconds: float
    state: dict[str, Any]

    def check(self, published: dict[str, int]) -> list[str]:
        """The differences between what was published and what was expected (empty: none)."""
        problems = []
        for topic in sorted(set(self.outputs) | set(published)):
            want, got = self.outputs.get(topic, 0), published.get(topic, 0)
            if want != got:
                problems.append(f"{topic}: published {got:,}, expected {want:,}")
        return problems


def expected_outputs(data: Dataset, policy: Policy, progress: Callable[[str], None] = lambda _: None) -> Expected:
    """Run the data set through the pipeline with plain dict state, per partition in the
    worker's order (record timestamp, then topic), under the event clock."""
    started = time.perf_counter()
    codec = Codec()
    engine = Engine(policy, clock="event")
    pipeline = Pipeline(engine, codec, data.partitions)
    engine.partition_of = pipeline.partition_of
    offsets: dict[tuple[str, int], int] = {}
    indexed = []
    for i, (topic, partition, key, value, ts) in enumerate(data.records):
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        indexed.append((partition, ts, RANK[topic], offset, i))
    indexed.sort()
    counts: dict[str, int] = {}
    distinct: dict[str, set[int]] = {}
    handle = pipeline.handle
    records = data.records
    for n, (partition, ts, _, offset, i) in enumerate(indexed):
        topic, _, key, value, _ = records[i]
        for out in handle(topic, partition, offset, key, value, None, ts / 1000).outputs:
            distinct.setdefault(out.topic, set()).add(hash((out.key, out.value)))
        if n % 50_000 == 0:
            progress(f"expected outputs: {n:,} of {len(records):,} events through the core")
    counts = {t: len(v) for t, v in distinct.items()}
    return Expected(counts, time.perf_counter() - started, state_sizes(engine, policy))


def state_sizes(engine: Engine, policy: Policy) -> dict[str, Any]:
    """Bytes of state as the changelogs hold it: per seller ring, per seller all told, per order."""
    stores = engine.stores
    now = max((c[0] or 0) for c in engine._clocks.values()) if engine._clocks else 0
    order_bytes = [len(k.encode()) + len(o.dumps()) for k, o in stores.orders.items()]
    seller_bytes = [len(k.encode()) + len(s.dumps()) for k, s in stores.sellers.items()]
    evidence = sum(len(k.encode()) + len(json.dumps(v)) for k, v in stores.evidence.items())
    evidence += sum(len(k.encode()) + len(str(v)) for k, v in stores.defect_buyers.items())
    other = evidence + sum(len(k.encode()) + len(h.dumps()) for k, h in stores.enforcement.items())
    in_window = sum(1 for o in stores.orders.values()
                    if o.placed_at is not None and o.placed_at > now - policy.window_ms)
    sellers = max(1, len(seller_bytes))
    return {
        "sellers": len(seller_bytes),
        "orders_held": len(order_bytes),
        "orders_in_window": in_window,
        "seller_ring_median": int(statistics.median(seller_bytes)) if seller_bytes else 0,
        "seller_ring_max": max(seller_bytes, default=0),
        "per_seller_all": int((sum(seller_bytes) + other) / sellers),
        "evidence_per_seller": int(evidence / sellers),
        "per_order": int(statistics.mean(order_bytes)) if order_bytes else 0,
        "total": sum(seller_bytes) + sum(order_bytes) + other,
    }
