"""`warden bench`'s web section: how fast `warden web` serves the seller page and the
drill-down for a seller with 10,000 orders in the window, and what that seller's view
costs in Redis. The view is made by the decision core and written exactly as a worker
writes it (agents.views); the pages are asked over keep-alive HTTP, one at a time."""

from __future__ import annotations

import http.client
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from agents.views import WRITE_VIEWS, view_detail
from rules.effects import DecideAction, PublishMetrics
from rules.policy import load_policy
from rules.units import DAY_MS as DAY
from rules.units import HOUR_MS as HOUR
from schemas import compact_json
from schemas.codec import Codec
from stack.embedded import free_port, start_web, stop, wait_healthy
from streams.contract.auth import issue
from streams.contract.view_keys import ViewKeys
from tables.engine import Engine

SELLER = "seller-bench-web"
SECRET = "warden-bench-web-" + "b" * 32


def _history(orders: int, now: int) -> list[tuple[str, dict[str, Any]]]:
    """`orders` orders over the last 29 days (and as many over the 60 before, for the trend):
    5 % shipped late, 3 % cancelled by the seller, 2 % refunded as flawed, ratings of all
    stars; each with its scans."""
    events: list[tuple[str, dict[str, Any]]] = []
    span = 89 * DAY
    total = orders * 3
    for i in range(total):
        placed = now - span + (i * span) // total
        oid = f"o{i}"
        events.append(("OrderPlaced", dict(
            event_id=f"e-{oid}", order_id=oid, seller_id=SELLER, buyer_id=f"b{i % 3000}", show_id=f"show-{i // 40}",
            amount_cents=1500, currency="USD", placed_at=placed, ship_by=placed + 2 * DAY)))
        if i % 33 == 0:
            events.append(("OrderCancelled", dict(event_id=f"c-{oid}", order_id=oid, seller_id=SELLER,
                                                  initiated_by="SELLER", reason="stock", cancelled_at=placed + HOUR)))
            continue
        scanned = placed + (3 * DAY if i % 20 == 0 else 6 * HOUR)
        for kind, at in (("ACCEPTED", scanned), ("DELIVERED", placed + 4 * DAY)):
            if at < now:
                events.append(("ShipmentScan", dict(
                    event_id=f"{kind}-{oid}", shipment_id=f"sh-{oid}", order_ids=[oid], seller_id=SELLER,
                    carrier="ups", tracking_number="1z", scan_type=kind, carrier_fault=False, scanned_at=at)))
        if i % 50 == 0 and placed + 5 * DAY < now:
            events.append(("RefundIssued", dict(
                event_id=f"r-{oid}", refund_id=f"r-{oid}", order_id=oid, seller_id=SELLER,
                reason=("DAMAGED", "WRONG_ITEM", "MISSING_ITEM")[i % 3], amount_cents=1500,
                refunded_at=placed + 5 * DAY)))
        if i % 3 == 0 and placed + 5 * DAY < now:
            events.append(("RatingSubmitted", dict(
                event_id=f"rt-{oid}", rating_id=f"rt-{oid}", order_id=oid, seller_id=SELLER, buyer_id=f"b{i % 3000}",
                stars=1 + i % 5, show_id=None, rated_at=placed + 5 * DAY)))
    events.sort(key=_event_time)
    return events


def _event_time(event: tuple[str, dict[str, Any]]) -> int:
    record = event[1]
    for name in ("placed_at", "scanned_at", "cancelled_at", "refunded_at", "rated_at"):
        if name in record:
            return int(record[name])
    return 0


