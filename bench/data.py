"""The benchmark's data set: the simulated marketplace, encoded once, loaded under a prefix,
and the outputs a correct run must publish for it (from the decision core, no broker).

The events are the simulator's (Zipf-skewed seller sizes, every profile), in the real
Avro encoding, keyed by seller, each with its simulated time as the record timestamp, so
that a worker processes them in the same order (CONTRACT §4) as the replay here does.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.pipeline import Pipeline, partition_for
from rules.policy import Policy, load_policy
from schemas.codec import Codec
from simulator.marketplace import DAY, Marketplace
from simulator.publisher import producer
from streams.contract import topics as T
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
    # a span with more than enough events (the first days have few scans and ratings); the
    # data set is cut at exactly `events`
    days = events / (sellers * EVENTS_PER_SELLER_DAY) * 1.2 + 3
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
    if len(data.records) < events:
        raise RuntimeError(f"the simulated marketplace gave {len(data.records):,} events, not {events:,}")
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
    fresh: bool = True  # measured in this run (not read from the data set cache)

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
    for i, (topic, partition, _key, _value, ts) in enumerate(data.records):
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
    now = max((engine.stream_time(p) or 0 for p in engine.partitions_seen()), default=0)
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


def prepare(events: int, sellers: int, partitions: int, policy_path: str, cache_dir: str | None,
            progress: Callable[[str], None] = lambda _: None) -> tuple[Dataset, Expected]:
    """The data set and its expected outputs; with `cache_dir` (WARDEN_BENCH_CACHE) kept there
    between runs, under a key of the sizes and of every source file and the policy they
    depend on, so that a change to the code or the policy builds them again."""
    path = None
    if cache_dir:
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256(f"{events}/{sellers}/{partitions}".encode())
        for source in sorted([Path(policy_path), *(p for d in ("agents", "tables", "rules", "schemas")
                                                    for p in (root / d).rglob("*") if p.is_file()),
                              root / "simulator" / "marketplace.py", root / "bench" / "data.py"]):
            digest.update(source.read_bytes())
        path = Path(cache_dir) / f"bench-data-{events}-{digest.hexdigest()[:16]}.pickle"
        if path.exists():
            progress(f"data set and expected outputs from {path}")
            with open(path, "rb") as fh:
                data, expected = pickle.load(fh)
            expected.fresh = False
            return data, expected
    started = time.perf_counter()
    data = build(events, sellers, partitions, progress=progress)
    expected = expected_outputs(data, load_policy(policy_path), progress)
    data.seconds_to_build = time.perf_counter() - started
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            pickle.dump((data, expected), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return data, expected
