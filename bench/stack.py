"""The benchmark's broker-backed sections, (a)-(g) of `warden bench`, side by side in one run.

One broker (an embedded Tansu, or KAFKA_BOOTSTRAP_SERVERS when set), one data set loaded
under a fresh topic prefix per run, so no run reads another's records:
- (a) ceiling: a raw aiokafka consumer draining the input topics;
- (b) faust:   a Faust agent that does nothing, same topics, Warden's Faust settings;
- (c) worker:  `warden worker` end to end; its outputs are counted and must equal what
               the decision core publishes for the same data set, or the run fails;
- (d) workers: N worker processes sharing the partitions (same check);
- (e) latency: an open-loop producer at 25/50/75 % of (c)'s rate against the caught-up
               worker; broker timestamp of the input -> timestamp of the output it caused;
- (f) startup: process start -> ready, and kill -9 under load -> the replacement caught up;
- (g) memory:  the worker's peak RSS, and state bytes per seller and per order.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from agents.pipeline import partition_for
from schemas.codec import Codec
from bench import data as bench_data
from streams import topics as T
from stack.embedded import StackError, free_port, start_tansu, stop, wait_healthy
from simulator.publisher import producer
from streams.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


class BenchFailure(RuntimeError):
    """A run that did not do its work correctly (e.g. wrong output count): the bench fails."""


@dataclass
class Plan:
    events: int
    sellers: int
    partitions: int = 4
    repeats: int = 3
    latency_seconds: float = 15.0
    workers: int = 2
    store: str = "rocksdb"

    @classmethod
    def of(cls, quick: bool, workers: int, store: str) -> "Plan":
        if quick:
            plan = cls(events=20_000, sellers=2_000, repeats=1, latency_seconds=3.0, workers=workers, store=store)
        else:
            plan = cls(events=1_000_000, sellers=20_000, repeats=3, latency_seconds=15.0, workers=workers, store=store)
        # WARDEN_BENCH_EVENTS / _SELLERS / _REPEATS / _LATENCY_SECONDS: another size, number of
        # repeats, or time at each latency load; WARDEN_BENCH_CACHE: a directory that keeps the
        # data set and its expected outputs between runs (rebuilt when the code changes)
        plan.events = int(os.environ.get("WARDEN_BENCH_EVENTS", plan.events))
        plan.sellers = int(os.environ.get("WARDEN_BENCH_SELLERS", plan.sellers))
        plan.repeats = int(os.environ.get("WARDEN_BENCH_REPEATS", plan.repeats))
        plan.latency_seconds = float(os.environ.get("WARDEN_BENCH_LATENCY_SECONDS", plan.latency_seconds))
        return plan


@dataclass
class Context:
    """The shared parts of a run: broker, data set, expected outputs, figures so far."""

    plan: Plan
    servers: str
    workdir: Path
    progress: Callable[[str], None]
    data: bench_data.Dataset | None = None
    expected: bench_data.Expected | None = None
    figures: dict[str, float] = field(default_factory=dict)
    worker: "WorkerRun | None" = None  # the caught-up worker of (c), used by (e), (f), (g)
    loaded: list[str] = field(default_factory=list)
    broker_pid: int | None = None  # an embedded Tansu's (see WARDEN_RECOVERY_CHECK); its CPU is reported

    @property
    def own_broker(self) -> bool:
        return self.broker_pid is not None

    def fresh_prefix(self) -> str:
        """A new prefix with the data set loaded on its input topics."""
        assert self.data is not None
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": self.servers, "WARDEN_TOPIC_PREFIX": prefix,
                                  "WARDEN_PARTITIONS": str(self.plan.partitions)})
        from streams.admin import ensure_topics

        ensure_topics(settings)
        bench_data.load(self.data, self.servers, prefix, self.progress)
        self.loaded.append(prefix)
        return prefix


# --- processes ----------------------------------------------------------------------------

class WorkerRun:
    """One `warden worker` process on a prefix, under the event clock."""

    def __init__(self, ctx: Context, prefix: str, app_id: str, instance: str, extra_env: dict[str, str] | None = None):
        self.ctx = ctx
        self.prefix = prefix
        self.port = free_port()
        self.log = ctx.workdir / f"worker-{app_id}-{instance}.log"
        self.env = dict(os.environ)
        self.env.update(
            KAFKA_BOOTSTRAP_SERVERS=ctx.servers, WARDEN_TOPIC_PREFIX=prefix, WARDEN_APP_ID=app_id,
            WARDEN_WEB_PORT=str(self.port), WARDEN_DATA_DIR=str(ctx.workdir / f"data-{app_id}-{instance}"),
            WARDEN_CLOCK="event", WARDEN_PARTITIONS=str(ctx.plan.partitions), WARDEN_STORE=ctx.plan.store,
            WARDEN_INSTANCE_ID=instance, WARDEN_LOG_LEVEL=os.environ.get("WARDEN_BENCH_LOG_LEVEL", "warning"),
            WARDEN_RECOVERY_CHECK="off" if ctx.own_broker else "on",
            PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p),
        )
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.ready_seconds = 0.0

    def start(self) -> "WorkerRun":
        out = open(self.log, "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "worker"], env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 120.0) -> float:
        assert self.proc is not None
        wait_healthy(self.port, self.proc, timeout=timeout, log_path=self.log)
        self.ready_seconds = time.monotonic() - self.started
        return self.ready_seconds

    def metric(self, name: str) -> float:
        """The sum of a Prometheus metric's samples (0 if the worker does not answer)."""
        return sum(self.metric_samples(name))

    def first_event_at(self) -> float | None:
        """When the worker handled its first input record (wall clock, s): the creation
        time Prometheus keeps for the events counter's first series."""
        created = self.metric_samples("warden_events_created")
        return min(created) if created else None

    def metric_samples(self, name: str) -> list[float]:
        """A Prometheus metric's sample values (none if the worker does not answer)."""
        return list(self.labelled_samples(name).values())

    def labelled_samples(self, name: str) -> dict[str, float]:
        """A Prometheus metric's samples by their labels as written (`{topic="t"}`, or ``)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        samples = {}
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                series, value = line.rsplit(" ", 1)
                samples[series[len(name):]] = float(value)
        return samples

    def positions(self) -> dict[tuple[str, int], int]:
        """The input offsets the worker has handled up to, by (topic, partition)."""
        out = {}
        for labels, value in self.labelled_samples("warden_input_position").items():
            fields = dict(part.split("=", 1) for part in labels.strip("{}").split(","))
            out[(fields["topic"].strip('"'), int(fields["partition"].strip('"')))] = int(value)
        return out

    def peak_rss(self) -> int:
        """The process's peak resident set size, in bytes."""
        assert self.proc is not None
        try:
            with open(f"/proc/{self.proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=5)


OUTPUTS = (T.SELLER_METRICS, T.ENFORCEMENTS, T.NOTIFICATIONS, T.DEAD_LETTER, T.REKEYED)
# the worker's counters of what it has handed to its producer, by output topic
COUNTERS = {T.SELLER_METRICS: "warden_seller_metrics_published_total", T.ENFORCEMENTS: "warden_enforcements_total",
            T.NOTIFICATIONS: "warden_notifications_total"}


def read_outputs(servers: str, prefix: str, partitions: int, idle_s: float = 1.5) -> dict[str, tuple[int, int]]:
    """Read every output topic from its start: (records, distinct records) per topic. The
    record bytes are deterministic, so an output published again (at-least-once, after a
    rebalance or a restart) is the same record: distinct records are what was decided.
    (Read, not the brokers' end offsets: Tansu's ListOffsets can answer less than its log holds.)"""
    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"bench-count-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    topics = {prefix + t: t for t in OUTPUTS}
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(partitions)])
        raw: dict[str, int] = {}
        seen: dict[str, set[int]] = {}
        last = time.monotonic() + 30.0  # the first records may take a while (connect, large logs)
        while time.monotonic() - last < idle_s:
            messages = consumer.consume(50_000, 0.2)
            if messages:
                last = time.monotonic()
            for m in messages:
                if m.error() is not None:
                    continue
                t = topics[m.topic()]
                raw[t] = raw.get(t, 0) + 1
                seen.setdefault(t, set()).add(hash((m.key(), m.value())))
        return {t: (raw[t], len(seen[t])) for t in raw}
    finally:
        consumer.close()


