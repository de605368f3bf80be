"""Faults a worker must live through: a flood of fuzzed bad records, a broker that stops
answering, Redis going away and coming back empty. Real broker, real Redis, real worker."""

from __future__ import annotations

import os
import random
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from schemas.codec import Codec
from stack.embedded import free_port, start_tansu, stop
from streams.contract import topics as T
from tests.chaos import harness as H
from tests.support.kafka import producer

pytestmark = pytest.mark.integration
codec = Codec()
NOW = int(time.time() * 1000)
FUZZED = int(os.environ.get("WARDEN_FUZZ_RECORDS", "3000"))  # `make chaos`-sized runs: 10,000
STALL_S = float(os.environ.get("WARDEN_STALL_SECONDS", "20"))  # `make chaos`-sized runs: 60


def metric_sum(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def fuzzed(rng: random.Random, n: int) -> list[tuple[str, bytes]]:
    """`n` bad records (topic, value) of every kind: noise, cut or flipped Avro, unknown
    schemas, field-rule violations, records on the wrong topic."""
    good: list[tuple[str, bytes]] = []
    for i in range(50):
        rating = dict(event_id=f"f{i}", rating_id=f"r{i}", order_id=f"o{i}", seller_id=f"fz-{i % 7}",
                      buyer_id="b", stars=rng.randint(1, 5), show_id=None, rated_at=NOW - 1000)
        good.append(("marketplace.ratings", codec.encode("RatingSubmitted", rating)))
    out = []
    for i in range(n):
        kind = i % 6
        topic, value = rng.choice(good)
        if kind == 0:
            bad = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
            if bad[:2] == b"\xc3\x01":
                bad = b"\x00" + bad
        elif kind == 1:
            bad = value[: rng.randint(0, len(value) - 1)]
        elif kind == 2:
            bad = b"\xc3\x01" + bytes(rng.getrandbits(8) for _ in range(8)) + value[10:]
        elif kind == 3:
            r = dict(event_id=f"x{i}", rating_id=f"x{i}", order_id="o", seller_id=f"fz-{i % 7}", buyer_id="b",
                     stars=rng.choice((0, 6, 9, -3)), show_id=None, rated_at=NOW - 1000)
            bad = codec.encode("RatingSubmitted", r)
        elif kind == 4:
            r = dict(event_id=f"y{i}", rating_id=f"y{i}", order_id="o", seller_id="", buyer_id="b",
                     stars=3, show_id=None, rated_at=NOW - 1000)
            bad = codec.encode("RatingSubmitted", r)
        else:
            topic = "marketplace.orders"  # a rating where orders belong
            bad = value
        out.append((topic, bad))
    return out


def test_fuzzed_bad_records_are_all_dead_lettered_and_counted(worker_factory: type, tmp_path: Path) -> None:
    w = worker_factory.start(WARDEN_PARTITIONS="2")
    broker = w.env["KAFKA_BOOTSTRAP_SERVERS"]
    p = producer(broker)
    rng = random.Random(7)
    bad = fuzzed(rng, FUZZED)
    for i, (topic, value) in enumerate(bad):
        p.produce(w.topic(topic), key=f"fz-{i % 7}".encode(), value=value)
        if i % 1000 == 999:
            p.flush()
    # and a good record after all of them: processing goes on
    p.produce(w.topic("marketplace.orders"), key=b"fz-ok", value=codec.encode("OrderPlaced", dict(
        event_id="ok", order_id="ok", seller_id="fz-ok", buyer_id="b", show_id=None, amount_cents=1,
        currency="USD", placed_at=NOW - 1000, ship_by=None, quantity=1, listing_id=None)))
    p.flush()
    deadline = time.monotonic() + 120
    while metric_sum(w.port, "warden_events_invalid_total") < len(bad):
        counted = metric_sum(w.port, "warden_events_invalid_total")
        assert time.monotonic() < deadline, f"{counted} of {len(bad)} counted"
        time.sleep(0.5)
    dead = cluster_read_raw(broker, w.topic(T.DEAD_LETTER))
    assert len(dead) == len(bad)
    assert sorted(dead) == sorted(value for _, value in bad)  # the original bytes, each once
    assert metric_sum(w.port, "warden_events_invalid_total") == len(bad)
    metrics = H.Cluster(broker, tmp_path)
    metrics.prefix = w.prefix
    assert any(r["seller_id"] == "fz-ok" for r in metrics.read(T.SELLER_METRICS))
    assert w.proc is not None and w.proc.poll() is None and health(w.port) == 200


def cluster_read_raw(broker: str, topic: str, quiet_s: float = 3.0) -> list[bytes]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": broker, "group.id": f"raw-{time.time_ns()}",
                  "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        out: list[bytes] = []
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            msg = c.poll(0.2)
            if msg is not None and not msg.error():
                out.append(msg.value())
                last = time.monotonic()
        return out
    finally:
        c.close()


def test_a_broker_that_stops_answering_is_survived(tmp_path: Path) -> None:
    """The broker frozen (SIGSTOP) longer than the session: the worker stays alive and says
    it is not ready; once the broker answers again it is ready, and every decision of the
    history is published, under the ids the core gives them, none re-issued."""
    port = free_port()
    tansu = start_tansu(port, tmp_path / "broker.log")
    broker = f"127.0.0.1:{port}"
    events = H.history(21, 24, 8, H.end_of_history(8))
    half = len(events) // 2
    cluster = H.Cluster(broker, tmp_path)
    try:
        w = cluster.add("w0")
        p = cluster.producer()
        cluster.produce(p, events[:half])
        cluster.settle(quiet_s=3)
        os.killpg(tansu.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 15
            while health(w.port) == 200:
                assert time.monotonic() < deadline, "still ready with the broker away"
                time.sleep(0.5)
            time.sleep(max(0.0, STALL_S - 15))
            assert w.alive(), "the worker died while the broker was away"
            assert health(w.port) == 503
        finally:
            os.killpg(tansu.pid, signal.SIGCONT)
        deadline = time.monotonic() + 90
        while health(w.port) != 200:
            assert w.alive() and time.monotonic() < deadline, "not ready again after the broker came back"
            time.sleep(0.5)
        cluster.produce(p, events[half:])
        cluster.settle(quiet_s=3)
        outcome_records = cluster.read(T.ENFORCEMENTS)
        expected = H.oracle(events, cluster.partitions)
        assert expected
        assert H.keyed(outcome_records, H.EVENT_FIELDS) == H.keyed(expected, H.EVENT_FIELDS)
        outcome = H.Outcome(outcome_records, expected, H.EVENT_FIELDS, cluster.tally, 0, 0.0)
        assert not outcome.reissued
    finally:
        cluster.stop_all()
        stop(tansu)




def test_redis_outage_views_catch_up(tmp_path: Path) -> None:
    """Redis killed while events flow, then back empty: the worker lives on, counts the
    failed writes, and every seller's view catches up with the figures it published."""
    import redis

    from stack.embedded import start_redis

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path / "redis.log")
    kafka_port = free_port()
    tansu = start_tansu(kafka_port, tmp_path / "broker.log")
    events = H.history(31, 16, 6, H.end_of_history(6))
    third = len(events) // 3
    cluster = H.Cluster(f"127.0.0.1:{kafka_port}", tmp_path, REDIS_URL=url)
    try:
        w = cluster.add("w0")
        p = cluster.producer()
        cluster.produce(p, events[:third])
        cluster.settle(quiet_s=2)
        server.kill()
        server.wait()
        cluster.produce(p, events[third: 2 * third])
        cluster.settle(quiet_s=2)
        assert w.alive() and cluster.metric(w, "warden_view_write_failures_total") > 0
        server = start_redis(port, tmp_path / "redis.log")  # back, empty
        cluster.produce(p, events[2 * third:])
        cluster.settle(quiet_s=2)
        published: dict[str, dict] = {}
        for r in cluster.read(T.SELLER_METRICS):
            published[r["seller_id"]] = r
        assert len(published) == 16
        client = redis.Redis.from_url(url)
        figures = ("cancellation_rate", "late_dropoff_rate", "unfulfilled_rate", "flawed_item_rate",
                   "low_rating_rate")
        deadline = time.monotonic() + 20
        while True:
            missing = []
            for seller, record in published.items():
                stored = client.hget(f"{cluster.prefix}warden:seller:{seller}:view", "record")
                view = codec.decode(stored)[1] if stored else None
                if view is None or [view[m] for m in figures] != [record[m] for m in figures]:
                    missing.append(seller)
            if not missing:
                break
            assert time.monotonic() < deadline, f"views not caught up: {missing[:5]}"
            time.sleep(0.5)
        actions = {r["action_id"] for r in cluster.read(T.ENFORCEMENTS)}
        in_view = set()
        for seller in published:
            in_view |= {k.decode() for k in client.hkeys(f"{cluster.prefix}warden:seller:{seller}:actions")}
        assert actions == in_view
        assert w.alive()
    finally:
        cluster.stop_all()
        stop(tansu)
        server.kill()
