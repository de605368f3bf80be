"""`warden up --detach` / `down`, and one clear line for a user's mistake."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stack.embedded import alive, free_port
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration


def test_up_detach_is_ready_and_down_leaves_nothing(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    port, ui_port = free_port(), free_port()
    env = {"WARDEN_WEB_PORT": str(port), "WARDEN_UI_PORT": str(ui_port),
           "WARDEN_POLICY": str(ROOT / "rules/policy.yaml"), "WARDEN_DATA_DIR": str(tmp_path / "data"),
           "WARDEN_AUTH_SECRET": ""}  # `up` makes its own
    started = time.monotonic()
    up = run_cli("up", "--detach", env=env, cwd=tmp_path)
    request.addfinalizer(lambda: run_cli("down", env=env, cwd=tmp_path))  # nothing left behind, whatever fails
    elapsed = time.monotonic() - started
    assert up.returncode == 0, up.stderr + up.stdout
    assert "ready in" in up.stdout
    print(f"warden up --detach: ready after {elapsed:.2f} s")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert resp.status == 200
    # the stack's sign-in secret: made by `up`, readable by its owner only; the API needs a token
    secret_file = tmp_path / ".warden/auth-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sellers/s1/metrics", timeout=5)
        raise AssertionError("the API answered without a token")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    token = run_cli("token", "--role", "admin", env=env, cwd=tmp_path)
    assert token.returncode == 0, token.stderr
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/sellers/s1/actions",
                                     headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
    state = json.loads((tmp_path / ".warden/stack.json").read_text())
    pids = list(state["pids"].values())
    assert {"broker", "worker", "web"} <= set(state["pids"])
    # the web service: its address and sign-in links printed, the demo seller's link signs in
    links = [line.split()[-1] for line in up.stdout.splitlines() if "/login?token=" in line]
    assert len(links) == 2 and all(link.startswith(f"http://127.0.0.1:{ui_port}/login?token=") for link in links)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    try:
        with opener.open(links[0], timeout=5) as resp:
            landed, page = resp.url, resp.read().decode()
    except urllib.error.HTTPError as exc:  # signed in and on their page, with no figures yet
        landed, page = exc.url, exc.read().decode()
    assert landed.endswith("/sellers/seller-00001-slow_shipper") and 'class="who">seller-00001-slow_shipper' in page
    assert all(alive(pid) for pid in pids)
    down = run_cli("down", env=env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    time.sleep(0.2)
    assert not any(alive(pid) for pid in pids)
    assert not (tmp_path / ".warden/stack.json").exists()


def _one_clear_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_worker_without_a_secret_refuses_to_start() -> None:
    line = _one_clear_line(run_cli("worker", env={"WARDEN_AUTH_SECRET": ""}))
    assert "WARDEN_AUTH_SECRET is not set" in line
    line = _one_clear_line(run_cli("worker", env={"WARDEN_AUTH_SECRET": "short"}))
    assert "WARDEN_AUTH_SECRET" in line and "32" in line


def test_warden_token_prints_a_token_the_secret_checks() -> None:
    from streams.contract.auth import Identity, verify
    from tests.conftest import AUTH_SECRET

    made = run_cli("token", "--role", "seller", "--seller-id", "seller-9", "--ttl", "30m")
    assert made.returncode == 0, made.stderr
    assert verify(AUTH_SECRET, made.stdout.strip()) == Identity("seller-9", "seller", "seller-9")
    assert "seller-id" in _one_clear_line(run_cli("token", "--role", "seller"))
    assert "--ttl" in _one_clear_line(run_cli("token", "--role", "admin", "--ttl", "soon"))


def test_broker_not_reachable() -> None:
    line = _one_clear_line(run_cli("worker", env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
                                                    "WARDEN_WEB_PORT": str(free_port())}))
    assert "KAFKA_BOOTSTRAP_SERVERS" in line


@pytest.mark.parametrize("var,value", [("WARDEN_WEB_PORT", "abc"), ("WARDEN_CLOCK", "sundial"),
                                       ("KAFKA_BOOTSTRAP_SERVERS", "nohost"), ("WARDEN_TIMEZONE", "Mars/Base")])
def test_bad_env_value_names_the_variable(var: str, value: str) -> None:
    line = _one_clear_line(run_cli("worker", env={var: value}))
    assert var in line


def test_port_in_use(broker: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = _one_clear_line(run_cli("worker", env={"KAFKA_BOOTSTRAP_SERVERS": broker,
                                                        "WARDEN_WEB_PORT": str(port)}))
    assert "WARDEN_WEB_PORT" in line and "in use" in line


def test_bad_policy_names_the_field(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    text = (ROOT / "rules/policy.yaml").read_text().replace("threshold_below: 0.04", "threshold_below: 4")
    policy.write_text(text)
    line = _one_clear_line(run_cli("worker", env={"WARDEN_POLICY": str(policy)}))
    assert "metrics.late_dropoff_rate.threshold_below" in line



def test_warden_topics_creates_every_topic_once(broker: str) -> None:
    from confluent_kafka.admin import AdminClient

    from streams.admin import planned_topics
    from streams.contract.settings import load_settings

    prefix = f"t{time.time_ns() % 10**10}."
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker, "WARDEN_TOPIC_PREFIX": prefix, "WARDEN_PARTITIONS": "3"}
    plan = planned_topics(load_settings(env))
    assert len(plan) == 7 + 5 + 2 + 6  # inputs, outputs, internal, changelogs
    assert plan[f"{prefix}trust-safety.seller-metrics"] == {"cleanup.policy": "compact"}
    assert plan[f"{prefix}warden-orders-changelog"] == {"cleanup.policy": "compact"}
    first = run_cli("topics", env=env)
    assert first.returncode == 0, first.stderr
    assert f"{len(plan)} topics created" in first.stdout
    topics = AdminClient({"bootstrap.servers": broker}).list_topics(timeout=10).topics
    assert all(len(topics[name].partitions) == 3 for name in plan)
    again = run_cli("topics", env=env)
    assert again.returncode == 0 and f"0 topics created, {len(plan)} already there" in again.stdout
