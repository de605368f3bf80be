"""The broker-backed sections of `warden bench`, (a)-(g), run in a fixed order on one broker."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import data as bench_data
from bench.latency import section_latency
from bench.peer import section_peer
from bench.recovery import section_memory, section_startup
from bench.stack import (
    ROOT,
    BenchFailure,
    Context,
    Plan,
)
from bench.throughput import section_ceiling, section_faust, section_worker, section_workers
from stack.embedded import StackError, free_port, start_tansu, stop

STACK_SECTIONS = ("ceiling", "faust", "peer", "worker", "workers", "latency", "startup", "memory")


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
                                                    os.environ.get("WARDEN_POLICY",
                                                                   str(ROOT / "rules" / "policy.yaml")),
                                                    os.environ.get("WARDEN_BENCH_CACHE"), progress)
        report.add("setup", "data set: events", len(ctx.data), "",
                   f"{plan.sellers:,} sellers, Zipf 1.0, {plan.partitions} partitions; "
                   f"prepared in {time.perf_counter() - started:.0f} s")
        try:
            if "ceiling" in wanted or "faust" in wanted or "peer" in wanted:
                prefix = ctx.fresh_prefix()
                if "ceiling" in wanted:
                    section_ceiling(ctx, report, prefix)
                if "faust" in wanted:
                    section_faust(ctx, report, prefix)
                if "peer" in wanted:
                    section_peer(ctx, report, prefix)
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