def drain(ctx: Context, workers: list[WorkerRun], prefix: str, label: str) -> float:
    """Wait until the workers have handled every input and handed over every expected
    output; return the seconds from the first record handled (as the workers' events
    counter was created; else from the first worker ready) to then. Then read what reached
    the output topics and check it against the expected outputs (distinct records)."""
    assert ctx.expected is not None and ctx.data is not None
    want_events = len(ctx.data)
    want_outputs = sum(n for t, n in ctx.expected.outputs.items() if t in COUNTERS)
    ends = ctx.data.end_offsets(prefix)
    start = min(w.started + w.ready_seconds for w in workers)
    last_change, last = time.monotonic(), (-1.0, -1.0)
    while True:
        # Counters count a record handled again after a rebalance twice; positions do not.
        # A partition's position is the furthest any worker has handled it to: a worker
        # that gave it up flushed what it had handed its producer before it did.
        reached: dict[tuple[str, int], int] = {}
        for w in workers:
            for tp, position in w.positions().items():
                reached[tp] = max(position, reached.get(tp, 0))
        handled = sum(min(reached.get(tp, 0), end) for tp, end in ends.items())
        out = sum(w.metric(name) for w in workers for name in COUNTERS.values())
        now = time.monotonic()
        if handled >= want_events and out >= want_outputs:
            firsts = [t for t in (w.first_event_at() for w in workers) if t is not None]
            elapsed = time.time() - min(firsts) if firsts else now - start
            break
        if (handled, out) != last:
            last, last_change = (handled, out), now
            ctx.progress(f"{label}: {int(handled):,} of {want_events:,} events, {int(out):,} of {want_outputs:,} outputs")
        elif now - last_change > 20:
            elapsed = now - start
            break
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise BenchFailure(f"{label}: a worker exited (code {w.proc.returncode}); see {w.log}")
        time.sleep(0.05)
    ctx.progress(f"{label}: reading the output topics to check them")
    counted = read_outputs(ctx.servers, prefix, ctx.plan.partitions)
    problems = ctx.expected.check({t: distinct for t, (_, distinct) in counted.items()})
    if problems:
        raise BenchFailure(f"{label}: output count check FAILED (distinct records): " + "; ".join(problems))
    return elapsed


