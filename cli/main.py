"""The `warden` command: worker, simulate, bench, and the stack's up, down and run (cli.stack_commands)."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from cli.common import FAUST_LEVELS, UserError, broker_reachable, check_policy, check_secret_set
from cli.common import settings as load
from cli.stack_commands import cmd_down, cmd_run, cmd_up, stack_secret
from stack.embedded import StackError, port_free
from streams.contract.auth import ROLES, check_secret, issue, parse_ttl
from streams.contract.settings import ConfigError

# --- worker -------------------------------------------------------------------------------

def _few_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (what MALLOC_ARENA_MAX does) before any thread starts: by
    default every thread that allocates (librdkafka's, RocksDB's, the consumer's) may get an
    arena of its own, up to 8 per core, each holding freed memory for itself; the worker's
    resident memory then grows with its threads, not its state. Left alone where
    MALLOC_ARENA_MAX is set, or the C library is not glibc."""
    import ctypes
    import os

    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        return


def cmd_worker(args: argparse.Namespace) -> int:
    _few_malloc_arenas()
    settings = load()
    check_secret_set(settings)
    check_policy(settings)
    if not broker_reachable(settings.kafka_bootstrap_servers):
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
    # 300,000 events, growing with the state). What the core makes mostly lives on, so:
    # the young generation is collected every 2,000 allocations (a pause of a few ms; its
    # short-lived cycles, futures and tracebacks, are found there); what survives it is
    # never collected on its own (a collection of 200,000 survivors blocked the loop
    # 100-150 ms at 1M events): every commit freezes what is alive out of collection, and
    # a full sweep runs every 10 minutes (agents.runtime.Freezer); what the tables recover
    # is frozen too (agents.process_events).
    gc.set_threshold(2_000, 1_000_000, 1_000_000)
    if settings.log_level != "debug":
        # Faust and aiokafka log debug lines per message; under the root's level they cost
        # a LogRecord each (12 % of a busy worker). Below the configured level: off.
        logging.disable(logging.DEBUG)
    sys.argv = ["warden", "--loop", "uvloop", "worker", "--loglevel", FAUST_LEVELS[settings.log_level],
                "--without-web" if args.without_web else "--with-web"]
    worker.app.main()
    return 0


# --- web ---------------------------------------------------------------------------------

def cmd_web(args: argparse.Namespace) -> int:
    """The web service for people (CONTRACT §9)."""
    settings = load()
    check_secret_set(settings)
    check_policy(settings)
    if not port_free(settings.ui_port):
        raise UserError(f"WARDEN_UI_PORT={settings.ui_port} is in use: set another port")
    logging.basicConfig(level=getattr(logging, settings.log_level.upper()), format="%(asctime)s %(name)s %(message)s")
    from web.server import run_web

    run_web(settings)
    return 0


# --- topics ------------------------------------------------------------------------------

def cmd_topics(args: argparse.Namespace) -> int:
    """Create every topic with its partitions, retention and compaction (a topic-init job)."""
    from streams.admin import TopicLayoutError, create_topics

    settings = load()
    if not broker_reachable(settings.kafka_bootstrap_servers):
        raise UserError(f"no Kafka broker answers at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}")
    try:
        created, present = create_topics(settings, replication=args.replication)
    except TopicLayoutError as exc:
        raise UserError(str(exc)) from None
    for name in created:
        print(f"created  {name}")
    print(f"{len(created)} topics created, {len(present)} already there ({settings.partitions} partitions each)")
    return 0


# --- simulate -----------------------------------------------------------------------------

def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator.publisher import simulate

    settings = load()
    if not broker_reachable(settings.kafka_bootstrap_servers):
        raise UserError(f"no Kafka broker answers at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}")
    simulate(settings, seed=args.seed, sellers=args.sellers, days=args.days, rate=args.rate,
             duration=args.duration, zipf=args.zipf, quiet=args.quiet)
    return 0


# --- token ---

def cmd_token(args: argparse.Namespace) -> int:
    """Print a token signed with WARDEN_AUTH_SECRET, or with the secret `warden up` keeps."""
    try:
        ttl = parse_ttl(args.ttl)
        secret = check_secret(load().auth_secret or stack_secret(create=False))
        print(issue(secret, args.sub or args.seller_id or args.role, args.role, args.seller_id, ttl))
    except ValueError as exc:
        raise UserError(str(exc)) from None
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

    p = sub.add_parser("topics", help="create every topic with its partitions, retention and compaction")
    p.add_argument("--replication", type=int, default=-1, help="replication factor (default: the broker's)")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("web", help="the web service: seller dashboard and sign-in (WARDEN_UI_PORT)")
    p.set_defaults(func=cmd_web)

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
                   "faust, peer, worker, workers, latency, startup, memory, web")
    p.add_argument("--workers", type=int, default=2, help="worker processes in the `workers` section (d)")
    p.add_argument("--store", choices=("memory", "rocksdb"), default="rocksdb",
                   help="the workers' table store (WARDEN_STORE; default rocksdb, as in production: "
                   "a restarted worker reads only its changelogs' tail)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("token", help="print a sign-in token (CONTRACT §9)")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--seller-id", help="the seller a seller's token is for")
    p.add_argument("--sub", help="who the token names (default: the seller id, or the role)")
    p.add_argument("--ttl", default="8h", help="lifetime: 8h, 30m, 2d or seconds (default 8h)")
    p.set_defaults(func=cmd_token)

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
