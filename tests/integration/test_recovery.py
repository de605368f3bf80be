"""A worker killed with SIGKILL and started again: its tables come back from their
changelogs through the real broker, and what it decided before the kill is published
again under the same ids (a decision stored but not yet sent is never lost)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Worker
from tests.support.kafka import producer
from tests.support.ladder import (
    ORDERS,
    SELLER,
    SHIP_BY,
    WED,
    Outputs,
    order,
    policy_file,
    scan,
)

pytestmark = pytest.mark.integration
HOUR = 3_600_000


def forty_orders_thirty_on_time(w: Worker, p: Any, metrics: Outputs) -> None:
    """The seller's 40 orders, 30 of them scanned in time; waits until the worker counts them."""
    key = SELLER.encode()
    for i, oid in enumerate(ORDERS):
        p.produce(w.topic("marketplace.orders"), key=key, value=order(SELLER, oid, WED + i * 60_000))
    for oid in ORDERS[:30]:
        p.produce(w.topic("marketplace.shipment-scans"), key=key, value=scan(oid, SHIP_BY - 8 * HOUR, f"ok-{oid}"))
    p.flush()
    metrics.until(lambda rs: any(r["cancellation_rate"]["denominator"] == 40 for r in rs))


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_kill_and_restart_recovers_state_and_republishes(broker: str, tmp_path: Path, store: str) -> None:
    w = Worker(broker, tmp_path, WARDEN_PARTITIONS="1", WARDEN_TICK_INTERVAL="0.2", WARDEN_STORE=store,
               WARDEN_INSTANCE_ID="worker-a", WARDEN_COMMIT_INTERVAL="1", WARDEN_POLICY=str(policy_file(tmp_path)))
    try:
        w.start()
        p = producer(broker)
        key = SELLER.encode()
        enforcements = Outputs(w, "trust-safety.enforcements")
        metrics = Outputs(w, "trust-safety.seller-metrics")
        forty_orders_thirty_on_time(w, p, metrics)
        time.sleep(0.5)
        for k in (1, 2):
            p.produce(w.topic("marketplace.shipment-scans"), key=key,
                      value=scan(ORDERS[29 + k], SHIP_BY + k * HOUR, f"late-{k}"))
            p.flush()
            time.sleep(0.3)
        (warning,) = enforcements.until(lambda rs: len(rs) >= 1)
        time.sleep(1.5)  # past the commit interval: the restart starts after these inputs

        w.kill()
        w.start()  # same prefix, group, instance id and data directory

        # Published again, same record and id: a consumer deduplicating by id sees one warning.
        again = enforcements.until(lambda rs: len(rs) >= 2)
        assert again[1] == warning and len(again) == 2

        # The tables came back: the 3rd late order counts against the recovered 40 orders
        # and 2 late ones, and the recovered warning's cooldown holds back a new one.
        p.produce(w.topic("marketplace.shipment-scans"), key=key,
                  value=scan(ORDERS[32], SHIP_BY + 3 * HOUR, "late-3"))
        p.flush()
        latest = metrics.until(lambda rs: any(r["late_dropoff_rate"]["numerator"] == 3 for r in rs))
        figure = next(r for r in latest if r["late_dropoff_rate"]["numerator"] == 3)["late_dropoff_rate"]
        assert (figure["numerator"], figure["denominator"]) == (3, 40)
        time.sleep(2.0)
        assert {a["action_id"] for a in enforcements.until(lambda rs: len(rs) >= 2)} == {warning["action_id"]}
        log = w.log.read_text(errors="replace")
        assert "Error in recovery" not in log
    finally:
        w.stop()


def test_a_checkpoint_left_half_written_is_not_restored(broker: str, tmp_path: Path) -> None:
    """A worker dies in the middle of a checkpoint: the orders table's changes reached the
    broker, the sellers' figures that count them did not (WARDEN_FAILPOINT). The next
    worker drops that unended checkpoint and handles its inputs again from the last commit,
    so the figures count every late order (restored as they were, the orders would already
    hold the late scans and their seller would never count them: 1/40 instead of 3/40)."""
    w = Worker(broker, tmp_path, WARDEN_PARTITIONS="1", WARDEN_TICK_INTERVAL="0.2",
               WARDEN_INSTANCE_ID="worker-a", WARDEN_COMMIT_INTERVAL="1", WARDEN_POLICY=str(policy_file(tmp_path)),
               WARDEN_FAILPOINT="checkpoint-partial")
    try:
        w.start()
        p = producer(broker)
        key = SELLER.encode()
        metrics = Outputs(w, "trust-safety.seller-metrics")
        forty_orders_thirty_on_time(w, p, metrics)
        time.sleep(1.5)  # the first checkpoint ends: these inputs are committed
        for k in (1, 2):
            p.produce(w.topic("marketplace.shipment-scans"), key=key,
                      value=scan(ORDERS[29 + k], SHIP_BY + k * HOUR, f"late-{k}"))
        p.flush()
        metrics.until(lambda rs: any(r["late_dropoff_rate"]["numerator"] == 2 for r in rs))
        assert w.proc is not None
        w.proc.wait(timeout=30)  # the second checkpoint: half written, then the exit
        assert "failpoint checkpoint-partial" in w.log.read_text(errors="replace")

        w.env.pop("WARDEN_FAILPOINT")
        w.start()
        p.produce(w.topic("marketplace.shipment-scans"), key=key,
                  value=scan(ORDERS[32], SHIP_BY + 3 * HOUR, "late-3"))
        p.flush()
        latest = metrics.until(lambda rs: any(r["late_dropoff_rate"]["numerator"] == 3 for r in rs))
        figure = next(r for r in latest if r["late_dropoff_rate"]["numerator"] == 3)["late_dropoff_rate"]
        assert (figure["numerator"], figure["denominator"]) == (3, 40)
        log = w.log.read_text(errors="replace")
        assert "of a checkpoint that never ended" in log and "dropped" in log
    finally:
        w.stop()