# --- (a) the ceiling ------------------------------------------------------------------------

async def _aiokafka_drain(servers: str, topics: list[str], partitions: int, expect: int) -> float:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as TP

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=4 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    try:
        tps = [TP(t, p) for t in topics for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count, started = 0, time.perf_counter()
        while count < expect:
            batch = await consumer.getmany(timeout_ms=1000, max_records=50_000)
            count += sum(len(v) for v in batch.values())
            if time.perf_counter() - started > 300:
                raise BenchFailure(f"ceiling: read {count:,} of {expect:,} records in 300 s")
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def section_ceiling(ctx: Context, report: Any, prefix: str) -> None:
    import uvloop

    assert ctx.data is not None
    topics = [prefix + t for t in T.INPUT_TOPICS]
    runs = []
    for r in range(ctx.plan.repeats):
        ctx.progress(f"(a) ceiling: aiokafka drain, run {r + 1}/{ctx.plan.repeats}")
        seconds = uvloop.run(_aiokafka_drain(ctx.servers, topics, ctx.plan.partitions, len(ctx.data)))
        runs.append(len(ctx.data) / seconds)
    rate = statistics.median(runs)
    ctx.figures["a"] = rate
    report.add("a", "raw aiokafka consumer (ceiling)", rate, "events/s", _spread_note(runs) + "; ratio 1.00")


# --- (b) a do-nothing Faust agent -------------------------------------------------------------

def section_faust(ctx: Context, report: Any, prefix: str) -> None:
    assert ctx.data is not None
    runs = []
    for r in range(ctx.plan.repeats):
        ctx.progress(f"(b) do-nothing Faust agent, run {r + 1}/{ctx.plan.repeats}")
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=ctx.servers, WARDEN_TOPIC_PREFIX=prefix,
                   WARDEN_APP_ID=f"nothing{uuid.uuid4().hex[:6]}", WARDEN_PARTITIONS=str(ctx.plan.partitions),
                   WARDEN_BENCH_EXPECT=str(len(ctx.data)), WARDEN_DATA_DIR=str(ctx.workdir / "faust-data"),
                   PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p))
        log = ctx.workdir / f"faust-{r}.log"
        result_path = ctx.workdir / f"faust-{r}.json"
        env["WARDEN_BENCH_RESULT"] = str(result_path)
        with open(log, "ab") as out:
            try:
                done = subprocess.run([sys.executable, "-m", "bench.faust_baseline"], env=env, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=600)
            except subprocess.TimeoutExpired:
                raise BenchFailure(f"faust: the do-nothing agent did not drain the topics in 600 s; see {log}")
        if not result_path.exists():
            raise BenchFailure(f"faust: the do-nothing agent exited (code {done.returncode}) without a result; see {log}")
        result = json.loads(result_path.read_text())
        runs.append(result["events"] / result["seconds"])
    rate = statistics.median(runs)
    ctx.figures["b"] = rate
    report.add("b", "Faust agent doing nothing", rate, "events/s", _spread_note(runs) + _ratio(ctx, rate))


