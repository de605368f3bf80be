"""Operations against the real tools: a real Prometheus (Debian's package) scrapes a live
worker and the web service with Warden's own alert rules; dead letters and a stopped worker
fire their alerts; every dashboard panel's query returns data; the consumer group's lag reads
what was produced while no worker ran, and drains; /readyz and /livez through a rebalance."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.codec import Codec
from stack.embedded import free_port, stop
from tests.conftest import ROOT, WebService, Worker, wait_for
from tests.support.kafka import producer
from tests.support.shippers import late_shipper

pytestmark = pytest.mark.integration
codec = Codec()
DAY = 86_400_000
SELLER = "ops-late"


def get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)





class Prometheus:
    """Debian's Prometheus on a free port, scraping every second, evaluating Warden's rules
    with every `for:` shortened to 0 s (the expressions are the shipped ones)."""

    def __init__(self, tmp: Path, targets: dict[str, str]) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: install Debian's prometheus package (make test-tools does)"
        rules = yaml.safe_load((ROOT / "deploy/prometheus/warden.rules.yml").read_text())
        for group in rules["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                rule["for"] = "0s"
        (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": ["rules.yml"],
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}
                                     for job, target in targets.items()]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={tmp / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # stop() ends its session
        wait_for(lambda: get(f"{self.url}/-/ready")[0] == 200, "Prometheus to start", 30)

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, body = get(f"{self.url}/api/v1/query?query={urllib.parse.quote(expr)}")
        assert status == 200, body
        return json.loads(body)["data"]["result"]  # type: ignore[no-any-return]

    def firing(self, alert: str) -> list[dict[str, Any]]:
        status, body = get(f"{self.url}/api/v1/alerts")
        assert status == 200, body
        return [a for a in json.loads(body)["data"]["alerts"] if a["labels"]["alertname"] == alert
                and a["state"] == "firing"]

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


@pytest.fixture
def stack(broker: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    worker = Worker(broker, tmp_path, WARDEN_PARTITIONS="2", WARDEN_TICK_INTERVAL="0.5")
    web = WebService(worker, tmp_path)
    prometheus = None
    try:
        worker.start()
        web.start()
        prometheus = Prometheus(tmp_path, {"warden": f"127.0.0.1:{worker.port}",
                                           "warden-web": f"127.0.0.1:{web.port}"})
        yield {"worker": worker, "web": web, "prometheus": prometheus, "broker": broker, "tmp": tmp_path}
    finally:
        if prometheus is not None:
            prometheus.stop()
        web.stop()
        worker.stop()


def test_alerts_fire_in_a_real_prometheus_and_every_dashboard_panel_has_data(stack: dict[str, Any]) -> None:
    worker, prometheus = stack["worker"], stack["prometheus"]
    p = producer(stack["broker"])
    # a bad record, then (once Prometheus has its counter: a series' first value is no increase)
    # a burst of them
    p.produce(worker.topic("marketplace.ratings"), key=b"ops-bad", value=b"\x00not avro")
    p.flush(30)
    wait_for(lambda: prometheus.query("warden_events_invalid_total"), "the dead-letter counter in Prometheus")
    for i in range(30):
        p.produce(worker.topic("marketplace.ratings"), key=b"ops-bad", value=b"\x00not avro %d" % i)
    start = (int(time.time() * 1000) // DAY - 40) * DAY
    for topic, value in late_shipper(SELLER, start):  # a warning and its notification
        p.produce(worker.topic(topic), key=SELLER.encode(), value=value)
    p.flush(30)
    alerts = wait_for(lambda: prometheus.firing("WardenDeadLetters"), "the dead-letter alert to fire")
    assert alerts[0]["labels"]["topic"] == "marketplace.ratings"
    assert not prometheus.firing("WardenWorkerDown")
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/warden.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 15
    try:
        wait_for(lambda: not _without_data(prometheus, exprs), "every panel's query to return data", 60)
    except AssertionError:
        raise AssertionError(f"no data: {_without_data(prometheus, exprs)}") from None
    worker.stop()
    wait_for(lambda: prometheus.firing("WardenWorkerDown"), "the worker-down alert to fire", 30)


def _without_data(prometheus: Prometheus, exprs: list[str]) -> list[str]:
    return [e for e in exprs if not prometheus.query(e)]


def group_lag(web: WebService, topic: str) -> float:
    status, text = get(f"{web.url}/metrics")
    assert status == 200
    pattern = re.compile(r'^warden_consumer_group_lag\{(.*)\} (\S+)$', re.M)
    return sum(float(v) for labels, v in pattern.findall(text) if f'topic="{topic}"' in labels)


def test_lag_reads_what_was_produced_while_no_worker_ran_and_drains(stack: dict[str, Any]) -> None:
    worker, web = stack["worker"], stack["web"]
    orders = worker.topic("marketplace.orders")
    wait_for(lambda: get(f"{web.url}/metrics")[1].count("warden_consumer_group_lag{") >= 2, "the lag exporter")
    worker.stop()
    n = 120
    p = producer(stack["broker"])
    start = (int(time.time() * 1000) // DAY - 3) * DAY
    for i in range(n):
        p.produce(orders, key=f"lag-seller-{i % 7}".encode(), value=codec.encode("OrderPlaced", dict(
            event_id=f"ev-lag-{i}", order_id=f"lag-{i}", seller_id=f"lag-seller-{i % 7}", buyer_id="b", show_id=None,
            amount_cents=100, currency="USD", placed_at=start + i * 1000, ship_by=None)))
        p.flush(30)  # a batch each: Tansu reports a partition's end as its last batch's start + 1
    read: list[float] = []
    try:
        wait_for(lambda: read.append(group_lag(web, orders)) or read[-1] == n, f"the group's lag to read {n}", 30)
    except AssertionError:
        raise AssertionError(f"the group's lag read {read[-5:]}, not {n}") from None
    worker.start()
    wait_for(lambda: group_lag(web, orders) == 0, "the lag to drain", 60)

    def own_lag() -> bool:
        _, text = get(f"http://127.0.0.1:{worker.port}/metrics")
        values = re.findall(rf'^warden_consumer_lag\{{.*topic="{re.escape(orders)}".*\}} (\S+)$', text, re.M)
        return bool(values) and all(float(v) == 0 for v in values)

    wait_for(own_lag, "the worker's own lag to read 0", 30)


def test_readyz_is_503_while_rebalancing_and_livez_stays_200(stack: dict[str, Any]) -> None:
    worker = stack["worker"]
    base = f"http://127.0.0.1:{worker.port}"
    assert get(f"{base}/readyz")[0] == 200 and get(f"{base}/livez")[0] == 200
    second = Worker(stack["broker"], stack["tmp"] / "second", WARDEN_PARTITIONS="2", WARDEN_TICK_INTERVAL="0.5")
    second.prefix, second.env["WARDEN_TOPIC_PREFIX"] = worker.prefix, worker.prefix  # the same group
    second.env["WARDEN_DATA_DIR"] = str(stack["tmp"] / "second-data")
    (stack["tmp"] / "second").mkdir()
    second.log = stack["tmp"] / "second" / "worker.log"
    ready, live = [], []
    from stack.embedded import start_worker

    second.proc = start_worker(second.env, second.log)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            ready.append(get(f"{base}/readyz", 2)[0])
            live.append(get(f"{base}/livez", 2)[0])
            if 503 in ready and ready[-1] == 200:
                break
            time.sleep(0.05)
    finally:
        second.stop()
    assert 503 in ready, "the first worker never said it was rebalancing"
    assert ready[-1] == 200, "the first worker did not become ready again"
    assert set(live) == {200}, live
