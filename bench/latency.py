"""(e) of `warden bench`: event-to-decision latency under an open-loop load."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from agents.pipeline import partition_for
from bench.stack import (
    ROOT,
    BenchFailure,
    Context,
    CpuShare,
    LoopLag,
    percentile,
    still_working,
)
from schemas.codec import Codec
from simulator.publisher import producer
from stack.embedded import spawn, stop
from streams.contract import topics as T

# --- (e) latency ----------------------------------------------------------------------------

class Probe:
    """Open-loop probe orders for `probe-*` sellers, and a consumer timing their outputs."""

    def __init__(self, ctx: Context, prefix: str, source: str | None = None, answers: str | None = None) -> None:
        self.ctx = ctx
        self.prefix = prefix
        # the probes go to `source` (Warden's orders topic) and are answered on `answers`
        # (its seller-metrics topic); the floor (bench.floor) copies them unchanged
        self.source = source or prefix + T.RECORD_TOPIC["OrderPlaced"]
        self.answers_topic = answers or prefix + T.SELLER_METRICS
        self.codec = Codec()
        self.sent: dict[tuple[str, int], float] = {}  # (seller, placed_at) -> send time (s)
        self.received: list[tuple[bytes, bytes, float, float]] = []  # key, value, record ts, receive time
        # A probe's order is answered by a SellerMetrics as of its time only if that time is
        # its partition's newest: every probe of a run (in (e), then (f)) goes on from the
        # last one's time and number, never back to ids already used. The first goes on
        # from the data set's last event, not from the wall clock: the data set ends about a
        # day and a half before it was built (it is cut at its number of events), and a
        # first probe at the wall clock moved the stream's time on by that much at once. A
        # day and a half of deadlines then fired in one record (4.5 s of handling), and the
        # checkpoint of their changes (260,000 changelog records, 3.7 s) kept the broker
        # answering the worker 150-300 ms late: the first seconds of (e) measured that
        # burst, not the load. A live stream's time moves with its events.
        start = ctx.data.end_ms if ctx.data else int(time.time() * 1000)
        self.next_time = max(start, ctx.probe_next[0]) + 1
        self._stop = threading.Event()
        self._consumer_thread: threading.Thread | None = None
        self.seq = ctx.probe_next[1]
        self.answers: list[tuple[float, float, float]] = []
        self._answered: set[tuple[str, int]] = set()
        self._decoded = 0

    def start_consumer(self) -> None:
        topic = self.answers_topic
        consumer = Consumer({"bootstrap.servers": self.ctx.servers, "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 100})
        # The latency is read off each output's own timestamp (set when the worker publishes
        # it), not when this consumer receives it: it may poll seldom. It does: a fetch
        # with new records costs Tansu time proportional to the batches in the partition,
        # and the seller-metrics topic holds hundreds of thousands; fetching every 5 ms
        # made the bench's own reader the broker's biggest load.
        ends = []
        for p in range(self.ctx.plan.partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
            ends.append(TopicPartition(topic, p, max(0, high)))
        consumer.assign(ends)

        def run() -> None:
            try:
                while not self._stop.is_set():
                    for msg in consumer.consume(10_000, 0.05):
                        key, value = msg.key(), msg.value()
                        if msg.error() is None and isinstance(key, bytes) and key.startswith(b"probe-"):
                            self.received.append((key, value or b"", msg.timestamp()[1] / 1000, time.time()))
            finally:
                consumer.close()

        self._consumer_thread = threading.Thread(target=run, daemon=True)
        self._consumer_thread.start()

    def stop_consumer(self) -> None:
        self._stop.set()
        if self._consumer_thread is not None:
            self._consumer_thread.join(5)

    def send(self, rate: float, seconds: float, until: Callable[[], bool] | None = None) -> int:
        """Send probe orders at `rate`/s for `seconds` (or until `until()`); open loop: the
        schedule never waits for the worker."""
        # linger 5 ms, as Kafka clients default to since 4.0: a request per record would cost
        # the broker more than the worker
        prod = producer(self.ctx.servers, **{"linger.ms": 5})
        partitions = self.ctx.plan.partitions
        total = int(rate * seconds)
        topic = self.source
        records = []
        for i in range(total):
            seller = f"probe-{(self.seq + i) % 1000:04d}"
            placed = self.next_time + i
            value = self.codec.encode("OrderPlaced", {
                "event_id": f"probe-ev-{self.seq + i}", "order_id": f"probe-o-{self.seq + i}", "seller_id": seller,
                "buyer_id": f"buyer-{i % 5000}", "show_id": None, "amount_cents": 1000, "currency": "USD",
                "placed_at": placed, "ship_by": None})
            key = seller.encode()
            records.append((key, partition_for(key, partitions), value, seller, placed))
        self.seq += total
        self.next_time += total + 1
        self.ctx.probe_next = (self.next_time, self.seq)
        started = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            while sent < due:
                key, partition, value, seller, placed = records[sent]
                self.sent[(seller, placed)] = time.time()
                prod.produce(topic, key=key, value=value, partition=partition)
                sent += 1
            prod.poll(0)
            if until is not None and until():
                break
            time.sleep(0.0005)
        prod.flush(30)
        return sent

    def answered(self) -> list[tuple[float, float, float]]:
        """(sent, output timestamp, received) per answered probe, decoding only what
        arrived since the last call (this runs inside the open-loop send schedule)."""
        received = self.received
        while self._decoded < len(received):
            _, value, ts, received_at = received[self._decoded]
            self._decoded += 1
            name, record = self.codec.decode(value)
            # a SellerMetrics answer is as of its order's time; the floor's is the order
            key = (record["seller_id"], record["placed_at"] if name == "OrderPlaced" else record["as_of"])
            sent = self.sent.get(key)
            if sent is not None and key not in self._answered:
                self._answered.add(key)
                self.answers.append((sent, ts, received_at))
        return self.answers

    def latencies(self, since: float = 0.0) -> tuple[list[float], list[float], int]:
        """(publication latencies, receive latencies) in ms, of probes sent after `since`,
        and how many of those probes have no output."""
        answers = [a for a in self.answered() if a[0] >= since]
        wanted = sum(1 for t in self.sent.values() if t >= since)
        return ([(ts - sent) * 1000 for sent, ts, _ in answers],
                [(received - sent) * 1000 for sent, _, received in answers], wanted - len(answers))

    def write_answers(self, path: Path, since: float) -> None:
        """Each probe sent after `since` as a line: sent, published, received (epoch
        seconds); for reading where a tail comes from (together, or spread out)."""
        with open(path, "w") as fh:
            fh.write("sent\tpublished\treceived\n")
            for sent, published, received in sorted(a for a in self.answered() if a[0] >= since):
                fh.write(f"{sent:.4f}\t{published:.4f}\t{received:.4f}\n")

    def wait_answered(self, since: float, timeout_s: float, waiting: Callable[[int], None]) -> None:
        """Wait up to `timeout_s` until every probe sent after `since` has its output (a slow
        answer is not a lost one), calling `waiting(missing)` while some are missing."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            missing = self.latencies(since)[2]
            if missing == 0:
                return
            waiting(missing)
            time.sleep(0.2)

    def first_answer_within(self, since: float, bound_s: float) -> float | None:
        """When the first probe sent after `since` was answered (published) within `bound_s`."""
        times = [published for sent, published, _ in self.answered() if sent >= since and published - sent <= bound_s]
        return min(times) if times else None