def _write_view(redis_url: str, prefix: str, policy_path: str, orders: int, progress: Any) -> tuple[int, int]:
    """Run the history through the core and write the seller's view as a worker does; return
    (orders in the window, view bytes in Redis)."""
    import redis

    engine = Engine(load_policy(policy_path), clock="event")
    now = (int(time.time() * 1000) // DAY - 1) * DAY
    last: PublishMetrics | None = None
    days: dict[str, Any] = {}
    actions: dict[str, str] = {}
    events = _history(orders, now)
    for n, (name, record) in enumerate(events):
        for effect in engine.process(0, name, record):
            if isinstance(effect, PublishMetrics):
                last = effect
                days[effect.evidence.day] = effect.evidence  # type: ignore[attr-defined]
            elif isinstance(effect, DecideAction):
                actions[effect.record["action_id"]] = compact_json.dumps(effect.record)
        if n % 20_000 == 0:
            progress(f"web: the core on a seller's {len(events):,} events ({n:,})")
    assert last is not None
    keys = ViewKeys(prefix)
    client = redis.Redis.from_url(redis_url)
    value = Codec().encode("SellerMetrics", last.record, f"{prefix}trust-safety.seller-metrics")
    of_orders, detail = view_detail(SELLER, last.evidence, None, set())
    args: list[Any] = [value, detail, len(days)]
    for day, of_day in sorted(days.items()):
        args += (day, compact_json.dumps(of_day.daily()))
    args += of_orders
    client.register_script(WRITE_VIEWS)(keys=[keys.metrics(SELLER), keys.daily(SELLER), keys.orders(SELLER)],
                                        args=args)
    if actions:
        client.hset(keys.actions(SELLER), mapping=actions)  # type: ignore[arg-type]
    size = sum(int(client.memory_usage(k) or 0) for k in (keys.metrics(SELLER), keys.daily(SELLER),
                                                             keys.orders(SELLER), keys.actions(SELLER)))
    in_window = last.record["cancellation_rate"]["denominator"]
    return in_window, size


def _timings(port: int, path: str, cookie: str, requests: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": f"warden_session={cookie}"})
            response = conn.getresponse()
            body = response.read()
            out.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
    finally:
        conn.close()
    return out


def section_web(report: Any, quick: bool, workdir: Path, progress: Any) -> None:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    policy_path = os.environ.get("WARDEN_POLICY", str(Path(__file__).resolve().parent.parent / "rules/policy.yaml"))
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    orders = int(os.environ.get("WARDEN_BENCH_WEB_ORDERS", "10000"))  # in the seller's window
    in_window, size = _write_view(redis_url, prefix, policy_path, orders, progress)
    port = free_port()
    env = dict(os.environ, WARDEN_TOPIC_PREFIX=prefix, WARDEN_UI_PORT=str(port), WARDEN_AUTH_SECRET=SECRET,
               REDIS_URL=redis_url, WARDEN_POLICY=policy_path, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    log = workdir / "web.log"
    workdir.mkdir(parents=True, exist_ok=True)
    proc = start_web(env, log)
    try:
        wait_healthy(port, proc, timeout=30, log_path=log, name="web service")
        cookie = issue(SECRET, SELLER, "seller", SELLER, 3600)
        requests = 100 if quick else 400
        pages = (("seller page", f"/sellers/{SELLER}"),
                 ("drill-down (late dropoff)", f"/sellers/{SELLER}/metrics/late_dropoff_rate"),
                 ("drill-down (flawed items)", f"/sellers/{SELLER}/metrics/flawed_item_rate"))
        for name, path in pages:
            _timings(port, path, cookie, 10)  # warm
            progress(f"web: {name}, {requests} requests")
            times = sorted(_timings(port, path, cookie, requests))
            p50 = statistics.median(times)
            p95 = times[int(len(times) * 0.95) - 1]
            report.add("web", f"{name} p50", round(p50, 2), "ms", f"{requests} requests, one at a time")
            report.add("web", f"{name} p95", round(p95, 2), "ms", "target <= 100 ms")
    finally:
        stop(proc)
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = ViewKeys(prefix)
        client.delete(keys.metrics(SELLER), keys.daily(SELLER), keys.actions(SELLER))
    report.add("web", "orders in the seller's window", in_window, "", f"{orders * 3:,} orders over 89 days "
               "(WARDEN_BENCH_WEB_ORDERS sets the window's)")
    report.add("web", "view bytes per seller (Redis)", size, "B",
               "record + detail (<= 50 orders per metric with facts) + 90 days + actions")
