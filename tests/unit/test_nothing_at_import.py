"""Importing Warden makes nothing: every module of every package is imported, with no
broker, no Redis and no network, and no socket, thread, process or file of its own is
opened (a worker is made by agents.worker.build_worker, from the settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "rules", "tables", "streams", "agents", "cli", "bench", "feed", "simulator", "stack", "web")

PROBE = r"""
import importlib, json, os, pkgutil, sys

root, packages = sys.argv[1], sys.argv[2].split(",")
# Third-party packages are imported first, outside the watch: what they do at import is
# theirs (croniter, under Faust, runs `file` to learn the word size).
for name in ("faust", "faust.transport.drivers.aiokafka", "faust.web", "aiokafka", "confluent_kafka",
             "redis.asyncio", "prometheus_client", "fastavro", "mode", "uvloop", "yaml"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass

def modules(package, path):
    out = [package]
    for m in pkgutil.iter_modules([path]):
        if m.name == "__main__":
            continue  # runs the program: not imported by anything
        if m.ispkg:
            out += modules(f"{package}.{m.name}", os.path.join(path, m.name))
        else:
            out.append(f"{package}.{m.name}")
    return out

seen = []
current = [None]

def hook(event, args):
    if event == "open":
        path = args[0]
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str) or path.endswith((".py", ".pyc", ".so", ".pth")):
            return
        if path.startswith(root) and "/.venv/" not in path and not os.path.isdir(path):
            seen.append([current[0], event, path])
    elif event in ("socket.__new__", "socket.connect", "socket.bind", "_thread.start_new_thread",
                   "subprocess.Popen", "os.system", "os.fork", "os.posix_spawn"):
        seen.append([current[0], event, repr(args)[:120]])

names = [m for p in packages for m in modules(p, os.path.join(root, p))]
tasks = lambda: len(os.listdir("/proc/self/task"))
fds = lambda: len(os.listdir("/proc/self/fd"))
sys.addaudithook(hook)
for name in names:
    current[0] = name
    t0, f0 = tasks(), fds()
    importlib.import_module(name)
    if tasks() != t0:
        seen.append([name, "native threads", f"{t0} -> {tasks()}"])
    if fds() != f0:
        seen.append([name, "open descriptors", f"{f0} -> {fds()}"])
print(json.dumps({"modules": names, "seen": seen}))
"""


def test_importing_every_module_opens_no_socket_thread_process_or_file() -> None:
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", REDIS_URL="redis://127.0.0.1:1/0",
               PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), ",".join(PACKAGES)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "agents.worker" in report["modules"] and "cli.main" in report["modules"]
    assert len(report["modules"]) > 40
    assert report["seen"] == [], "\n".join(" ".join(map(str, s)) for s in report["seen"])


def test_every_package_of_the_project_is_probed() -> None:
    """A package added to pyproject.toml and left out of PACKAGES would go unwatched."""
    import tomllib

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert {name for name in listed if "." not in name} == set(PACKAGES)


def test_the_probe_would_see_a_module_that_works_at_import(tmp_path: Path) -> None:
    """The probe itself: a package that opens a file and starts a thread at import is seen."""
    pkg = tmp_path / "busy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (tmp_path / "data.txt").write_text("x")
    (pkg / "eager.py").write_text(
        "import threading, pathlib, time\n"
        f"TEXT = pathlib.Path({str(tmp_path / 'data.txt')!r}).read_text()\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), "busy"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    events = {(s[0], s[1]) for s in json.loads(done.stdout.strip().splitlines()[-1])["seen"]}
    assert ("busy.eager", "open") in events
    assert {("busy.eager", "_thread.start_new_thread"), ("busy.eager", "native threads")} & events


HELP = r"""
import runpy, sys
seen = []
def hook(event, args):
    if event.startswith("socket.") or event in ("subprocess.Popen", "os.system"):
        seen.append(event)
sys.addaudithook(hook)
sys.argv = ["warden", "--help"]
try:
    runpy.run_module("cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("SEEN", code, sorted(set(seen)))
"""


def test_warden_help_opens_no_connection() -> None:
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", HELP], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert "usage: warden" in done.stdout
    last = done.stdout.strip().splitlines()[-1]
    assert last == "SEEN 0 []", last