def floor_latencies(ctx: Context, report: Any, loads: tuple[float, ...]) -> dict[float, float]:
    """The same probes at the same loads through a raw consume -> produce pass-through
    (bench.floor) on topics of its own: what the broker, the clients and this machine cost
    with nothing decided. Returns the p99 (ms) per load."""
    from confluent_kafka.admin import AdminClient, NewTopic

    assert ctx.worker is not None
    prefix = ctx.worker.prefix
    source, answers = prefix + "bench.floor-in", prefix + "bench.floor-out"
    admin = AdminClient({"bootstrap.servers": ctx.servers})
    for future in admin.create_topics([NewTopic(t, ctx.plan.partitions, 1) for t in (source, answers)]).values():
        future.result(30)
    log = ctx.workdir / "floor.log"
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=ctx.servers, WARDEN_FLOOR_IN=source, WARDEN_FLOOR_OUT=answers,
               WARDEN_FLOOR_PARTITIONS=str(ctx.plan.partitions),
               PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p))
    proc = spawn([sys.executable, "-m", "bench.floor"], log, env=env)
    p99s: dict[float, float] = {}
    probe = Probe(ctx, prefix, source, answers)
    probe.start_consumer()
    try:
        deadline = time.monotonic() + 30
        while b"floor: ready" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchFailure(f"latency: the pass-through floor did not start; see {log}")
            time.sleep(0.1)
        ctx.progress("(e) floor: warm-up")
        since = time.time()
        probe.send(ctx.figures["c"] * 0.25, 2.0)
        probe.wait_answered(since, 30.0, lambda missing: None)
        for load in loads:
            rate = ctx.figures["c"] * load
            ctx.progress(f"(e) floor: pass-through at {load:.0%} of (c), {rate:,.0f} events/s")
            since = time.time()
            cpu = CpuShare(proc.pid, ctx.broker_pid)
            probe.send(rate, ctx.plan.latency_seconds)
            floor_cpu, broker_cpu = cpu.stop()
            probe.wait_answered(since, 30.0, lambda missing: None)
            pub, _, missing = probe.latencies(since)
            probe.write_answers(ctx.workdir / f"floor-{int(load * 100)}.tsv", since)
            p99s[load] = percentile(pub, 0.99)
            report.add("e", f"floor at {int(load * 100)}% load: p50 / p99", f"{percentile(pub, 0.5):.1f} / "
                       f"{p99s[load]:.1f}", "ms", f"raw consume -> produce pass-through, {len(pub):,} probes; "
                       f"{missing} without output; CPU while sending: pass-through {floor_cpu:.2f}"
                       + (f", broker {broker_cpu:.2f}" if ctx.broker_pid else "") + " cores")
    finally:
        probe.stop_consumer()
        stop(proc, timeout=5)
    return p99s


