"""`warden bench` runs every broker section on a small data set, and its output-count
check fails a run whose worker loses outputs (not the figures: these machines are noisy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent.parent

# Loaded by every Python process started with this directory on PYTHONPATH (the bench's
# workers too): a worker whose producer silently drops every 20th seller-metrics record.
LOSSY_PRODUCER = '''
import confluent_kafka

class LossyProducer(confluent_kafka.Producer):
    calls = 0

    def produce(self, topic, *args, **kwargs):
        if "seller-metrics" in topic:
            LossyProducer.calls += 1
            if LossyProducer.calls % 20 == 0:
                return None
        return super().produce(topic, *args, **kwargs)

confluent_kafka.Producer = LossyProducer
'''


def bench(tmp: Path, sections: str, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the bench starts its own broker
    path = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    env.update(PYTHONPATH=os.pathsep.join(path), WARDEN_BENCH_EVENTS="3000", WARDEN_BENCH_SELLERS="300",
               WARDEN_BENCH_DIR=str(tmp / "bench"))
    return subprocess.run([sys.executable, "-m", "cli", "bench", "--quick", "--sections", sections,
                           "--json", str(tmp / "bench.json")], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_bench_runs_every_broker_section(tmp_path: Path) -> None:
    done = bench(tmp_path, "ceiling,faust,worker,latency,startup,memory,workers")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads((tmp_path / "bench.json").read_text())["figures"]
    assert figures["result"]["value"] == "ok"
    for section in ("a", "b", "c", "d", "e", "f", "g"):
        assert figures.get(section), f"section ({section}) printed no figures"
    assert figures["c"]["Warden worker, end to end"]["value"] > 0
    assert "(checked)" in done.stdout and "p99" in done.stdout
    environment = json.loads((tmp_path / "bench.json").read_text())["environment"]
    assert environment["cpus"] and environment["versions"]["faust-streaming"]


def test_output_count_check_fails_a_run_that_loses_outputs(tmp_path: Path) -> None:
    lossy = tmp_path / "lossy"
    lossy.mkdir()
    (lossy / "sitecustomize.py").write_text(LOSSY_PRODUCER)
    done = bench(tmp_path, "worker", extra_path=lossy)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "output count check FAILED" in done.stderr and "seller-metrics" in done.stderr
    figures = json.loads((tmp_path / "bench.json").read_text())["figures"]
    assert figures["result"]["value"] == "FAILED"


def test_bench_web_section_times_the_pages_of_a_big_seller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDEN_BENCH_WEB_ORDERS", "2000")  # the bench's own run has 10,000 (README: Figures)
    done = bench(tmp_path, "web")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    web = json.loads((tmp_path / "bench.json").read_text())["figures"]["web"]
    assert web["orders in the seller's window"]["value"] >= 2_000
    for page in ("seller page", "drill-down (late dropoff)", "drill-down (flawed items)"):
        assert 0 < web[f"{page} p50"]["value"] <= web[f"{page} p95"]["value"]
    assert web["view bytes per seller (Redis)"]["value"] > 1_000