# --- (c) Warden end to end ----------------------------------------------------------------

def section_worker(ctx: Context, report: Any) -> None:
    assert ctx.data is not None
    runs, readies, worker_cpu, broker_cpu = [], [], [], []
    for r in range(ctx.plan.repeats):
        prefix = ctx.fresh_prefix()
        ctx.progress(f"(c) worker end to end, run {r + 1}/{ctx.plan.repeats}")
        w = WorkerRun(ctx, prefix, "warden", "w1").start()
        try:
            readies.append(w.wait_ready())
            assert w.proc is not None
            cpu0 = cpu_seconds(w.proc.pid), cpu_seconds(ctx.broker_pid)
            seconds = drain(ctx, [w], prefix, f"(c) run {r + 1}")
            runs.append(len(ctx.data) / seconds)
            # CPU per event, from ready to drained (reading the outputs back included)
            worker_cpu.append((cpu_seconds(w.proc.pid) - cpu0[0]) / len(ctx.data) * 1e6)
            broker_cpu.append((cpu_seconds(ctx.broker_pid) - cpu0[1]) / len(ctx.data) * 1e6)
        except BaseException:
            w.stop()
            raise
        if ctx.worker is not None:
            ctx.worker.stop()
        ctx.worker = w  # the last one stays up for (e), (f), (g)
    rate = statistics.median(runs)
    ctx.figures["c"] = rate
    ctx.figures["ready"] = statistics.median(readies)
    assert ctx.expected is not None
    outputs = sum(ctx.expected.outputs.values())
    report.add("c", "Warden worker, end to end", rate, "events/s",
               _spread_note(runs) + _ratio(ctx, rate) + _vs_b(ctx, rate))
    report.add("c", "worker CPU per event", statistics.median(worker_cpu), "µs",
               "process CPU time / events, ready to drained" + (
                   f"; broker {statistics.median(broker_cpu):.1f} µs" if ctx.own_broker else ""))
    report.add("c", "outputs published per run (checked)", outputs, "records",
               ", ".join(f"{t.split('.')[-1]} {n:,}" for t, n in sorted(ctx.expected.outputs.items())))


# --- (d) several workers ------------------------------------------------------------------

def section_workers(ctx: Context, report: Any) -> None:
    assert ctx.data is not None
    n = ctx.plan.workers
    prefix = ctx.fresh_prefix()
    ctx.progress(f"(d) {n} workers sharing {ctx.plan.partitions} partitions")
    ws = [WorkerRun(ctx, prefix, "warden", f"w{i + 1}").start() for i in range(n)]
    try:
        for w in ws:
            w.wait_ready()
        seconds = drain(ctx, ws, prefix, f"(d) {n} workers")
    finally:
        for w in ws:
            w.stop()
    rate = len(ctx.data) / seconds
    ctx.figures["d"] = rate
    note = _ratio(ctx, rate)
    if "c" in ctx.figures:
        note += f"; {rate / ctx.figures['c']:.2f}x one worker"
    report.add("d", f"{n} workers sharing the partitions", rate, "events/s", note.lstrip("; "))


# --- (e) latency ----------------------------------------------------------------------------

