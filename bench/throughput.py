"""(a)-(d) of `warden bench`: the ceiling, a do-nothing Faust agent, Warden end to end, several workers."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.stack import (
    ROOT,
    BenchFailure,
    Context,
    LoopLag,
    Profile,
    WorkerRun,
    cpu_seconds,
    drain,
    ratio,
    spread_note,
    vs_faust,
)
from streams.contract import topics as T

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
    report.add("a", "raw aiokafka consumer (ceiling)", rate, "events/s", spread_note(runs) + "; ratio 1.00")


# --- (b) a do-nothing Faust agent -------------------------------------------------------------

def section_faust(ctx: Context, report: Any, prefix: str) -> None:
    assert ctx.data is not None
    runs, peaks = [], []
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
                raise BenchFailure(
                    f"faust: the do-nothing agent did not drain the topics in 600 s; see {log}") from None
        if not result_path.exists():
            raise BenchFailure(f"faust: the do-nothing agent exited (code {done.returncode}) "
                               f"without a result; see {log}")
        result = json.loads(result_path.read_text())
        runs.append(result["events"] / result["seconds"])
        peaks.append(result.get("peak_rss", 0))
    rate = statistics.median(runs)
    ctx.figures["b"] = rate
    ctx.figures["rss_b"] = statistics.median(peaks)
    report.add("b", "Faust agent doing nothing", rate, "events/s", spread_note(runs) + ratio(ctx, rate))


# --- (c) Warden end to end ----------------------------------------------------------------

def section_worker(ctx: Context, report: Any) -> None:
    assert ctx.data is not None
    runs, readies, worker_cpu, broker_cpu = [], [], [], []
    lags: list[tuple[float, float, int]] = []
    over: list[float] = []  # per run, the share of the loop's wake-ups later than 20 ms
    ready_rss: list[int] = []  # per run, the worker's resident set when ready, before any event
    for r in range(ctx.plan.repeats):
        prefix = ctx.fresh_prefix()
        ctx.progress(f"(c) worker end to end, run {r + 1}/{ctx.plan.repeats}")
        w = WorkerRun(ctx, prefix, "warden", "w1").start()
        try:
            readies.append(w.wait_ready())
            ready_rss.append(w.rss())
            assert w.proc is not None
            cpu0 = cpu_seconds(w.proc.pid), cpu_seconds(ctx.broker_pid)
            watch = LoopLag([w])
            profile = Profile(w.proc.pid, f"worker-c{r + 1}")
            try:
                seconds = drain(ctx, [w], prefix, f"(c) run {r + 1}")
            finally:
                profile.stop()
                lags.append(watch.stop())
                over.append(watch.over_20ms)
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
    ctx.figures["rss_ready"] = statistics.median(ready_rss)
    assert ctx.expected is not None
    outputs = sum(ctx.expected.outputs.values())
    report.add("c", "Warden worker, end to end", rate, "events/s",
               spread_note(runs) + ratio(ctx, rate) + vs_faust(ctx, rate))
    cpu = statistics.median(worker_cpu)
    report.add("c", "worker CPU per event", cpu, "µs",
               "process CPU time / events, ready to drained" + (
                   f"; broker {statistics.median(broker_cpu):.1f} µs" if ctx.own_broker else ""))
    if ctx.figures.get("peer"):
        report.add("c", "ratio to the quix-streams peer", round(rate / ctx.figures["peer"], 3), "x",
                   "events/s, same topics and broker, this run; target >= 1.0")
    # the decision core on the same events, in process: the replay that gives the expected
    # outputs (Avro decoding, the merge's order, the core, the outputs encoded; no broker)
    core = ctx.expected.seconds / len(ctx.data) * 1e6
    ctx.figures["core_replay_us"] = core
    report.add("c", "core replay of the data set, µs per event", round(core, 1), "µs",
               "in process, the same events; " + ("this run" if ctx.expected.fresh else "from the data set cache"))
    report.add("c", "worker CPU / core replay", round(cpu / core, 2), "x",
               "what the worker spends beyond the same events' replay")
    small = report.figures.get("core", {}).get("µs/event, seller with 10 orders in window")
    if small:
        report.add("c", "worker CPU / the core's µs per event", round(cpu / small["value"], 2), "x",
                   "the core section's small seller, this run; target <= 2.5")
    p99 = max(p for p, _, _ in lags)
    peak = max(m for _, m, _ in lags)
    ctx.figures["lag_c"] = peak
    report.add("c", "event-loop lag p99", round(p99 * 1000, 1), "ms",
               f"worst of {len(lags)} run(s), histogram bucket bound; {max(over):.1%} of wake-ups "
               "later than 20 ms; target <= 20")
    report.add("c", "event-loop lag max", round(peak * 1000, 1), "ms", "target <= 100")
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
    note = ratio(ctx, rate)
    if "c" in ctx.figures:
        note += f"; {rate / ctx.figures['c']:.2f}x one worker"
    report.add("d", f"{n} workers sharing the partitions", rate, "events/s", note.lstrip("; "))
