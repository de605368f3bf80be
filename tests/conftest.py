"""Shared fixtures: a real Tansu broker for the session, and Warden workers against it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stack.embedded import free_port, start_tansu, start_web, start_worker, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
# The sign-in key of the workers the tests start, and a token that reads any seller
AUTH_SECRET = "warden-tests-" + "k" * 40


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker on a free port for the whole session (or KAFKA_BOOTSTRAP_SERVERS if
    WARDEN_TEST_BROKER=external)."""
    if os.environ.get("WARDEN_TEST_BROKER") == "external":
        yield os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        return
    port = free_port()
    log = tmp_path_factory.mktemp("tansu") / "broker.log"
    proc = start_tansu(port, log)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc)


class Worker:
    """A `warden worker` process with its own topic prefix, web port and data dir."""

    def __init__(self, broker: str, tmp: Path, **env: str) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}."
        self.port = free_port()
        self.log = tmp / f"worker-{self.prefix}log"
        self.env = dict(os.environ)
        self.env.update(
            KAFKA_BOOTSTRAP_SERVERS=broker, WARDEN_TOPIC_PREFIX=self.prefix, WARDEN_WEB_PORT=str(self.port),
            WARDEN_DATA_DIR=str(tmp / f"data-{self.prefix}"), WARDEN_CLOCK="event",
            WARDEN_POLICY=str(ROOT / "rules" / "policy.yaml"), WARDEN_LOG_LEVEL="info",
            WARDEN_AUTH_SECRET=AUTH_SECRET, PYTHONPATH=str(ROOT),
        )
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0

    def start(self) -> Worker:
        self.proc = start_worker(self.env, self.log)
        self.ready_seconds = wait_healthy(self.port, self.proc, timeout=60, log_path=self.log)
        return self

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


class WebService:
    """A `warden web` process beside a worker: same topics, same Redis, its own port."""

    def __init__(self, worker: Worker, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"web-{worker.prefix}{self.port}.log"
        self.env = dict(worker.env)
        self.env.update(WARDEN_UI_PORT=str(self.port))
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WebService:
        self.proc = start_web(self.env, self.log)
        wait_healthy(self.port, self.proc, timeout=30, log_path=self.log, name="web service")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


# The test run's output folder: screenshots of the pages, kept for a person to look at
OUTPUT = Path(os.environ.get("WARDEN_TEST_OUTPUT", ROOT / "test-output"))
# Debian's chromium, driven by Playwright with its executable (`playwright install` is never run)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium for a module's page tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def shot(page: Any, name: str) -> None:
    """A full-page screenshot under the test run's output folder."""
    folder = OUTPUT / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def wait_for(check: Any, what: str, timeout: float = 60, step: float = 0.3) -> Any:
    """The first truthy value of `check()`, asked every `step` s; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def token(role: str = "service", seller_id: str | None = None, ttl_s: float = 600) -> str:
    from streams.contract.auth import issue

    return issue(AUTH_SECRET, seller_id or role, role, seller_id, ttl_s)


def api_headers(role: str = "service", seller_id: str | None = None, ttl_s: float = 600) -> dict[str, str]:
    """An Authorization header for the tests' workers."""
    from streams.contract.auth import issue

    return {"Authorization": f"Bearer {issue(AUTH_SECRET, seller_id or role, role, seller_id, ttl_s)}"}


@pytest.fixture
def worker_factory(broker: str, tmp_path: Path) -> Iterator[type]:
    started: list[Worker] = []

    class Factory:
        @staticmethod
        def start(**env: str) -> Worker:
            w = Worker(broker, tmp_path, **env).start()
            started.append(w)
            return w

    yield Factory
    for w in started:
        w.stop()


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT)
    full_env["WARDEN_AUTH_SECRET"] = AUTH_SECRET
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "cli", *args], env=full_env, cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout)