class Probe:
    """Open-loop probe orders for `probe-*` sellers, and a consumer timing their outputs."""

    def __init__(self, ctx: Context, prefix: str) -> None:
        self.ctx = ctx
        self.prefix = prefix
        self.codec = Codec()
        self.sent: dict[tuple[str, int], float] = {}  # (seller, placed_at) -> send time (s)
        self.received: list[tuple[bytes, bytes, float, float]] = []  # key, value, record ts, receive time
        self.next_time = max(int(time.time() * 1000), ctx.data.end_ms if ctx.data else 0) + 1
        self._stop = threading.Event()
        self._consumer_thread: threading.Thread | None = None
        self.seq = 0
        self.answers: list[tuple[float, float, float]] = []
        self._answered: set[tuple[str, int]] = set()
        self._decoded = 0

    def start_consumer(self) -> None:
        topic = self.prefix + T.SELLER_METRICS
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
                        if msg.error() is None and msg.key() and msg.key().startswith(b"probe-"):
                            self.received.append((msg.key(), msg.value(), msg.timestamp()[1] / 1000, time.time()))
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
        topic = self.prefix + T.RECORD_TOPIC["OrderPlaced"]
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
            _, record = self.codec.decode(value)
            key = (record["seller_id"], record["as_of"])
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


def _still_working(worker: "WorkerRun") -> bool:
    """Whether the worker is still handling records (its events counter grows over 3 s)."""
    before = worker.metric("warden_events_total")
    time.sleep(3)
    return worker.metric("warden_events_total") > before


