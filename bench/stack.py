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

import os
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench import data as bench_data
from bench.rss import rss_bytes
from stack.embedded import free_port, spawn, stop, wait_healthy
from streams.contract import topics as T
from streams.contract.settings import load_settings

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
    def of(cls, quick: bool, workers: int, store: str) -> Plan:
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
    auth_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))  # the run's workers' sign-in key
    figures: dict[str, float] = field(default_factory=dict)
    worker: WorkerRun | None = None  # the caught-up worker of (c), used by (e), (f), (g)
    loaded: list[str] = field(default_factory=list)
    broker_pid: int | None = None  # an embedded Tansu's (see WARDEN_RECOVERY_CHECK); its CPU is reported
    probe_next: tuple[int, int] = (0, 0)  # the next probe's event time (ms) and number (bench.latency.Probe)

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
            WARDEN_AUTH_SECRET=os.environ.get("WARDEN_AUTH_SECRET") or ctx.auth_secret,
            PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p),
        )
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.ready_seconds = 0.0
        self._scraped = (-1.0, "")  # (when, the /metrics text)

    def start(self) -> WorkerRun:
        self.started = time.monotonic()
        self.proc = spawn([sys.executable, "-m", "cli", "worker"], self.log, env=self.env)
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

    def scrape(self, fresh_s: float = 0.5) -> str:
        """The worker's /metrics text, read at most once per `fresh_s` (a scrape costs the
        worker 10-30 ms of its loop at 1M events: the bench's polling must not be what it
        measures; Prometheus scrapes every 15 s); empty if the worker does not answer."""
        now = time.monotonic()
        if now - self._scraped[0] < fresh_s:
            return self._scraped[1]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            text = ""
        self._scraped = (time.monotonic(), text)
        return text

    def labelled_samples(self, name: str) -> dict[str, float]:
        """A Prometheus metric's samples by their labels as written (`{topic="t"}`, or ``)."""
        text = self.scrape()
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
        return rss_bytes(self.proc.pid)

    def rss(self) -> int:
        """The process's resident set size now, in bytes."""
        assert self.proc is not None
        return rss_bytes(self.proc.pid, "VmRSS")

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
                t = topics[m.topic() or ""]
                raw[t] = raw.get(t, 0) + 1
                seen.setdefault(t, set()).add(hash((m.key(), m.value())))
        return {t: (raw[t], len(seen[t])) for t in raw}
    finally:
        consumer.close()


POLL_S = 1.0  # how often the bench reads a worker's progress and peak lag off /metrics


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
            ctx.progress(f"{label}: {int(handled):,} of {want_events:,} events, "
                         f"{int(out):,} of {want_outputs:,} outputs")
        elif now - last_change > 20:
            elapsed = now - start
            break
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise BenchFailure(f"{label}: a worker exited (code {w.proc.returncode}); see {w.log}")
        time.sleep(POLL_S)
    ctx.progress(f"{label}: reading the output topics to check them")
    counted = read_outputs(ctx.servers, prefix, ctx.plan.partitions)
    problems = ctx.expected.check({t: distinct for t, (_, distinct) in counted.items()})
    if problems:
        raise BenchFailure(f"{label}: output count check FAILED (distinct records): " + "; ".join(problems))
    return elapsed


