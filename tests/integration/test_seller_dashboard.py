"""The seller dashboard end to end: a real worker and `warden web` on the real broker and
Redis, pages in Debian's headless Chromium (Playwright, launched with that executable;
never `playwright install`). The figures on the pages are checked against the latest
SellerMetrics on the topic and against the decision core run on the same history."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rules.effects import PublishMetrics
from rules.metrics import FLAWED_REASONS, METRICS
from rules.policy import load_policy
from schemas.codec import Codec
from stack.embedded import free_port, port_open, start_web, stop
from tables.engine import Engine
from tests.conftest import ROOT, WebService, Worker, run_cli, shot, token
from tests.support.kafka import consume_until, producer
from tests.support.web import http

pytestmark = pytest.mark.integration
codec = Codec()
DAY = 86_400_000
HOUR = 3_600_000
SELLER = "dash-seller"
OTHER = "dash-other"
# Event time: the history ends two days before today (inputs may not be ahead of the wall clock)
NOW = (int(time.time() * 1000) // DAY - 2) * DAY + 12 * HOUR
START = NOW - 88 * DAY
LATE_DAY = 80
CANCELLED_DAYS = (70, 75, 82)
FLAWED = {5: "DAMAGED", 20: "MISSING_ITEM", 35: "DAMAGED", 50: "WRONG_ITEM", 65: "MISSING_ITEM", 76: "MISSING_ITEM",
          80: "COUNTERFEIT"}
TOPIC = {"OrderPlaced": "marketplace.orders", "ShipmentScan": "marketplace.shipment-scans",
         "OrderCancelled": "marketplace.cancellations", "RefundIssued": "marketplace.refunds"}


def history(seller: str, days: int = 88) -> list[tuple[int, str, dict[str, Any]]]:
    """(time, record name, record): an order a day, one late, three cancelled by the seller,
    flawed refunds of several reasons over three months."""
    events: list[tuple[int, str, dict[str, Any]]] = []
    for d in range(days):
        placed = START + d * DAY + 10 * HOUR
        oid = f"{seller}-o{d:03d}"
        events.append((placed, "OrderPlaced", dict(
            event_id=f"ev-{oid}", order_id=oid, seller_id=seller, buyer_id=f"buyer-{d}", show_id=f"show-{d // 7}",
            amount_cents=2500, currency="USD", placed_at=placed, ship_by=placed + 2 * DAY)))
        if d in CANCELLED_DAYS:
            at = placed + 2 * HOUR
            events.append((at, "OrderCancelled", dict(event_id=f"ev-c-{oid}", order_id=oid, seller_id=seller,
                                                      initiated_by="SELLER", reason="out of stock", cancelled_at=at)))
            continue
        accepted = placed + (3 * DAY if d == LATE_DAY else HOUR)
        for kind, at in (("ACCEPTED", accepted), ("DELIVERED", placed + 4 * DAY)):
            if at <= NOW:
                events.append((at, "ShipmentScan", dict(
                    event_id=f"ev-{kind}-{oid}", shipment_id=f"sh-{oid}", order_ids=[oid], seller_id=seller,
                    carrier="ups", tracking_number=f"1z{d}", scan_type=kind, carrier_fault=False, scanned_at=at)))
        if d in FLAWED:
            at = placed + 5 * DAY
            events.append((at, "RefundIssued", dict(event_id=f"ev-r-{oid}", refund_id=f"r-{oid}", order_id=oid,
                                                    seller_id=seller, reason=FLAWED[d], amount_cents=2500,
                                                    refunded_at=at)))
    events.sort(key=lambda e: e[0])
    return events


def core_view(events: list[tuple[int, str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any], dict]:
    """The decision core on the same history: the seller's last record, its detail, and
    each day's latest figures (day -> [numerator, denominator] per metric)."""
    engine = Engine(load_policy(ROOT / "rules" / "policy.yaml"), clock="event")
    last: PublishMetrics | None = None
    days: dict[str, list[int]] = {}
    for _, name, record in events:
        for effect in engine.process(0, name, dict(record)):
            if isinstance(effect, PublishMetrics) and effect.seller_id == SELLER:
                last = effect
                days[effect.evidence.day] = effect.evidence.daily()  # type: ignore[attr-defined]
    assert last is not None
    return last.record, last.evidence.view(), days  # type: ignore[attr-defined]


def figures(record: dict[str, Any]) -> list[tuple[int, int]]:
    return [(record[m]["numerator"], record[m]["denominator"]) for m in METRICS]