def cpu_seconds(pid: int | None) -> float:
    """A process's user + system CPU time so far (0 if unknown)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def section_latency(ctx: Context, report: Any) -> None:
    if ctx.worker is None or "c" not in ctx.figures:
        raise BenchFailure("latency needs the worker section (c) in the same run")
    probe = Probe(ctx, ctx.worker.prefix)
    probe.start_consumer()
    try:
        # warm-up, not counted: the first seconds after (c) carry its tail (the last
        # commit's changelog flush, the views of every seller it touched)
        ctx.progress("(e) warm-up at 25% of (c) for 3 s")
        since = time.time()
        probe.send(ctx.figures["c"] * 0.25, 3.0)
        probe.wait_answered(since, 30.0, lambda missing: None)
        for load in (0.25, 0.50, 0.75):
            rate = ctx.figures["c"] * load
            ctx.progress(f"(e) latency at {load:.0%} of (c): {rate:,.0f} events/s for {ctx.plan.latency_seconds:.0f} s")
            since = time.time()
            worker_pid = ctx.worker.proc.pid if ctx.worker.proc else None
            cpu0 = (cpu_seconds(worker_pid), cpu_seconds(ctx.broker_pid), time.monotonic())
            probe.send(rate, ctx.plan.latency_seconds)
            seconds = time.monotonic() - cpu0[2]
            worker_cpu = (cpu_seconds(worker_pid) - cpu0[0]) / seconds
            broker_cpu = (cpu_seconds(ctx.broker_pid) - cpu0[1]) / seconds
            probe.wait_answered(since, 60.0, lambda missing: ctx.progress(
                f"(e) latency at {load:.0%}: waiting for {missing:,} answers"))
            pub, _, missing = probe.latencies(since)
            working = _still_working(ctx.worker) if missing else False
            label = f"{int(load * 100)}%"
            p50, p99, p999 = (percentile(pub, q) for q in (0.5, 0.99, 0.999))
            ctx.figures[f"p99_{label}"] = p99
            report.add("e", f"latency at {label} load ({rate:,.0f}/s): p50", p50, "ms",
                       f"{len(pub):,} probes; {missing} without output")
            report.add("e", f"latency at {label} load: p99", p99, "ms",
                       "input broker timestamp -> output published" + ("; target <= 50" if load == 0.5 else ""))
            report.add("e", f"latency at {label} load: p999", p999, "ms",
                       f"CPU while sending: worker {worker_cpu:.2f}"
                       + (f", broker {broker_cpu:.2f}" if ctx.broker_pid else "") + " cores")
            if missing > len(pub) * 0.01 + 1:
                if not working:
                    raise BenchFailure(f"latency: {missing} of {missing + len(pub)} probes at {label} got no output")
                report.add("e", f"latency at {label} load: overloaded", missing, "probes",
                           "still unanswered after 60 s while the worker works on: higher loads not run")
                break
    finally:
        probe.stop_consumer()


# --- (f) start-up and recovery -------------------------------------------------------------

def startup_dynamic(ctx: Context) -> float:
    """Process start -> ready of a worker without an instance id (Warden's default), each
    run a new group on topics of their own (no records: (c) times the draining)."""
    from streams.admin import ensure_topics

    readies = []
    for r in range(ctx.plan.repeats):
        ctx.progress(f"(f) start-up of a dynamic member, run {r + 1}/{ctx.plan.repeats}")
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        ensure_topics(load_settings({"KAFKA_BOOTSTRAP_SERVERS": ctx.servers, "WARDEN_TOPIC_PREFIX": prefix,
                                     "WARDEN_PARTITIONS": str(ctx.plan.partitions)}))
        w = WorkerRun(ctx, prefix, "warden", f"dynamic{r}")
        w.env.pop("WARDEN_INSTANCE_ID")
        try:
            readies.append(w.start().wait_ready())
        finally:
            w.stop()
    return statistics.median(readies)


def section_startup(ctx: Context, report: Any) -> None:
    if ctx.worker is None or "c" not in ctx.figures:
        raise BenchFailure("start-up and recovery need the worker section (c) in the same run")
    dynamic = startup_dynamic(ctx)
    report.add("f", "start-up: process start -> ready", dynamic, "s",
               f"dynamic member (no WARDEN_INSTANCE_ID), median of {ctx.plan.repeats}; target <= 5")
    report.add("f", "start-up of a static member", ctx.figures["ready"], "s",
               "WARDEN_INSTANCE_ID set, (c)'s runs: the broker holds its SyncGroup 3 s more")
    w = ctx.worker
    ctx.figures["rss"] = w.peak_rss()
    probe = Probe(ctx, w.prefix)
    probe.start_consumer()
    rate = ctx.figures["c"] * 0.25
    killed: dict[str, float] = {}
    replacement: list[WorkerRun] = []

    # caught up: a probe sent after the kill is answered as fast as before it (the p99 at
    # this load in (e), at least 250 ms)
    bound_ms = max(250.0, ctx.figures.get("p99_25%", 250.0) or 250.0)

    def caught_up() -> bool:
        return "at" in killed and probe.first_answer_within(killed["at"], bound_ms / 1000) is not None

    def kill_and_replace() -> None:
        time.sleep(2.0)
        killed["at"] = time.time()
        w.kill()
        r = WorkerRun(ctx, w.prefix, "warden", "w1")
        r.env = dict(w.env)  # the same group member, data directory and port
        r.port, r.log = w.port, w.log
        replacement.append(r.start())
        r.wait_ready()
        killed["ready"] = time.time()

    ctx.progress(f"(f) recovery: kill -9 under {rate:,.0f} events/s, then a replacement")
    killer = threading.Thread(target=kill_and_replace, daemon=True)
    killer.start()
    try:
        probe.send(rate, 120.0, until=lambda: caught_up())
        killer.join(60)
        deadline = time.time() + 60
        while not caught_up() and time.time() < deadline:
            time.sleep(0.1)
        if "ready" not in killed or (not caught_up() and not _still_working(replacement[0])):
            after = [published - sent for sent, published, _ in probe.answered() if sent >= killed.get("at", 0)]
            seen = (f"; {len(after):,} probes answered after the kill, fastest in {min(after) * 1000:.0f} ms"
                    if after else "; no probe answered after the kill")
            raise BenchFailure(f"recovery: the replacement worker did not catch up within 60 s (answers "
                               f"within {bound_ms:.0f} ms){seen}" + (f"; see {replacement[0].log}" if replacement else ""))
        ready = killed["ready"] - killed["at"]
        first = probe.first_answer_within(killed["at"], bound_ms / 1000)
        recovery = None if first is None else first - killed["at"]  # None: overloaded, still working
    finally:
        probe.stop_consumer()
        ctx.worker = replacement[0] if replacement else None
        w.stop()
    ctx.figures["recovery"] = recovery
    state = ctx.expected.state if ctx.expected else {}
    report.add("f", "recovery: kill -9 -> replacement ready", ready, "s",
               f"{ctx.plan.store} store; tables of {len(ctx.data or []):,} events")
    if recovery is None:
        report.add("f", "recovery: kill -9 -> caught up", "not in 60 s", "",
                   f"answers still slower than {bound_ms:.0f} ms while the worker works on")
    else:
        report.add("f", "recovery: kill -9 -> caught up", recovery, "s",
                   f"latency back under {bound_ms:.0f} ms; target <= 10; {state.get('sellers', 0):,} sellers")


# --- (g) memory -----------------------------------------------------------------------------

def section_memory(ctx: Context, report: Any) -> None:
    assert ctx.expected is not None
    state = ctx.expected.state
    rss = ctx.figures.get("rss") or (ctx.worker.peak_rss() if ctx.worker else 0)
    if rss:
        report.add("g", "worker peak RSS", round(rss / 2**20, 1), "MiB",
                   f"after (c) and (e), {len(ctx.data or []):,} events")
    report.add("g", "state bytes per seller ring (median)", state["seller_ring_median"], "B",
               f"max {state['seller_ring_max']} B; target <= 2048")
    report.add("g", "state bytes per seller, all tables (mean)", state["per_seller_all"], "B",
               f"{state['sellers']:,} sellers")
    report.add("g", "state bytes per order held (mean)", state["per_order"], "B",
               f"{state['orders_held']:,} held, {state['orders_in_window']:,} placed in window")


# --- helpers --------------------------------------------------------------------------------

def _spread_note(runs: list[float]) -> str:
    if len(runs) < 2:
        return "1 run"
    m = statistics.median(runs)
    return f"median of {len(runs)}, spread {(max(runs) - min(runs)) / m:.0%}"


def _ratio(ctx: Context, rate: float) -> str:
    return f"; ratio {rate / ctx.figures['a']:.3f} of (a)" if ctx.figures.get("a") else ""


def _vs_b(ctx: Context, rate: float) -> str:
    return f"; {rate / ctx.figures['b']:.2f}x (b), target >= 0.7" if ctx.figures.get("b") else ""


STACK_SECTIONS = ("ceiling", "faust", "worker", "workers", "latency", "startup", "memory")


def run_stack(sections: list[str], quick: bool, report: Any, progress: Callable[[str], None],
              workers: int = 2, store: str = "rocksdb") -> None:
    """Run the requested broker-backed sections, in their fixed order, on one broker."""
    wanted = [s for s in STACK_SECTIONS if s in sections]
    if not wanted:
        return
    plan = Plan.of(quick, workers, store)
    own_broker = None
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    workdir = Path(os.environ.get("WARDEN_BENCH_DIR", ".warden/bench")).resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # logs and data of the last run only
    workdir.mkdir(parents=True)
    try:
        if not servers:
            port = free_port()
            own_broker = start_tansu(port, workdir / "broker.log")
            servers = f"127.0.0.1:{port}"
        ctx = Context(plan, servers, workdir, progress,
                      broker_pid=own_broker.pid if own_broker is not None else None)
        started = time.perf_counter()
        ctx.data, ctx.expected = bench_data.prepare(plan.events, plan.sellers, plan.partitions,
                                                    os.environ.get("WARDEN_POLICY", str(ROOT / "rules" / "policy.yaml")),
                                                    os.environ.get("WARDEN_BENCH_CACHE"), progress)
        report.add("setup", "data set: events", len(ctx.data), "",
                   f"{plan.sellers:,} sellers, Zipf 1.0, {plan.partitions} partitions; "
                   f"prepared in {time.perf_counter() - started:.0f} s")
        try:
            if "ceiling" in wanted or "faust" in wanted:
                prefix = ctx.fresh_prefix()
                if "ceiling" in wanted:
                    section_ceiling(ctx, report, prefix)
                if "faust" in wanted:
                    section_faust(ctx, report, prefix)
            needs_worker = any(s in wanted for s in ("worker", "latency", "startup"))
            if needs_worker:
                section_worker(ctx, report)
            if "latency" in wanted:
                section_latency(ctx, report)
            if "startup" in wanted:
                section_startup(ctx, report)
            if "memory" in wanted:
                section_memory(ctx, report)
            if "workers" in wanted:
                if ctx.worker is not None:  # its store (a RocksDB directory) is (d)'s first worker's
                    ctx.worker.stop()
                    ctx.worker = None
                section_workers(ctx, report)
        finally:
            if ctx.worker is not None:
                ctx.worker.stop()
    except StackError as exc:
        raise BenchFailure(str(exc)) from None
    finally:
        if own_broker is not None:
            stop(own_broker)