class LoopLag:
    """The worker's event-loop lag over a stretch of a run: p99 and max. The p99 is read
    off the `warden_event_loop_lag_seconds` histogram (its change over the stretch; the
    upper bound of the bucket it falls in), the max off `warden_event_loop_lag_max_seconds`
    (a windowed peak) sampled every POLL_S by a thread, kept within the stretch's highest
    non-empty bucket (a peak from before the stretch can still be held in the gauge)."""

    HISTOGRAM = "warden_event_loop_lag_seconds_bucket"

    def __init__(self, workers: list[WorkerRun]) -> None:
        import threading

        self.workers = workers
        self.before = self._buckets()
        self.peak = 0.0
        self.over_20ms = float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _buckets(self) -> dict[float, float]:
        out: dict[float, float] = {}
        for w in self.workers:
            for labels, value in w.labelled_samples(self.HISTOGRAM).items():
                bound = labels.split('le="', 1)[1].split('"', 1)[0]
                le = float("inf") if bound == "+Inf" else float(bound)
                out[le] = out.get(le, 0.0) + value
        return out

    def _sample(self) -> None:
        while not self._stop.wait(POLL_S):
            for w in self.workers:
                self.peak = max(self.peak, w.metric("warden_event_loop_lag_max_seconds"))

    def stop(self) -> tuple[float, float, int]:
        """(p99, max, samples) over the stretch, in seconds."""
        self._stop.set()
        self._thread.join(5)
        after = self._buckets()
        delta = sorted((le, after.get(le, 0.0) - self.before.get(le, 0.0)) for le in after)
        total = delta[-1][1] if delta else 0.0
        if total <= 0:
            return float("nan"), float("nan"), 0
        within = next((cumulative for le, cumulative in delta if le == 0.02), total)
        self.over_20ms = 1 - within / total  # the share of wake-ups later than 20 ms
        p99 = next(le for le, cumulative in delta if cumulative >= 0.99 * total)
        top = next(le for le, cumulative in delta if cumulative >= total)
        below = max([le for le, _ in delta if le < top], default=0.0)
        peak = min(max(self.peak, below), top)
        return p99, peak, int(total)


def lag_note(lag: tuple[float, float, int]) -> str:
    p99, peak, samples = lag
    return f"loop lag p99 <= {p99 * 1000:.0f} ms, max {peak * 1000:.0f} ms ({samples:,} samples)"


def still_working(worker: WorkerRun) -> bool:
    """Whether the worker is still handling records (its events counter grows over 3 s)."""
    before = worker.metric("warden_events_total")
    time.sleep(3)
    return worker.metric("warden_events_total") > before


class Profile:
    """WARDEN_BENCH_PROFILE=DIR: py-spy samples a worker from `start` to `stop` (its stacks,
    collapsed, in DIR/NAME.txt); nothing otherwise. For finding where the CPU goes."""

    def __init__(self, pid: int | None, name: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        where = os.environ.get("WARDEN_BENCH_PROFILE")
        if not where or pid is None:
            return
        Path(where).mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).parent / "py-spy"
        self.proc = subprocess.Popen([str(spy), "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                                      "--output", str(Path(where) / f"{name}.txt"), "--nonblocking"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        import signal

        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)
            self.proc = None


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


class CpuShare:
    """The cores each of some processes used over a stretch: CPU seconds over wall seconds
    (0 for a process not known)."""

    def __init__(self, *pids: int | None) -> None:
        self.pids = pids
        self.before = [cpu_seconds(pid) for pid in pids]
        self.started = time.monotonic()

    def stop(self) -> list[float]:
        seconds = max(time.monotonic() - self.started, 1e-9)
        return [(cpu_seconds(pid) - before) / seconds for pid, before in zip(self.pids, self.before, strict=True)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- helpers --------------------------------------------------------------------------------

def spread_note(runs: list[float]) -> str:
    if len(runs) < 2:
        return "1 run"
    m = statistics.median(runs)
    return f"median of {len(runs)}, spread {(max(runs) - min(runs)) / m:.0%}"


def ratio(ctx: Context, rate: float) -> str:
    return f"; ratio {rate / ctx.figures['a']:.3f} of (a)" if ctx.figures.get("a") else ""


def vs_faust(ctx: Context, rate: float) -> str:
    note = f"; {rate / ctx.figures['b']:.2f}x (b), target >= 0.7" if ctx.figures.get("b") else ""
    if ctx.figures.get("peer"):
        note += f"; {rate / ctx.figures['peer']:.2f}x the quix-streams peer, target >= 1.0"
    return note
