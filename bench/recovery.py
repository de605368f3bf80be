"""(f) and (g) of `warden bench`: start-up, recovery after kill -9, memory."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

from bench.latency import Probe
from bench.stack import (
    BenchFailure,
    Context,
    WorkerRun,
    still_working,
)
from streams.contract.settings import load_settings

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


def broker_holds(ctx: Context, prefix: str) -> float:
    """Seconds from kill -9 of a bare group member (bench.bare_member: an aiokafka consumer
    with the worker's group settings and instance id, nothing else) to its replacement's
    assignment: what the broker holds any replacement for, measured in this run."""
    import os
    import signal
    import subprocess
    import sys

    from bench.stack import ROOT
    from stack.embedded import spawn

    result = ctx.workdir / f"bare-{uuid.uuid4().hex[:6]}.txt"
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=ctx.servers, WARDEN_BARE_TOPIC=prefix + "marketplace.orders",
               WARDEN_BARE_GROUP=f"bare{uuid.uuid4().hex[:6]}", WARDEN_INSTANCE_ID="bare-1",
               WARDEN_BARE_RESULT=str(result),
               PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p))

    def assignments() -> list[float]:
        return [float(line) for line in result.read_text().split()] if result.exists() else []

    def start() -> subprocess.Popen[bytes]:
        return spawn([sys.executable, "-m", "bench.bare_member"], ctx.workdir / "bare-member.log", env=env)

    def wait_for(count: int, timeout: float = 60.0) -> float:
        deadline = time.time() + timeout
        while len(assignments()) < count:
            if time.time() > deadline:
                raise BenchFailure(f"(f) the bare member was not assigned within {timeout:.0f} s; "
                                   f"see {ctx.workdir / 'bare-member.log'}")
            time.sleep(0.05)
        return assignments()[count - 1]

    first = start()
    second = None
    try:
        wait_for(1)
        time.sleep(2.0)  # heartbeating, as the worker before its kill
        killed_at = time.time()
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        second = start()
        return wait_for(2) - killed_at
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


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
        killed["spawned"] = time.time()
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
        if "ready" not in killed or (not caught_up() and not still_working(replacement[0])):
            after = [published - sent for sent, published, _ in probe.answered() if sent >= killed.get("at", 0)]
            seen = (f"; {len(after):,} probes answered after the kill, fastest in {min(after) * 1000:.0f} ms"
                    if after else "; no probe answered after the kill")
            raise BenchFailure(f"recovery: the replacement worker did not catch up within 60 s (answers "
                               f"within {bound_ms:.0f} ms){seen}"
                               + (f"; see {replacement[0].log}" if replacement else ""))
        ready = killed["ready"] - killed["at"]
        first = probe.first_answer_within(killed["at"], bound_ms / 1000)
        recovery = None if first is None else first - killed["at"]  # None: overloaded, still working
        phases = replacement[0].labelled_samples("warden_startup_phase_seconds")
        handled = replacement[0].first_event_at()
        timeline = answers_after(probe, killed["at"])
    finally:
        probe.stop_consumer()
        ctx.worker = replacement[0] if replacement else None
        w.stop()
    if recovery is not None:
        ctx.figures["recovery"] = recovery
    state = ctx.expected.state if ctx.expected else {}
    report.add("f", "recovery: kill -9 -> replacement ready", ready, "s",
               f"{ctx.plan.store} store; tables of {len(ctx.data or []):,} events")
    if "spawned" in killed:
        report.add("f", "recovery phase: kill -9 -> process started", round(killed["spawned"] - killed["at"], 2), "s",
                   "the killed process reaped and the replacement's process made")
    for phase in ("join", "open", "restore", "tables", "timers"):
        value = phases.get(f'{{phase="{phase}"}}')
        if value is not None:
            report.add("f", f"recovery phase: {phase}", round(value, 2), "s", PHASES[phase])
    if handled is not None:
        report.add("f", "recovery: kill -9 -> first record handled", round(handled - killed["at"], 2), "s",
                   "the replacement's first input record (its events counter created)")
    report.add("f", "recovery: answers by send time after the kill", timeline, "", "seconds after: p50 latency")
    if recovery is None:
        report.add("f", "recovery: kill -9 -> caught up", "not in 60 s", "",
                   f"answers still slower than {bound_ms:.0f} ms while the worker works on")
    else:
        report.add("f", "recovery: kill -9 -> caught up", recovery, "s",
                   f"latency back under {bound_ms:.0f} ms; {state.get('sellers', 0):,} sellers")
    holds = broker_holds(ctx, ctx.worker.prefix if ctx.worker is not None else w.prefix)
    report.add("f", "broker holds: a bare member killed -> its replacement assigned", round(holds, 2), "s",
               "the same group settings and instance id, nothing else (bench.bare_member), this run")
    if recovery is not None:
        report.add("f", "recovery: caught up - broker holds", round(recovery - holds, 2), "s", "target <= 8")


PHASES = {
    "join": "replacement's process start -> partitions assigned (the broker's holds included)",
    "open": "the local stores' databases opened while the join waits (within join)",
    "restore": "assigned -> the tables' changelog tails read",
    "tables": "the stores bound after the assignment (nothing read: a cache over the databases)",
    "timers": "the deadline heaps rebuilt",
}


def answers_after(probe: Probe, since: float, step: float = 5.0) -> str:
    """The probes sent after `since`, by when they were sent (per `step` s): p50 latency."""
    bins: dict[int, list[float]] = {}
    for sent, published, _ in probe.answered():
        if sent >= since:
            bins.setdefault(int((sent - since) // step), []).append((published - sent) * 1000)
    return ", ".join(f"{int(b * step)}-{int((b + 1) * step)}: {statistics.median(v):.0f} ms"
                     for b, v in sorted(bins.items())[:12]) or "none answered"


# --- (g) memory -----------------------------------------------------------------------------

def section_memory(ctx: Context, report: Any) -> None:
    assert ctx.expected is not None
    state = ctx.expected.state
    rss = ctx.figures.get("rss") or (ctx.worker.peak_rss() if ctx.worker else 0)
    if rss:
        report.add("g", "worker peak RSS", round(rss / 2**20, 1), "MiB",
                   f"after (c) and (e), {len(ctx.data or []):,} events; target <= 300 at 1M")
    # the same stack's own floors, in this run: the worker before its first event, and the
    # peak of a Faust agent doing nothing and of the quix-streams peer over the same events
    floors = (("rss_ready", "worker RSS when ready, before any event", ""),
              ("rss_b", "(b) Faust doing nothing, peak RSS", "what the worker takes beyond its stack alone"),
              ("rss_peer", "quix-streams peer, peak RSS", "against a peer keeping far less state"))
    for key, name, _ in floors:
        if ctx.figures.get(key):
            report.add("g", name, round(ctx.figures[key] / 2**20, 1), "MiB", "same events, this run")
    for key, name, meaning in floors[1:]:
        if rss and ctx.figures.get(key):
            report.add("g", f"worker peak RSS / {name.split(',')[0]}", round(rss / ctx.figures[key], 2), "x",
                       meaning)
    report.add("g", "state bytes per seller ring (median)", state["seller_ring_median"], "B",
               f"max {state['seller_ring_max']} B; target <= 2048")
    report.add("g", "state bytes per seller, all tables (mean)", state["per_seller_all"], "B",
               f"{state['sellers']:,} sellers")
    report.add("g", "state bytes per order held (mean)", state["per_order"], "B",
               f"{state['orders_held']:,} held, {state['orders_in_window']:,} placed in window")
