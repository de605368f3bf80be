"""Real worker processes on a real broker, faults injected while a history flows, and the
decision core replaying the same history without a broker as the oracle.

A trial: a deterministic marketplace history is produced day by day (in timestamp order,
keyed by seller, by an ordinary librdkafka producer: its default batching, many records a
batch, the workers reading meanwhile) while `warden worker` processes share the partitions; faults (a worker
joining or leaving, kill -9, SIGSTOP past the session timeout then SIGCONT) land at
random moments drawn from the trial's seed. When the history is in and every worker has
caught up, the enforcement topic is read back and compared, as distinct records, with
what the core decides for the same history.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from agents.pipeline import partition_for
from rules.effects import DecideAction
from rules.policy import load_policy
from schemas.codec import Codec
from simulator.marketplace import DAY, HOUR, PROFILES, Marketplace, Profile
from stack.embedded import free_port, start_worker, stop, wait_healthy
from streams.contract import topics as T
from tables.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
RANK = {t: i for i, t in enumerate(T.INPUT_TOPICS)}
codec = Codec()
Event = tuple[int, str, dict[str, Any]]
EVENT_FIELDS = ("action_id", "action", "status", "seller_id", "metric", "numerator", "denominator",
                "decided_at")
WALL_FIELDS = ("action_id", "action", "status")


# A seller who does everything right: every order handed to the carrier well before ship_by,
# nothing cancelled, refunded or badly rated. Any action against one is a wrong decision.
RELIABLE = Profile("reliable", 20, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
TROUBLED = (PROFILES["slow_shipper"], PROFILES["canceller"], PROFILES["flawed_items"],
            PROFILES["counterfeit_ring"])


def history(seed: int, sellers: int, days: int, end_ms: int) -> list[Event]:
    """`days` days of a simulated marketplace ending at `end_ms`, in timestamp order: a
    quarter of the sellers reliable, the rest late shippers, cancellers, flawed-item sellers
    and counterfeit rings."""
    market = Marketplace(seed, sellers, end_ms - days * DAY)
    for i, seller in enumerate(market.sellers):
        profile = RELIABLE if i % 4 == 0 else TROUBLED[i % len(TROUBLED)]
        seller.profile = profile
        seller.seller_id = f"seller-{i:05d}-{profile.name}"
    return [(ts, name, dict(record)) for ts, name, record in market.events(end_ms)]


def oracle(events: list[Event], partitions: int, clock: str = "event",
           final_now: int | None = None) -> list[dict[str, Any]]:
    """The enforcement records the core publishes for `events`, fed in the worker's order:
    per partition, by (timestamp, topic), ties in production order. `final_now`: time
    passes to that instant afterwards (a tick on every partition), as a wall clock does."""
    engine = Engine(load_policy(str(ROOT / "rules" / "policy.yaml")), clock="event",
                    partition_of=lambda s: partition_for(s.encode(), partitions))
    order = sorted(range(len(events)), key=lambda i: (events[i][0], RANK[T.RECORD_TOPIC[events[i][1]]], i))
    out: list[dict[str, Any]] = []
    for i in order:
        _, name, record = events[i]
        partition = partition_for(record["seller_id"].encode(), partitions)
        effects = engine.process(partition, name, dict(record))
        out.extend(e.record for e in effects if isinstance(e, DecideAction))
    if final_now is not None:
        for p in range(partitions):
            out.extend(e.record for e in engine.tick(p, final_now) if isinstance(e, DecideAction))
    return out


def keyed(records: list[dict[str, Any]], fields: tuple[str, ...]) -> set[tuple[Any, ...]]:
    return {tuple(r[f] for f in fields) for r in records}


@dataclass
class Process:
    """One `warden worker` of the cluster."""

    name: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    stopped: bool = False  # SIGSTOPped

    @property
    def port(self) -> int:
        return int(self.env["WARDEN_WEB_PORT"])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Tally:
    kills: int = 0
    joins: int = 0
    leaves: int = 0
    pauses: int = 0
    restarts: int = 0
    notes: list[str] = field(default_factory=list)


class Cluster:
    """Workers sharing one topic prefix (one consumer group) on one broker."""

    def __init__(self, broker: str, tmp: Path, partitions: int = 4, clock: str = "event",
                 **env: str) -> None:
        self.broker = broker
        self.tmp = tmp
        self.prefix = f"c{uuid.uuid4().hex[:10]}."
        self.partitions = partitions
        self.base_env = dict(os.environ)
        self.base_env.update(
            KAFKA_BOOTSTRAP_SERVERS=broker, WARDEN_TOPIC_PREFIX=self.prefix, WARDEN_CLOCK=clock,
            WARDEN_PARTITIONS=str(partitions), WARDEN_POLICY=str(ROOT / "rules" / "policy.yaml"),
            WARDEN_LOG_LEVEL="info", WARDEN_TICK_INTERVAL="0.5", PYTHONPATH=str(ROOT),
            WARDEN_TRACE_DECISIONS="1",  # a line per decision in the logs: from what it was made
            # The oracle replays the history in timestamp order. The producer sends each day in
            # that order, but batches each partition on its own, and the broker may append a
            # record after one sent later (in one trial, a cancellation was appended after orders
            # 28 minutes of history younger, and a worker released them first): the workers
            # wait that long for such records (README, "Processing order")
            WARDEN_ARRIVAL_GRACE_MS="250",
            # Tansu's ListOffsets can answer short of the log end, which Faust's recovery
            # check takes for a store ahead of its changelog (README: Production)
            WARDEN_RECOVERY_CHECK="on" if os.environ.get("WARDEN_TEST_BROKER") == "external" else "off",
            WARDEN_AUTH_SECRET="warden-chaos-" + "k" * 40,
        )
        self.base_env.update(env)
        self.workers: dict[str, Process] = {}
        self.tally = Tally()
        self.lock = threading.RLock()
        # (topic, partition) -> the end of the log as the deliveries reported it
        self.input_ends: dict[tuple[str, int], int] = {}

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def ensure_topics(self) -> None:
        """Create the topics as a worker would (to publish before any worker has started)."""
        from streams.admin import ensure_topics
        from streams.contract.settings import load_settings

        ensure_topics(load_settings(self.base_env))

    def add(self, name: str, wait: bool = True) -> Process:
        env = dict(self.base_env)
        env.update(WARDEN_WEB_PORT=str(free_port()), WARDEN_DATA_DIR=str(self.tmp / f"data-{name}"))
        w = Process(name, env, self.tmp / f"{name}.log")
        self.workers[name] = w
        self.start(w, wait)
        return w

    def start(self, w: Process, wait: bool = True) -> None:
        with open(w.log, "ab") as fh:
            fh.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
        w.env["WARDEN_WEB_PORT"] = str(free_port())
        w.proc = start_worker(w.env, w.log)
        w.stopped = False
        if wait:
            wait_healthy(w.port, w.proc, timeout=90, log_path=w.log)

    def kill(self, w: Process) -> None:
        with self.lock:
            if w.proc is not None:
                if w.stopped:
                    os.killpg(w.proc.pid, signal.SIGCONT)
                w.proc.kill()
                w.proc.wait()
                self.tally.kills += 1

    def pause(self, w: Process, seconds: float) -> None:
        """SIGSTOP the worker for `seconds` (past its session: its partitions move), then SIGCONT."""
        assert w.proc is not None
        os.killpg(w.proc.pid, signal.SIGSTOP)
        w.stopped = True
        time.sleep(seconds)
        with self.lock:
            if w.alive():
                os.killpg(w.proc.pid, signal.SIGCONT)
            w.stopped = False
        self.tally.pauses += 1

    def leave(self, w: Process) -> None:
        if w.proc is not None:
            stop(w.proc, timeout=20)
        self.tally.leaves += 1

    def stop_all(self) -> None:
        for w in self.workers.values():
            if w.proc is not None:
                if w.stopped:
                    os.killpg(w.proc.pid, signal.SIGCONT)
                stop(w.proc, timeout=10)

    def metric(self, w: Process, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=3) as r:
                text = r.read().decode()
        except OSError:
            return 0.0
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    def rebalances(self) -> int:
        """Rebalances seen in the workers' logs (each member logs every generation it joins)."""
        gens: set[str] = set()
        for w in self.workers.values():
            if w.log.exists():
                for line in w.log.read_text(errors="replace").splitlines():
                    if "generation id " in line and "app consumers id" in line:
                        gens.add(line.split("generation id ")[1].split()[0])
        return len(gens)

    def logs_contain(self, text: str) -> list[str]:
        return [w.name for w in self.workers.values()
                if w.log.exists() and text in w.log.read_text(errors="replace")]

    # --- input and output ------------------------------------------------------------------

    def producer(self) -> Producer:
        """A producer as upstream services have one: librdkafka's defaults (batching, linger)."""
        return Producer({"bootstrap.servers": self.broker, "partitioner": "murmur2_random"})

    def produce(self, p: Producer, events: list[Event]) -> None:
        ends = self.input_ends

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                raise AssertionError(f"not delivered: {err}")
            key = (msg.topic(), msg.partition())
            ends[key] = max(ends.get(key, 0), msg.offset() + 1)

        for event in events:
            key = (self.topic(T.RECORD_TOPIC[event[1]]), partition_for(event[2]["seller_id"].encode(),
                                                                        self.partitions))
            self._send(p, key, event, delivered)
        p.flush(60)

    def _send(self, p: Producer, key: tuple[str, int], event: Event, delivered: Any) -> None:
        ts, name, record = event
        while True:
            try:
                p.produce(key[0], key=record["seller_id"].encode(), value=codec.encode(name, record),
                          partition=key[1], timestamp=ts, on_delivery=delivered)
                return
            except BufferError:
                p.poll(0.05)

    def group_lag(self) -> int:
        """Input records not yet committed by the workers' group."""
        c = Consumer({"bootstrap.servers": self.broker, "group.id": f"{self.prefix}warden",
                      "enable.auto.commit": False})
        try:
            tps = [TopicPartition(self.topic(t), p) for t in T.INPUT_TOPICS for p in range(self.partitions)]
            committed = c.committed(tps, timeout=10)
            return sum(max(0, self.input_ends.get((tp.topic, tp.partition), 0) - max(tp.offset, 0))
                       for tp in committed)
        finally:
            c.close()

    def read(self, name: str, quiet_s: float = 3.0) -> list[dict[str, Any]]:
        """Every record of an output topic, decoded, in each partition's order: read until
        nothing more comes for `quiet_s` (a broker's reported end may fall short). Each
        record's place and produce time are written to `<tmp>/<topic>.jsonl` (to tell,
        after a mismatch, which worker published what, and when)."""
        topic = self.topic(name)
        c = Consumer({"bootstrap.servers": self.broker, "group.id": f"read-{uuid.uuid4().hex}",
                      "enable.auto.commit": False})
        try:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
            out: list[dict[str, Any]] = []
            places: list[dict[str, Any]] = []
            last = time.monotonic()
            while time.monotonic() - last < quiet_s:
                msg = c.poll(0.2)
                if msg is None or msg.error():
                    continue
                last = time.monotonic()
                out.append(codec.decode(msg.value())[1])
                places.append({"partition": msg.partition(), "offset": msg.offset(),
                               "produced": msg.timestamp()[1], "record": out[-1]})
            with open(self.tmp / f"{name}.jsonl", "w") as fh:
                for place in places:
                    fh.write(json.dumps(place, default=str) + "\n")
            return out
        finally:
            c.close()

    def settle(self, quiet_s: float = 6.0, timeout: float = 240.0) -> None:
        """Wait until the group has committed every input record and outputs stop coming."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            lag = self.group_lag()
            n = sum(self.metric(w, "warden_enforcements_total") for w in self.workers.values() if w.alive())
            if n != last:
                last, since = n, time.monotonic()
            if lag == 0 and time.monotonic() - since >= quiet_s:
                return
            time.sleep(1.0)
        raise AssertionError(f"the workers did not catch up within {timeout:.0f} s (lag {self.group_lag()})")


@dataclass
class Outcome:
    published: list[dict[str, Any]]
    expected: list[dict[str, Any]]
    fields: tuple[str, ...]
    tally: Tally
    rebalances: int
    seconds: float

    @property
    def missing(self) -> set[tuple[Any, ...]]:
        return keyed(self.expected, self.fields) - keyed(self.published, self.fields)

    @property
    def extra(self) -> set[tuple[Any, ...]]:
        return keyed(self.published, self.fields) - keyed(self.expected, self.fields)

    @property
    def reissued(self) -> list[str]:
        """(action_id, status) published with different contents (an id re-issued)."""
        seen: dict[tuple[str, str], tuple[Any, ...]] = {}
        bad = []
        for r in self.published:
            k = (r["action_id"], r["status"])
            v = tuple(r[f] for f in EVENT_FIELDS)
            if k in seen and seen[k] != v:
                bad.append(r["action_id"])
            seen[k] = v
        return bad

    @property
    def reliable_actions(self) -> list[dict[str, Any]]:
        return [r for r in self.published if "-reliable" in r["seller_id"]]

    @property
    def mismatches(self) -> int:
        return len(self.missing) + len(self.extra)

    def describe(self) -> str:
        expected, published = keyed(self.expected, self.fields), keyed(self.published, self.fields)
        lines = [f"{len(expected)} expected, {len(published)} "
                 f"published, {len(self.missing)} missing, {len(self.extra)} extra"]
        for k in sorted(self.missing, key=str)[:10]:
            lines.append(f"  missing {k}")
        for k in sorted(self.extra, key=str)[:10]:
            lines.append(f"  extra   {k}")
        return "\n".join(lines)


Fault = Callable[[Cluster, random.Random], None]


def run_trial(cluster: Cluster, events: list[Event], *, seed: int, day_pause_s: float = 1.5,
              faults: list[tuple[float, Fault]] = (), initial: int = 1,
              fields: tuple[str, ...] = EVENT_FIELDS,
              final_now: int | None = None, progress: Callable[[str], None] = print,
              all_at_once: bool = False) -> Outcome:
    """Produce `events` day by day while `faults` (each at a fraction of the production
    time) happen; wait for the workers; compare with the core's replay."""
    started = time.monotonic()
    rng = random.Random(seed)
    p = cluster.producer()
    if all_at_once:
        # A backlog: the whole history is on the broker before any worker starts, so every
        # worker meets it behind (a restart, a backfill); a worker live before it arrived
        # would rightly judge it at today's time, as late data.
        cluster.ensure_topics()
        cluster.produce(p, events)
    for i in range(initial):
        cluster.add(f"w{i}")
    days: dict[int, list[Event]] = {}
    for e in events:
        days.setdefault(e[0] // DAY, []).append(e)
    total = len(days) * day_pause_s
    pending = sorted(faults, key=lambda f: f[0])
    threads: list[threading.Thread] = []
    t0 = time.monotonic()

    def due_faults() -> None:
        while pending and (time.monotonic() - t0) >= pending[0][0] * total:
            _, fault = pending.pop(0)
            t = threading.Thread(target=fault, args=(cluster, random.Random(rng.random())), daemon=True)
            t.start()
            threads.append(t)

    for n, day in enumerate(sorted(days)):
        if not all_at_once:
            cluster.produce(p, days[day])
        end = t0 + (n + 1) * day_pause_s
        while time.monotonic() < end:
            due_faults()
            time.sleep(0.05)
        sent = sum(len(days[d]) for d in sorted(days)[:n + 1])
        progress(f"  day {n + 1}/{len(days)} in ({sent:,} events); "
                 f"kills {cluster.tally.kills}, joins {cluster.tally.joins}")
    while pending:
        due_faults()
        time.sleep(0.1)
    for t in threads:
        t.join(timeout=180)
    # every worker that should be up is up again
    for w in cluster.workers.values():
        if w.stopped and w.proc is not None:
            os.killpg(w.proc.pid, signal.SIGCONT)
            w.stopped = False
    if not any(w.alive() for w in cluster.workers.values()):
        cluster.start(next(iter(cluster.workers.values())))
    cluster.settle()
    published = cluster.read(T.ENFORCEMENTS)
    if cluster.base_env["WARDEN_CLOCK"] == "wall" and final_now is None:
        final_now = int(time.time() * 1000)  # the workers' clocks have passed the history's end
        fields = WALL_FIELDS
    expected = oracle(events, cluster.partitions, final_now=final_now)
    return Outcome(published, expected, fields, cluster.tally, cluster.rebalances(),
                   time.monotonic() - started)


# --- faults --------------------------------------------------------------------------------

def join(name: str) -> Fault:
    def fault(cluster: Cluster, rng: random.Random) -> None:
        cluster.add(name, wait=False)
        cluster.tally.joins += 1
    return fault


def leave(name: str) -> Fault:
    def fault(cluster: Cluster, rng: random.Random) -> None:
        cluster.leave(cluster.workers[name])
    return fault


def kill_restart(names: list[str] | None = None, down_s: tuple[float, float] = (0.0, 1.0)) -> Fault:
    """kill -9 a running worker (one of `names`, chosen at random) and start it again."""
    def fault(cluster: Cluster, rng: random.Random) -> None:
        with cluster.lock:
            candidates = [w for w in cluster.workers.values()
                          if w.alive() and not w.stopped and (names is None or w.name in names)]
            if not candidates:
                return
            w = rng.choice(candidates)
            cluster.kill(w)
        time.sleep(rng.uniform(*down_s))
        cluster.start(w, wait=False)
        cluster.tally.restarts += 1
    return fault


def kill_alternating(names: list[str]) -> Fault:
    """kill -9 the next of `names` in turn (the one killed longest ago) and start it again at once."""
    turn = {"next": 0}

    def fault(cluster: Cluster, rng: random.Random) -> None:
        with cluster.lock:
            w = cluster.workers[names[turn["next"] % len(names)]]
            turn["next"] += 1
            if not w.alive() or w.stopped:
                return
            cluster.kill(w)
        cluster.start(w, wait=False)
        cluster.tally.restarts += 1
    return fault


def pause(name: str, seconds: float) -> Fault:
    def fault(cluster: Cluster, rng: random.Random) -> None:
        w = cluster.workers.get(name)
        if w is not None and w.alive():
            cluster.pause(w, seconds)
    return fault


def end_of_history(days: int) -> int:
    """A history that ends at the start of the current hour (so a wall clock is just past it)."""
    return int(time.time() * 1000) // HOUR * HOUR
