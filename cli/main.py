"""The `warden` command: up, down, worker, simulate, run, bench."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from stack.embedded import (
    StackError,
    StackState,
    alive,
    free_port,
    port_free,
    port_open,
    redis_answers,
    start_redis,
    start_tansu,
    start_worker,
    stop,
    wait_healthy,
)
from streams.settings import ConfigError, Settings, load_settings

STATE_DIR = Path(".warden")
FAUST_LEVELS = {"debug": "debug", "info": "info", "warning": "warn", "error": "error", "critical": "crit"}


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def _settings() -> Settings:
    return load_settings()


def _check_policy(settings: Settings) -> None:
    from rules.policy import load_policy

    load_policy(settings.policy_path)


def _broker_reachable(servers: str) -> bool:
    for server in servers.split(","):
        host, _, port = server.rpartition(":")
        if port_open(host, int(port), timeout=1.0):
            return True
    return False


# --- worker -------------------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings()
    _check_policy(settings)
    if not _broker_reachable(settings.kafka_bootstrap_servers):
        raise UserError(f"no Kafka broker answers at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}")
    if not port_free(settings.web_port):
        raise UserError(f"WARDEN_WEB_PORT={settings.web_port} is in use: set another port")
    Path(settings.app_data_dir).mkdir(parents=True, exist_ok=True)
    from streams.admin import TopicLayoutError, ensure_topics

    try:
        ensure_topics(settings)
    except TopicLayoutError as exc:
        raise UserError(str(exc)) from None
    import asyncio

    import uvloop

    # before anything creates a loop: Faust's --loop option comes too late once the worker
    # (built below) has made asyncio objects
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from agents.worker import build_worker

    worker = build_worker(settings)

    # The tables hold millions of long-lived objects: with CPython's default thresholds the
    # cyclic collector scans them again and again (a fifth of the decision core's time at
    # 300,000 events, growing with the state). Collect the young generation every 20,000
    # allocations, not 700; what the tables recover is frozen out of collection
    # (agents.process_events).
    gc.set_threshold(20_000, 20, 20)
    if settings.log_level != "debug":
        # Faust and aiokafka log debug lines per message; under the root's level they cost
        # a LogRecord each (12 % of a busy worker). Below the configured level: off.
        logging.disable(logging.DEBUG)
    sys.argv = ["warden", "--loop", "uvloop", "worker", "--loglevel", FAUST_LEVELS[settings.log_level],
                "--without-web" if args.without_web else "--with-web"]
    worker.app.main()
    return 0


# --- up / down ----------------------------------------------------------------------------

def _redis_port(url: str) -> int:
    return urlparse(url).port or 6379


def start_stack(settings: Settings, broker_port: int, state_dir: Path,
                announce: Callable[[str], None]) -> tuple[dict[str, subprocess.Popen[bytes]], dict[str, str], float]:
    """Start broker, Redis (only if none answers) and the worker; return them, the env, ready time."""
    t0 = time.monotonic()
    _check_policy(settings)
    if not port_free(settings.web_port):
        raise UserError(f"WARDEN_WEB_PORT={settings.web_port} is in use: stop what holds it or set another port")
    state_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        port = broker_port or free_port()
        procs["broker"] = start_tansu(port, state_dir / "broker.log")
        announce(f"broker   Tansu on 127.0.0.1:{port} (memory storage)")
        redis_url = settings.redis_url
        if redis_answers(redis_url):
            announce(f"redis    using the Redis at {redis_url}")
        else:
            rport = _redis_port(redis_url)
            if not port_free(rport):
                rport = free_port()
            procs["redis"] = start_redis(rport, state_dir / "redis.log")
            redis_url = f"redis://127.0.0.1:{rport}/0"
            announce(f"redis    started redis-server on 127.0.0.1:{rport}")
        env = dict(os.environ)
        env.update(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", REDIS_URL=redis_url,
                   WARDEN_WEB_PORT=str(settings.web_port),
                   # Tansu's ListOffsets can answer short of the log end (README: Production)
                   WARDEN_RECOVERY_CHECK="off")
        procs["worker"] = start_worker(env, state_dir / "worker.log")
        wait_healthy(settings.web_port, procs["worker"], timeout=90, log_path=state_dir / "worker.log")
        ready = time.monotonic() - t0
        announce(f"worker   ready at http://127.0.0.1:{settings.web_port} in {ready:.1f} s (pid {procs['worker'].pid})")
        return procs, env, ready
    except BaseException:
        for proc in reversed(list(procs.values())):
            stop(proc)
        raise


def _save_state(state: StackState, procs: dict[str, subprocess.Popen[bytes]], env: dict[str, str]) -> None:
    """Record the started processes and their addresses, for `warden down`."""
    state.save({k: p.pid for k, p in procs.items()},
               {k: env[k] for k in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "WARDEN_WEB_PORT")})


def stop_stack(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for name in ("simulator", "feed", "worker", "broker", "redis"):
        proc = procs.get(name)
        if proc is not None:
            stop(proc)


def _wait_forever(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise StackError(f"the {name} exited (code {proc.returncode}); see .warden/{name}.log")
        time.sleep(0.5)


def cmd_up(args: argparse.Namespace) -> int:
    settings = _settings()
    state = StackState(STATE_DIR)
    previous = state.load()
    if previous and any(alive(int(pid)) for pid in dict(previous.get("pids", {})).values()):  # type: ignore[arg-type]
        raise UserError("a stack started by `warden up` is still running: run `warden down` first")
    procs, env, ready = start_stack(settings, args.broker_port, STATE_DIR, print)
    _save_state(state, procs, env)
    if args.detach:
        print(f"ready in {ready:.2f} s; `warden down` stops it")
        return 0
    try:
        _wait_forever(procs)
    except KeyboardInterrupt:
        pass
    finally:
        stop_stack(procs)
        state.clear()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state = StackState(STATE_DIR)
    data = state.load()
    pids: dict[str, int] = {k: int(v) for k, v in dict(data.get("pids", {})).items()}  # type: ignore[arg-type]
    if not pids:
        print("nothing to stop: no stack started by `warden up` here")
        return 0
    for name in ("simulator", "worker", "broker", "redis"):
        pid = pids.get(name)
        if pid is not None and alive(pid):
            stop(pid)
            print(f"stopped {name} (pid {pid})")
    state.clear()
    return 0


# --- simulate -----------------------------------------------------------------------------

def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator.publisher import simulate

    settings = _settings()
    if not _broker_reachable(settings.kafka_bootstrap_servers):
        raise UserError(f"no Kafka broker answers at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}")
    simulate(settings, seed=args.seed, sellers=args.sellers, days=args.days, rate=args.rate,
             duration=args.duration, zipf=args.zipf, quiet=args.quiet)
    return 0


# --- run ----------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from feed.live import live_feed

    settings = _settings()
    print("Warden: starting the embedded stack (Ctrl-C stops everything)")
    procs, env, _ = start_stack(settings, args.broker_port, STATE_DIR, lambda s: print("  " + s))
    _save_state(StackState(STATE_DIR), procs, env)
    try:
        sim_log = open(STATE_DIR / "simulator.log", "ab")
        procs["simulator"] = subprocess.Popen(
            [sys.executable, "-m", "cli", "simulate", "--seed", str(args.seed), "--sellers",
             str(args.sellers), "--days", str(args.days), "--rate", str(args.rate), "--quiet"],
            env=env, stdout=sim_log, stderr=subprocess.STDOUT, start_new_session=True)
        print(f"  simulator {args.sellers} sellers, {args.days} days of history, then live at {args.rate} events/s")
        print()
        live_feed(env["KAFKA_BOOTSTRAP_SERVERS"], settings, procs)
    except KeyboardInterrupt:
        print("\nstopping…")
    finally:
        stop_stack(procs)
        StackState(STATE_DIR).clear()
    return 0


# --- bench --------------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    from bench.run import SECTIONS, run_bench
    from bench.stack import BenchFailure

    sections = args.sections.split(",") if args.sections else list(SECTIONS)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise UserError(f"unknown bench section {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    try:
        run_bench(sections, args.quick, args.json, workers=args.workers, store=args.store)
    except BenchFailure as exc:
        print(f"warden bench: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


# --- main ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warden", description="Real-time Trust & Safety rules engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("worker", help="run one stream-processing worker")
    p.add_argument("--without-web", action="store_true", help="no HTTP server")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("up", help="start the embedded stack (broker, Redis if needed, worker)")
    p.add_argument("--detach", action="store_true", help="return once the worker is ready")
    p.add_argument("--broker-port", type=int, default=0, help="Tansu's port (default: a free one)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop what `warden up` started")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("simulate", help="publish a simulated marketplace to the input topics")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--sellers", type=int, default=60)
    p.add_argument("--days", type=float, default=35, help="days of history before now")
    p.add_argument("--rate", type=float, default=50, help="events/s once live")
    p.add_argument("--duration", type=float, default=0, help="seconds of live events (0: until stopped)")
    p.add_argument("--zipf", type=float, default=0.0, help="seller-size skew (0: uniform)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("run", help="the demo: stack + simulator + live enforcement feed")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--sellers", type=int, default=60)
    p.add_argument("--days", type=float, default=35)
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--broker-port", type=int, default=0)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="measure throughput, latency, start-up and memory")
    p.add_argument("--quick", action="store_true", help="a smaller run, for development")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--sections", help="comma-separated sections to run (default: all): core, ceiling, "
                   "faust, worker, workers, latency, startup, memory")
    p.add_argument("--workers", type=int, default=2, help="worker processes in the `workers` section (d)")
    p.add_argument("--store", choices=("memory", "rocksdb"), default="rocksdb",
                   help="the workers' table store (WARDEN_STORE; default rocksdb, as in production: "
                   "a restarted worker reads only its changelogs' tail)")
    p.set_defaults(func=cmd_bench)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "worker":
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UserError, StackError) as exc:
        print(f"warden: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from rules.policy import PolicyError

        if isinstance(exc, PolicyError):
            print(f"warden: error: bad policy: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