def section_latency(ctx: Context, report: Any) -> None:
    if ctx.worker is None or "c" not in ctx.figures:
        raise BenchFailure("latency needs the worker section (c) in the same run")
    loads = (0.25, 0.50, 0.75)
    floor = floor_latencies(ctx, report, loads)
    probe = Probe(ctx, ctx.worker.prefix)
    probe.start_consumer()
    try:
        # warm-up, not counted: the first seconds after (c) carry its tail (the last
        # commit's changelog flush, the views of every seller it touched)
        ctx.progress("(e) warm-up at 25% of (c) for 3 s")
        since = time.time()
        probe.send(ctx.figures["c"] * 0.25, 3.0)
        probe.wait_answered(since, 30.0, lambda missing: None)
        for load in loads:
            rate = ctx.figures["c"] * load
            ctx.progress(f"(e) latency at {load:.0%} of (c): {rate:,.0f} events/s for {ctx.plan.latency_seconds:.0f} s")
            since = time.time()
            worker_pid = ctx.worker.proc.pid if ctx.worker.proc else None
            cpu = CpuShare(worker_pid, ctx.broker_pid)
            watch = LoopLag([ctx.worker])
            try:
                probe.send(rate, ctx.plan.latency_seconds)
            finally:
                lag = watch.stop()
            worker_cpu, broker_cpu = cpu.stop()
            def waiting(missing: int, load: float = load) -> None:
                ctx.progress(f"(e) latency at {load:.0%}: waiting for {missing:,} answers")

            probe.wait_answered(since, 60.0, waiting)
            pub, _, missing = probe.latencies(since)
            working = still_working(ctx.worker) if missing else False
            label = f"{int(load * 100)}%"
            probe.write_answers(ctx.workdir / f"latency-{int(load * 100)}.tsv", since)
            p50, p99, p999 = (percentile(pub, q) for q in (0.5, 0.99, 0.999))
            ctx.figures[f"p99_{label}"] = p99
            report.add("e", f"latency at {label} load ({rate:,.0f}/s): p50", p50, "ms",
                       f"{len(pub):,} probes; {missing} without output")
            report.add("e", f"latency at {label} load: p99", p99, "ms",
                       "input broker timestamp -> output published"
                       + (f"; {p99 / floor[load]:.1f}x the floor's {floor[load]:.1f}" if floor.get(load) else ""))
            if floor.get(load):
                report.add("e", f"latency at {label} load: p99 / the floor's p99", round(p99 / floor[load], 2), "x",
                           "the pass-through floor at the same load, this run"
                           + {0.25: "; target <= 1.5", 0.5: "; target <= 2"}.get(load, ""))
            report.add("e", f"latency at {label} load: p999", p999, "ms",
                       f"CPU while sending: worker {worker_cpu:.2f}"
                       + (f", broker {broker_cpu:.2f}" if ctx.broker_pid else "") + " cores")
            report.add("e", f"latency at {label} load: event-loop lag p99", round(lag[0] * 1000, 1), "ms",
                       f"{watch.over_20ms:.1%} of wake-ups later than 20 ms; target <= 20")
            report.add("e", f"latency at {label} load: event-loop lag max", round(lag[1] * 1000, 1), "ms",
                       f"target <= 100; {lag[2]:,} samples")
            if missing > len(pub) * 0.01 + 1:
                if not working:
                    raise BenchFailure(f"latency: {missing} of {missing + len(pub)} probes at {label} got no output")
                report.add("e", f"latency at {label} load: overloaded", missing, "probes",
                           "still unanswered after 60 s while the worker works on: higher loads not run")
                break
    finally:
        probe.stop_consumer()
