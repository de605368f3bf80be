"""`warden up`, `warden down` and `warden run`: the embedded stack (Tansu, Redis, a worker),
and the simulated marketplace with its live feed on top."""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from cli.common import STATE_DIR, UserError, check_policy
from cli.common import settings as load
from stack.embedded import (
    StackError,
    StackState,
    alive,
    free_port,
    port_free,
    redis_answers,
    spawn,
    start_redis,
    start_tansu,
    start_web,
    start_worker,
    stop,
    wait_healthy,
)
from streams.contract.settings import Settings

# --- up / down ----------------------------------------------------------------------------

SECRET_FILE = "auth-secret"


def stack_secret(create: bool = True) -> str | None:
    """The sign-in secret of the stack `warden up` starts, kept under `.warden/` (readable by
    its owner only) and made once; None if there is none and `create` is false."""
    path = STATE_DIR / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def _redis_port(url: str) -> int:
    return urlparse(url).port or 6379


def start_stack(settings: Settings, broker_port: int, state_dir: Path,
                announce: Callable[[str], None]) -> tuple[dict[str, subprocess.Popen[bytes]], dict[str, str], float]:
    """Start broker, Redis (only if none answers) and the worker; return them, the env, ready time."""
    t0 = time.monotonic()
    check_policy(settings)
    if not port_free(settings.web_port):
        raise UserError(f"WARDEN_WEB_PORT={settings.web_port} is in use: stop what holds it or set another port")
    if not port_free(settings.ui_port):
        raise UserError(f"WARDEN_UI_PORT={settings.ui_port} is in use: stop what holds it or set another port")
    state_dir.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        port = broker_port or free_port()
        procs["broker"] = start_tansu(port, state_dir / "broker.log")
        announce(f"broker   Tansu on 127.0.0.1:{port} (memory storage)")
        redis_url = settings.redis_url
        if redis_answers(redis_url):
            announce(f"redis    using the Redis at {settings.redis_location}")
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
        if not env.get("WARDEN_AUTH_SECRET"):
            env["WARDEN_AUTH_SECRET"] = stack_secret() or ""
        procs["worker"] = start_worker(env, state_dir / "worker.log")
        wait_healthy(settings.web_port, procs["worker"], timeout=90, log_path=state_dir / "worker.log")
        ready = time.monotonic() - t0
        announce(f"worker   ready at http://127.0.0.1:{settings.web_port} in {ready:.1f} s (pid {procs['worker'].pid})")
        env["WARDEN_UI_PORT"] = str(settings.ui_port)
        procs["web"] = start_web(env, state_dir / "web.log")
        wait_healthy(settings.ui_port, procs["web"], timeout=30, log_path=state_dir / "web.log", name="web service")
        ready = time.monotonic() - t0
        announce(f"web      the dashboard at {settings.ui_url} (pid {procs['web'].pid}); sign in with:")
        for who, link in demo_links(settings.ui_url, env["WARDEN_AUTH_SECRET"]):
            announce(f"           {who:<9}{link}")
        announce("sign-in  tokens for the API and other people: `warden token --role R [--seller-id S]`")
        return procs, env, ready
    except BaseException:
        for proc in reversed(list(procs.values())):
            stop(proc)
        raise


DEMO_SELLER = "seller-00001-slow_shipper"  # the simulator's first slow shipper (simulator.marketplace)


def demo_links(ui_url: str, secret: str) -> list[tuple[str, str]]:
    """Sign-in links (valid 8 hours) for a demo seller and a demo reviewer."""
    from streams.contract.auth import issue

    seller = issue(secret, DEMO_SELLER, "seller", DEMO_SELLER)
    reviewer = issue(secret, "demo-reviewer", "reviewer")
    return [("seller", f"{ui_url}/login?token={seller}"), ("reviewer", f"{ui_url}/login?token={reviewer}")]


def _save_state(state: StackState, procs: dict[str, subprocess.Popen[bytes]], env: dict[str, str]) -> None:
    """Record the started processes and their addresses, for `warden down`."""
    state.save({k: p.pid for k, p in procs.items()},
               {k: env[k] for k in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "WARDEN_WEB_PORT", "WARDEN_UI_PORT")})


def stop_stack(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for name in ("simulator", "feed", "web", "worker", "broker", "redis"):
        proc = procs.get(name)
        if proc is not None:
            stop(proc)


def _wait_forever(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise StackError(f"the {name} exited (code {proc.returncode}); see .warden/{name}.log")
        time.sleep(0.5)


def _pids(state: dict[str, object]) -> dict[str, int]:
    """The process ids a saved stack state names."""
    pids = state.get("pids")
    return {str(k): int(v) for k, v in pids.items()} if isinstance(pids, dict) else {}


def cmd_up(args: argparse.Namespace) -> int:
    settings = load()
    state = StackState(STATE_DIR)
    previous = state.load()
    if any(alive(pid) for pid in _pids(previous).values()):
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
    pids = _pids(data)
    if not pids:
        print("nothing to stop: no stack started by `warden up` here")
        return 0
    for name in ("simulator", "web", "worker", "broker", "redis"):
        pid = pids.get(name)
        if pid is not None and alive(pid):
            stop(pid)
            print(f"stopped {name} (pid {pid})")
    state.clear()
    return 0


# --- run ----------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from feed.live import live_feed

    settings = load()
    print("Warden: starting the embedded stack (Ctrl-C stops everything)")
    procs, env, _ = start_stack(settings, args.broker_port, STATE_DIR, lambda s: print("  " + s))
    _save_state(StackState(STATE_DIR), procs, env)
    try:
        procs["simulator"] = spawn(
            [sys.executable, "-m", "cli", "simulate", "--seed", str(args.seed), "--sellers",
             str(args.sellers), "--days", str(args.days), "--rate", str(args.rate), "--quiet"],
            STATE_DIR / "simulator.log", env=env)
        print(f"  simulator {args.sellers} sellers, {args.days} days of history, then live at {args.rate} events/s")
        print()
        live_feed(env["KAFKA_BOOTSTRAP_SERVERS"], settings, procs)
    except KeyboardInterrupt:
        print("\nstopping…")
    finally:
        stop_stack(procs)
        StackState(STATE_DIR).clear()
    return 0
