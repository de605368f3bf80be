"""A seller's history through the real broker: SellerMetrics on the topic and the HTTP API,
a deadline passing with no event about the order, and the order leaving the window."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from rules.calendar import ShipByCalendar
from schemas.codec import Codec
from streams.contract.auth import issue
from tests.conftest import AUTH_SECRET, api_headers
from tests.support.events import DAY, HOUR
from tests.support.kafka import consume_until, producer

pytestmark = pytest.mark.integration
codec = Codec()
# Times well in the past (inputs may not be ahead of the wall clock): a Wednesday noon, UTC.
_monday = (int(time.time() * 1000) // DAY - 60) // 7 * 7 * DAY + 4 * DAY  # 1970-01-05 was a Monday
WED = _monday + 2 * DAY + 12 * HOUR
SHIP_BY = ShipByCalendar("UTC").ship_by(WED)
SELLER = "seller-history"
OTHER = "seller-clock"


def _order(seller: str, oid: str, placed: int, buyer: str) -> bytes:
    return codec.encode("OrderPlaced", dict(
        event_id=f"ev-{oid}", order_id=oid, seller_id=seller, buyer_id=buyer, show_id="show-1",
        amount_cents=1500, currency="USD", placed_at=placed, ship_by=None))


def _scan(oid: str, when: int) -> bytes:
    return codec.encode("ShipmentScan", dict(
        event_id=f"ev-scan-{oid}", shipment_id=f"sh-{oid}", order_ids=[oid], seller_id=SELLER, carrier="ups",
        tracking_number="1z", scan_type="ACCEPTED", carrier_fault=False, scanned_at=when))


def _cancel(oid: str, when: int) -> bytes:
    return codec.encode("OrderCancelled", dict(
        event_id=f"ev-cancel-{oid}", order_id=oid, seller_id=SELLER, initiated_by="SELLER",
        reason="out of stock", cancelled_at=when))


def _latest(messages: list[Any], seller: str) -> dict[str, Any] | None:
    mine = [m for m in messages if m.key() == seller.encode()]
    return codec.decode(mine[-1].value())[1] if mine else None


def _wait_for(w: Any, seller: str, check: Any, timeout: float = 60) -> dict[str, Any]:
    """The seller's latest SellerMetrics once `check(record)` holds."""
    topic = w.topic("trust-safety.seller-metrics")
    found: dict[str, Any] = {}
    seen: list[Any] = []

    def done(messages: list[Any]) -> bool:
        record = _latest(messages, seller)
        seen[:] = [record]
        if record is not None and check(record):
            found.update(record)
            return True
        return False

    try:
        consume_until(w.env["KAFKA_BOOTSTRAP_SERVERS"], topic, done, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the latest record was {seen}") from None
    return found


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers=api_headers() if headers is None else headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _api_metrics(port: int, seller: str, check: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, doc = _get(port, f"/api/sellers/{seller}/metrics")
        if status == 200 and check(doc):
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"API never showed the expected metrics: {status} {doc}")
        time.sleep(0.2)


def test_history_deadline_and_window_exit(worker_factory: type) -> None:
    w = worker_factory.start(WARDEN_PARTITIONS="1", WARDEN_TICK_INTERVAL="0.2")
    p = producer(w.env["KAFKA_BOOTSTRAP_SERVERS"])
    orders, scans = w.topic("marketplace.orders"), w.topic("marketplace.shipment-scans")
    cancels = w.topic("marketplace.cancellations")
    # 25 orders on Wednesday (ship_by Friday night): 20 on time, 2 late, 2 never scanned,
    # 1 cancelled by the seller before ship_by.
    ids = [f"o{i:02d}" for i in range(25)]
    for i, oid in enumerate(ids):
        p.produce(orders, key=SELLER.encode(), value=_order(SELLER, oid, WED + i * 60_000, f"b{i}"))
    for oid in ids[:20]:
        p.produce(scans, key=SELLER.encode(), value=_scan(oid, SHIP_BY - 6 * HOUR))
    for oid in ids[20:22]:
        p.produce(scans, key=SELLER.encode(), value=_scan(oid, SHIP_BY + 2 * HOUR))
    p.produce(cancels, key=SELLER.encode(), value=_cancel(ids[24], WED + 5 * HOUR))
    p.flush()

    first = _wait_for(w, SELLER, lambda r: r["late_dropoff_rate"]["numerator"] == 2
                      and r["cancellation_rate"]["numerator"] == 1)
    assert first["cancellation_rate"] == {"numerator": 1, "denominator": 25, "rate": 0.04, "standing": "BELOW",
                                          "threshold_below": 0.025, "threshold_exceeds": 0.01}
    late = first["late_dropoff_rate"]
    # ship_by has passed (the late scans' time), the scan grace of the 2 unscanned ones has not
    assert (late["numerator"], late["denominator"]) == (2, 24)
    assert late["rate"] == pytest.approx(2 / 24)
    assert late["standing"] == "BELOW"
    assert first["unfulfilled_rate"]["denominator"] == 0
    assert first["window_days"] == 30 and first["policy_version"] == "2026.11.1"
    doc = _api_metrics(w.port, SELLER, lambda d: d["late_dropoff_rate"]["numerator"] == 2)
    assert sorted(doc["evidence_order_ids"]["late_dropoff_rate"]) == ids[20:22]
    assert doc["evidence_order_ids"]["cancellation_rate"] == [ids[24]]

    # Another seller's order moves the partition's clock past ship_by + 24 h: with no event
    # about them, the 2 unscanned orders become late.
    p.produce(orders, key=OTHER.encode(), value=_order(OTHER, "x1", SHIP_BY + 25 * HOUR, "bx"))
    p.flush()
    second = _wait_for(w, SELLER, lambda r: r["late_dropoff_rate"]["numerator"] == 4)
    assert second["late_dropoff_rate"]["denominator"] == 24
    assert second["as_of"] == SHIP_BY + 25 * HOUR
    doc = _api_metrics(w.port, SELLER, lambda d: d["late_dropoff_rate"]["numerator"] == 4)
    assert sorted(doc["evidence_order_ids"]["late_dropoff_rate"]) == ids[20:24]

    # ... past ship_by + 3 days: those 2 are unfulfilled too.
    p.produce(orders, key=OTHER.encode(), value=_order(OTHER, "x2", SHIP_BY + 3 * DAY + HOUR, "bx"))
    p.flush()
    third = _wait_for(w, SELLER, lambda r: r["unfulfilled_rate"]["denominator"] == 24)
    assert third["unfulfilled_rate"]["numerator"] == 2

    # ... and 30 days on, every order has left the window: all figures are back to zero.
    p.produce(orders, key=OTHER.encode(), value=_order(OTHER, "x3", SHIP_BY + 34 * DAY, "bx"))
    p.flush()
    last = _wait_for(w, SELLER, lambda r: r["as_of"] == SHIP_BY + 34 * DAY)
    for metric in ("cancellation_rate", "late_dropoff_rate", "unfulfilled_rate", "flawed_item_rate",
                   "low_rating_rate"):
        assert last[metric]["numerator"] == last[metric]["denominator"] == 0, metric
        assert last[metric]["rate"] is None and last[metric]["standing"] == "INSUFFICIENT_DATA"

    status, body = _get(w.port, "/api/sellers/nobody-here/metrics")
    assert status == 404 and "nobody-here" in body["error"]

    # Sign-in (CONTRACT §9): the seller reads their own figures; another seller, no token,
    # an expired or a forged one do not. /healthz and /metrics stay open.
    path = f"/api/sellers/{SELLER}/metrics"
    assert _get(w.port, path, api_headers("seller", SELLER))[0] == 200
    assert _get(w.port, f"/api/sellers/{SELLER}/actions", api_headers("seller", SELLER))[0] == 200
    status, body = _get(w.port, path, api_headers("seller", OTHER))
    assert status == 403 and SELLER in body["error"]
    assert _get(w.port, f"/api/sellers/{SELLER}/actions", api_headers("seller", OTHER))[0] == 403
    assert _get(w.port, path, {})[0] == 401
    expired = issue(AUTH_SECRET, SELLER, "seller", SELLER, ttl_s=60, now=time.time() - 3600)
    assert _get(w.port, path, {"Authorization": f"Bearer {expired}"})[0] == 401
    forged = api_headers("admin")["Authorization"][:-4] + "AAAA"
    assert _get(w.port, path, {"Authorization": forged})[0] == 401
    with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/healthz", timeout=5) as r:
        assert r.status == 200