def bearer(role: str, seller_id: str | None = None, ttl_s: float = 600) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, seller_id, ttl_s)}"}


@pytest.fixture(scope="module")
def stack(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("dashboard")
    worker = Worker(broker, tmp)
    web = WebService(worker, tmp)
    try:
        worker.start()
        web.start()
        yield from _fill(worker, web, broker)
    finally:
        web.stop()
        worker.stop()


def _fill(worker: Worker, web: WebService, broker: str) -> Iterator[dict[str, Any]]:
    """Publish both sellers' histories; wait until the view holds the core's final figures."""
    events = sorted(history(SELLER) + history(OTHER, days=40), key=lambda e: e[0])
    p = producer(broker)
    # a day at a time, each on the broker before the next: the producer sends each topic's
    # batches on its own, so a later day's refund could reach the broker (and the worker,
    # moving the partition's clock) before an earlier day's orders, and those orders would
    # then be dated that later day; the core below reads them in time order
    for i, (at, name, record) in enumerate(events):
        p.produce(worker.topic(TOPIC[name]), key=record["seller_id"].encode(), value=codec.encode(name, record))
        if i + 1 == len(events) or events[i + 1][0] // DAY != at // DAY:
            p.flush(30)
    mine = [e for e in events if e[2]["seller_id"] == SELLER]
    record, detail, days = core_view(mine)
    deadline = time.monotonic() + 90
    while True:  # the view holds the core's final figures
        status, body = http(f"{web.url}/api/sellers/{SELLER}/metrics", headers=bearer("service"))
        if status == 200 and figures(json.loads(body)) == figures(record):
            break
        assert time.monotonic() < deadline, f"the view never caught up: {status} {body} vs {record}"
        time.sleep(0.5)
    yield {"worker": worker, "web": web, "broker": broker, "record": record, "detail": detail, "days": days}





def seller_page(browser: Any, web: WebService, seller: str = SELLER, width: int = 1100) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{web.url}/login?token={token('seller', seller, 600)}")
    return page





def latest_metrics(stack: dict[str, Any]) -> dict[str, Any]:
    topic = stack["worker"].topic("trust-safety.seller-metrics")
    found: list[dict[str, Any]] = []

    def done(messages: list[Any]) -> bool:
        mine = [codec.decode(m.value())[1] for m in messages if m.key() == SELLER.encode()]
        if mine and figures(mine[-1]) == figures(stack["record"]):
            found.append(mine[-1])
            return True
        return False

    consume_until(stack["broker"], topic, done, timeout=30)
    return found[0]


def test_a_seller_signs_in_by_link_and_sees_five_tiles_equal_to_their_latest_figures(stack, browser) -> None:
    web = stack["web"]
    anonymous = browser.new_page()
    anonymous.goto(f"{web.url}/sellers/{SELLER}")
    assert "/signin" in anonymous.url and anonymous.locator("h1").inner_text() == "Sign in"
    shot(anonymous, "signin")
    page = seller_page(browser, web)
    assert page.url.endswith(f"/sellers/{SELLER}")
    published = latest_metrics(stack)
    tiles = page.locator("li.tile")
    assert tiles.count() == 5
    for metric in METRICS:
        tile = page.locator(f'li.tile[data-metric="{metric}"]')
        figure = published[metric]
        assert tile.get_attribute("data-standing") == figure["standing"]
        assert f"{figure['numerator']} of {figure['denominator']} orders" in tile.inner_text()
        rate = "n/a" if figure["rate"] is None else f"{figure['rate'] * 100:.1f}%"
        assert tile.locator(".value").inner_text() == rate
    late = page.locator('li.tile[data-metric="late_dropoff_rate"]')
    assert late.get_attribute("data-standing") in ("MEETS", "EXCEEDS") and "At risk" in late.inner_text()
    assert "Needs attention" in page.locator('li.tile[data-metric="cancellation_rate"]').inner_text()
    shot(page, "seller")


def test_the_drill_down_lists_exactly_the_orders_behind_the_figure_by_show(stack, browser) -> None:
    page = seller_page(browser, stack["web"])
    detail = stack["detail"]
    for metric in ("late_dropoff_rate", "cancellation_rate", "flawed_item_rate"):
        page.goto(f"{stack['web'].url}/sellers/{SELLER}/metrics/{metric}")
        shown = page.locator("tr.order").evaluate_all("rows => rows.map(r => r.dataset.orderId)")
        assert sorted(shown) == sorted(detail["evidence"][metric]) and shown
        for show in page.locator("div.show").all():
            show_id = show.get_attribute("data-show")
            for oid in show.locator("tr.order").evaluate_all("rows => rows.map(r => r.dataset.orderId)"):
                assert f"show-{int(oid[-3:]) // 7}" == show_id
    assert [r.split("-o")[1] for r in detail["evidence"]["late_dropoff_rate"]] == [f"{LATE_DAY:03d}"]
    # the 90-day chart: a point for each day with data, as the core published them
    page.goto(f"{stack['web'].url}/sellers/{SELLER}/metrics/late_dropoff_rate")
    drawn = set(page.locator("circle.point").evaluate_all("cs => cs.map(c => c.dataset.day)"))
    i = METRICS.index("late_dropoff_rate")
    status, body = http(f"{stack['web'].url}/api/sellers/{SELLER}/orders?metric=late_dropoff_rate",
                        headers=bearer("seller", SELLER))
    assert status == 200 and json.loads(body)["orders"][0]["first_scan_at"] is not None
    expected_days = {day for day, f in stack["days"].items() if f[2 * i + 1] > 0}
    assert drawn == expected_days and len(drawn) >= 60
    shot(page, "drill-down-late")
    # flawed items: counts by reason for each of the last three months, as the core has them
    page.goto(f"{stack['web'].url}/sellers/{SELLER}/metrics/flawed_item_rate")
    expected = stack["detail"]["flawed_monthly_by_reason"]
    assert len(expected) == 3
    for month, counts in expected.items():
        for reason in FLAWED_REASONS:
            cell = page.locator(f'td[data-month="{month}"][data-reason="{reason}"]')
            assert int(cell.inner_text()) == counts[reason]
    assert sum(sum(c.values()) for c in expected.values()) >= 3
    shot(page, "drill-down-flawed")


def test_an_appeal_from_the_page_reaches_the_topic_and_the_action_shows_appealed(stack, browser) -> None:
    web, worker = stack["web"], stack["worker"]
    page = seller_page(browser, web)
    warning = page.locator('li.action[data-status="ISSUED"]').filter(has_text="cancellation rate").first
    action_id = warning.get_attribute("data-action-id")
    # a message over the limit: the form says why, nothing is published
    warning.locator("summary").click()
    warning.locator("textarea").fill("x" * 2_001)
    warning.locator("button[type=submit]").click()
    assert "the limit is 2,000" in page.locator("#appeal-error").inner_text()
    warning = page.locator(f'li.action[data-action-id="{action_id}"]')
    message = "<script>alert('x')</script> The buyer asked me to cancel."
    warning.locator("textarea").fill(message)
    warning.locator("button[type=submit]").click()
    deadline = time.monotonic() + 30
    while page.locator(f'li.action[data-action-id="{action_id}"]').get_attribute("data-status") != "APPEALED":
        assert time.monotonic() < deadline, "the action never showed APPEALED"
        time.sleep(0.5)
        page.reload()
    assert "Your appeal is with our Trust" in page.locator(f'li.action[data-action-id="{action_id}"]').inner_text()
    shot(page, "seller-appealed")
    # a second appeal on the same action is refused and publishes nothing
    status, body = http(f"{web.url}/api/sellers/{SELLER}/appeals", "POST",
                        {**bearer("seller", SELLER), "Content-Type": "application/json"},
                        json.dumps({"action_id": action_id, "message": "again"}).encode())
    assert status == 409 and "already been appealed" in body
    appeals = consume_until(stack["broker"], worker.topic("trust-safety.appeals"), lambda ms: len(ms) >= 1, 30)
    time.sleep(1.0)
    appeals = consume_until(stack["broker"], worker.topic("trust-safety.appeals"), lambda ms: len(ms) >= 1, 30)
    assert len(appeals) == 1
    _, filed = codec.decode(appeals[0].value())
    assert filed["action_id"] == action_id and filed["message"] == message and filed["seller_id"] == SELLER


def test_rights_are_checked_on_every_page_and_route(stack, browser) -> None:
    web, worker = stack["web"], stack["worker"]
    api = f"{web.url}/api/sellers/{SELLER}/metrics"
    assert http(api)[0] == 401
    assert http(api, headers=bearer("seller", OTHER))[0] == 403
    assert http(api, headers=bearer("seller", SELLER))[0] == 200
    expired = {"Authorization": "Bearer " + _expired()}
    assert http(api, headers=expired)[0] == 401
    forged = {"Authorization": "Bearer " + _forged()}
    assert http(api, headers=forged)[0] == 401
    worker_api = f"http://127.0.0.1:{worker.port}/api/sellers/{SELLER}/metrics"  # the worker's own API
    assert http(worker_api)[0] == 401 and http(worker_api, headers=bearer("seller", OTHER))[0] == 403
    # pages: no sign-in -> the sign-in page; another seller's page -> 403
    status, _ = http(f"{web.url}/sellers/{SELLER}")
    assert status == 303
    page = seller_page(browser, web, OTHER)
    response = page.goto(f"{web.url}/sellers/{SELLER}")
    assert response.status == 403 and "may not see" in page.inner_text("main")
    response = page.goto(f"{web.url}/sellers/{SELLER}/metrics/late_dropoff_rate")
    assert response.status == 403
    # a form post without its CSRF token: 403, nothing published
    cookies = {c["name"]: c["value"] for c in seller_page(browser, web).context.cookies()}
    cookie = {"Cookie": f"warden_session={cookies['warden_session']}",
              "Content-Type": "application/x-www-form-urlencoded"}
    status, body = http(f"{web.url}/sellers/{SELLER}/appeals", "POST", cookie, b"action_id=x&message=hello")
    assert status == 403 and "CSRF" in body
    # a seller posting a review decision: 403, by API and by form
    status, _ = http(f"{web.url}/api/review/any-action/decision", "POST",
                     {**bearer("seller", SELLER), "Content-Type": "application/json"},
                     b'{"decision": "APPROVE", "note": "mine"}')
    assert status == 403
    mine = seller_page(browser, web)
    csrf = mine.locator('form.signout input[name="csrf_token"]').get_attribute("value")
    posted = mine.request.post(f"{web.url}/review/any-action/decision", max_redirects=0,
                               form={"csrf_token": csrf, "decision": "APPROVE", "note": "mine"})
    assert posted.status == 403 and "may not review" in posted.text()
    # unknown seller, unknown metric: 404 pages
    staff = seller_page(browser, web, SELLER)
    staff.goto(f"{web.url}/login?token={token('reviewer')}")
    assert staff.goto(f"{web.url}/sellers/nobody-here").status == 404
    assert "No such seller" in staff.inner_text("main")
    assert staff.goto(f"{web.url}/sellers/{SELLER}/metrics/happiness").status == 404
    shot(staff, "not-found")
    # without a secret, outside `warden up`: one clear line, exit 2
    for command in ("web", "worker"):
        result = run_cli(command, env={"WARDEN_AUTH_SECRET": ""}, timeout=60)
        assert result.returncode == 2 and "WARDEN_AUTH_SECRET is not set" in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _expired() -> str:
    from streams.contract.auth import issue
    from tests.conftest import AUTH_SECRET

    return issue(AUTH_SECRET, SELLER, "seller", SELLER, ttl_s=60, now=time.time() - 3600)


def _forged() -> str:
    from streams.contract.auth import issue

    return issue("another-secret-" + "z" * 40, SELLER, "seller", SELLER)


def test_at_375_px_the_pages_never_scroll_sideways(stack, browser) -> None:
    page = seller_page(browser, stack["web"], width=375)
    for path, name in ((f"/sellers/{SELLER}", "seller-375"),
                       (f"/sellers/{SELLER}/metrics/late_dropoff_rate", "drill-down-375"),
                       (f"/sellers/{SELLER}/metrics/flawed_item_rate", "flawed-375")):
        page.goto(stack["web"].url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
        shot(page, name)
    # by keyboard: the first tab stop skips to the content, the tiles are links
    page.goto(f"{stack['web'].url}/sellers/{SELLER}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"


def test_redis_away_is_a_503_page_and_the_service_recovers_by_itself(stack, browser, tmp_path: Path) -> None:
    port = free_port()
    web = WebService(stack["worker"], tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    web.proc = start_web(web.env, web.log)  # not waiting for /healthz: it is 503 while Redis is away
    redis = None
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", web.port):
            assert time.monotonic() < deadline and web.proc.poll() is None
            time.sleep(0.1)
        page = seller_page(browser, web)
        response = page.goto(f"{web.url}/sellers/{SELLER}")
        assert response.status == 503 and "Redis" in page.inner_text("main")
        shot(page, "unavailable")
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:  # the same process answers once Redis is back (this Redis holds no views: 404)
            response = page.goto(f"{web.url}/sellers/{SELLER}")
            if response.status == 404:
                break
            assert time.monotonic() < deadline, f"still {response.status}"
            time.sleep(0.5)
    finally:
        web.stop()
        if redis is not None:
            stop(redis)
