"""The review console end to end: real workers propose suspensions from late shipments on
Tansu, `warden web` serves the queue, reviewers in Debian's headless Chromium claim,
read the evidence and decide; the decisions go through Kafka and come back as statuses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.codec import Codec
from tests.conftest import ROOT, WebService, Worker, shot, token, wait_for
from tests.support.kafka import consume_until, producer
from tests.support.shippers import late_shipper
from tests.support.web import http

pytestmark = pytest.mark.integration
codec = Codec()
HOUR, DAY = 3_600_000, 86_400_000
T0 = (int(time.time() * 1000) // DAY - 60) * DAY + 10 * HOUR
ELDER, YOUNGER, CLOCK = "late-elder", "late-younger", "clock-mover"
CLAIM_SECONDS = 6


def policy_file(tmp: Path) -> Path:
    """The default policy without the confidence bound on late shipments (the crossing is
    known: the 2nd late order of 40), and claims that lapse after a few seconds."""
    doc = yaml.safe_load((ROOT / "rules/policy.yaml").read_text())
    del doc["metrics"]["late_dropoff_rate"]["min_confidence"]
    doc["review"]["claim_minutes"] = CLAIM_SECONDS / 60
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def clock_order(at: int, n: int) -> tuple[str, bytes]:
    return "marketplace.orders", codec.encode("OrderPlaced", dict(
        event_id=f"ev-clock-{n}", order_id=f"clock-{n}", seller_id=CLOCK, buyer_id="b", show_id=None,
        amount_cents=100, currency="USD", placed_at=at, ship_by=None))


def decoded(broker: str, topic: str, check: Any, timeout: float = 60) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def done(messages: list[Any]) -> bool:
        found[:] = [codec.decode(m.value())[1] for m in messages]
        return bool(check(found))

    try:
        consume_until(broker, topic, done, timeout=timeout)
    except AssertionError as exc:
        seen = [(r.get("seller_id"), r.get("action"), r.get("status"), r.get("template")) for r in found]
        raise AssertionError(f"{exc}: {seen}") from None
    return found


@pytest.fixture(scope="module")
def console(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("review")
    worker = Worker(broker, tmp, WARDEN_PARTITIONS="1", WARDEN_TICK_INTERVAL="0.2",
                    WARDEN_POLICY=str(policy_file(tmp)))
    web = WebService(worker, tmp)
    try:
        worker.start()
        web.start()
        p = producer(broker)
        enforcements = worker.topic("trust-safety.enforcements")

        def kinds(rs: list[dict[str, Any]], action: str) -> set[str]:
            return {r["seller_id"] for r in rs if r["action"] == action}

        for seller, start in ((ELDER, T0), (YOUNGER, T0 + DAY)):
            for topic, value in late_shipper(seller, start):
                p.produce(worker.topic(topic), key=seller.encode(), value=value)
        p.flush(30)
        decoded(broker, enforcements, lambda rs: kinds(rs, "WARNING") == {ELDER, YOUNGER})
        # the warnings came at ship_by + 2 h; 14 days on, still BELOW: the elder's suspension,
        # and a day later the younger's (each step once the one before is out: the stream's
        # clock moves only forward)
        for n, (at, seller) in enumerate(((T0 + 2 * DAY + 2 * HOUR + 14 * DAY + 60_000, ELDER),
                                          (T0 + 3 * DAY + 2 * HOUR + 14 * DAY + 60_000, YOUNGER))):
            topic, value = clock_order(at, n)
            p.produce(worker.topic(topic), key=CLOCK.encode(), value=value)
            p.flush(30)
            actions = decoded(broker, enforcements, lambda rs, who=seller: who in kinds(rs, "SUSPENSION"))
        suspensions = {r["seller_id"]: r for r in actions if r["action"] == "SUSPENSION"}
        yield {"worker": worker, "web": web, "broker": broker, "suspensions": suspensions}
    finally:
        web.stop()
        worker.stop()





def signed_in(browser: Any, web: WebService, role: str, sub: str | None = None, seller_id: str | None = None) -> Any:
    from streams.contract.auth import issue
    from tests.conftest import AUTH_SECRET

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(f"{web.url}/login?token={issue(AUTH_SECRET, sub or seller_id or role, role, seller_id, 600)}")
    return page








def decisions_for(console: dict[str, Any], action_id: str, count: int) -> list[dict[str, Any]]:
    topic = console["worker"].topic("trust-safety.review-decisions")
    return [r for r in decoded(console["broker"], topic, lambda rs: sum(r["action_id"] == action_id for r in rs)
                               >= count) if r["action_id"] == action_id]


def test_a_proposed_suspension_is_queued_claimed_read_and_approved(console: dict[str, Any], browser: Any) -> None:
    web, worker, broker = console["web"], console["worker"], console["broker"]
    elder, younger = console["suspensions"][ELDER], console["suspensions"][YOUNGER]
    page = signed_in(browser, web, "reviewer", "reviewer-1")
    order = wait_for(lambda: _queue(page, web), "both cases in the queue")
    assert order.index(elder["action_id"]) < order.index(younger["action_id"])
    assert "2" in page.locator('.backlog li[data-kind="SUSPENSION"] .count').inner_text()
    shot(page, "review-queue")
    page.locator(f'li.case[data-action-id="{elder["action_id"]}"] a').click()
    page.locator("button.claim").click()
    assert "The case is yours" in page.locator("#notice").inner_text()
    assert "reviewer-1" in page.locator("dd.holder").inner_text()
    shown = page.locator("tr.order").evaluate_all("rows => rows.map(r => r.dataset.orderId)")
    assert shown == elder["evidence_order_ids"] and len(shown) == 10
    assert "buyer-30" in page.locator("table.evidence").inner_text()
    page.locator('input[value="APPROVE"]').check()
    page.locator("#note").fill("Ten late drop-offs in one week; <b>no</b> carrier fault claimed.")
    with page.expect_navigation():  # the decision's page loaded before the person reloads it
        page.locator("form.decide button").click()
    wait_for(lambda: page.reload() or page.locator(".decision-state.applied").count() == 1, "applied")
    shot(page, "review-case-applied")
    sent = decisions_for(console, elder["action_id"], 1)
    assert len(sent) == 1 and sent[0]["decision"] == "APPROVE" and sent[0]["reviewer_id"] == "reviewer-1"
    actions = decoded(broker, worker.topic("trust-safety.enforcements"),
                      lambda rs: any(r["action_id"] == elder["action_id"] and r["status"] == "APPROVED" for r in rs))
    assert any(r["status"] == "APPROVED" and r["caused_by"] == sent[0]["event_id"] for r in actions)
    notes = decoded(broker, worker.topic("trust-safety.notifications"),
                    lambda rs: any(r["template"] == "suspension_approved" for r in rs))
    assert [n["seller_id"] for n in notes if n["template"] == "suspension_approved"] == [ELDER]
    seller = signed_in(browser, web, "seller", seller_id=ELDER)
    assert "Selling suspended" in seller.locator(f'li.action[data-action-id="{elder["action_id"]}"]').inner_text()
    # the case's timeline names who decided (the page reads the actions and the timeline
    # apart: a load between the worker's two writes shows the one without the other)
    approved = page.locator('.timeline li[data-status="APPROVED"]')
    wait_for(lambda: page.reload() or approved.count() == 1, "the approval in the case's timeline")
    assert "by reviewer-1" in approved.inner_text()


def _queue(page: Any, web: WebService) -> list[str] | None:
    page.goto(f"{web.url}/review")
    ids = page.locator("li.case").evaluate_all("cs => cs.map(c => c.dataset.actionId)")
    return ids if len(ids) >= 2 else None


def test_a_held_case_cannot_be_taken_or_decided_by_another_until_the_claim_lapses(console, browser) -> None:
    web = console["web"]
    younger = console["suspensions"][YOUNGER]["action_id"]
    first = signed_in(browser, web, "reviewer", "reviewer-1")
    first.goto(f"{web.url}/review/{younger}")
    first.locator("button.claim").click()
    claimed_at = time.monotonic()
    second = signed_in(browser, web, "reviewer", "reviewer-2")
    second.goto(f"{web.url}/review")
    assert "held by reviewer-1" in second.locator(f'li.case[data-action-id="{younger}"]').inner_text()
    second.goto(f"{web.url}/review/{younger}")
    second.locator("button.claim").click()
    assert "reviewer-1 holds this case" in second.locator("#case-error").inner_text()
    second.goto(f"{web.url}/review/{younger}")
    second.locator('input[value="REJECT"]').check()
    second.locator("#note").fill("not late")
    second.locator("form.decide button").click()
    assert "reviewer-1 holds this case" in second.locator("#case-error").inner_text()
    status, body = http(f"{web.url}/api/review/{younger}/claim", "POST", _bearer("reviewer", "reviewer-2"))
    assert status == 409 and "reviewer-1" in body
    time.sleep(max(0.0, CLAIM_SECONDS + 0.5 - (time.monotonic() - claimed_at)))
    status, body = http(f"{web.url}/api/review/{younger}/claim", "POST", _bearer("reviewer", "reviewer-2"))
    assert status == 200 and json.loads(body)["holder"] == "reviewer-2"


def _bearer(role: str, sub: str) -> dict[str, str]:
    from streams.contract.auth import issue
    from tests.conftest import AUTH_SECRET

    return {"Authorization": f"Bearer {issue(AUTH_SECRET, sub, role, None, 600)}", "Content-Type": "application/json"}


def test_an_appeal_from_the_sellers_page_is_granted_and_the_seller_reinstated(console, browser) -> None:
    web, worker, broker = console["web"], console["worker"], console["broker"]
    elder = console["suspensions"][ELDER]["action_id"]
    seller = signed_in(browser, web, "seller", seller_id=ELDER)
    wait_for(lambda: seller.reload() or seller.locator(f'li.action[data-action-id="{elder}"] summary').count(),
             "the approved suspension to be appealable")
    action = seller.locator(f'li.action[data-action-id="{elder}"]')
    action.locator("summary").click()
    action.locator("textarea").fill("My carrier <lost> the scans; receipts attached.")
    with seller.expect_navigation():
        action.locator("button[type=submit]").click()
    reviewer = signed_in(browser, web, "reviewer", "reviewer-3")
    wait_for(lambda: reviewer.goto(f"{web.url}/review?kind=APPEAL") and
             reviewer.locator(f'li.case[data-action-id="{elder}"]').count(), "the appeal in the queue")
    reviewer.goto(f"{web.url}/review/{elder}")
    assert "My carrier <lost> the scans" in reviewer.locator(".appeals .message").inner_text()
    html = reviewer.content()
    assert "&lt;lost&gt;" in html and "<lost>" not in html  # the seller's text, escaped
    reviewer.locator('input[value="APPROVE"]').check()
    reviewer.locator("#note").fill("Carrier confirmed the scans were lost.")
    reviewer.locator("form.decide button").click()
    actions = decoded(broker, worker.topic("trust-safety.enforcements"),
                      lambda rs: any(r["action"] == "REINSTATEMENT" and r["seller_id"] == ELDER for r in rs))
    assert any(r["action_id"] == elder and r["status"] == "OVERTURNED" for r in actions)
    notes = decoded(broker, worker.topic("trust-safety.notifications"),
                    lambda rs: any(r["template"] == "reinstatement" and r["seller_id"] == ELDER for r in rs))
    assert {"appeal_granted", "reinstatement"} <= {n["template"] for n in notes if n["seller_id"] == ELDER}
    wait_for(lambda: seller.reload() or "Selling restored" in seller.inner_text("#actions"), "the seller restored")
    shot(seller, "seller-reinstated")


def test_rights_on_the_review_console(console, browser) -> None:
    web = console["web"]
    younger = console["suspensions"][YOUNGER]["action_id"]
    seller = signed_in(browser, web, "seller", seller_id=YOUNGER)
    assert seller.goto(f"{web.url}/review").status == 403
    assert seller.goto(f"{web.url}/review/{younger}").status == 403
    csrf = seller.locator('form.signout input[name="csrf_token"]').get_attribute("value")
    posted = seller.request.post(f"{web.url}/review/{younger}/decision", max_redirects=0,
                                 form={"csrf_token": csrf, "decision": "REJECT", "note": "mine"})
    assert posted.status == 403
    status, _ = http(f"{web.url}/api/review/{younger}/decision", "POST",
                     {**_seller_bearer(YOUNGER), "Content-Type": "application/json"},
                     b'{"decision": "REJECT", "note": "mine"}')
    assert status == 403
    reviewer = signed_in(browser, web, "reviewer", "reviewer-4")
    posted = reviewer.request.post(f"{web.url}/review/{younger}/reassign", max_redirects=0,
                                   form={"csrf_token": _csrf(reviewer), "to": "reviewer-4"})
    assert posted.status == 403
    assert http(f"{web.url}/api/review/{younger}/reassign", "POST", _bearer("reviewer", "reviewer-4"),
                b'{"to": "reviewer-4"}')[0] == 403
    posted = reviewer.request.post(f"{web.url}/review/{younger}/claim", max_redirects=0, form={"x": "no csrf"})
    assert posted.status == 403
    lead = signed_in(browser, web, "lead", "lead-1")
    lead.goto(f"{web.url}/review/{younger}")
    lead.locator("#to").fill("reviewer-5")
    lead.locator("form.reassign button").click()
    assert "reviewer-5" in lead.locator("dd.holder").inner_text()
    lead.set_viewport_size({"width": 375, "height": 800})  # the console on a phone: no sideways scroll
    for path in ("/review", f"/review/{younger}", "/review/audit"):
        lead.goto(web.url + path)
        assert lead.evaluate("document.documentElement.scrollWidth") <= 375, path
    shot(lead, "review-case-375")


def _seller_bearer(seller_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('seller', seller_id)}"}


def _csrf(page: Any) -> str:
    return page.locator('form.signout input[name="csrf_token"]').get_attribute("value")


def test_a_double_submit_publishes_one_decision_and_the_audit_log_shows_every_step(console, browser) -> None:
    web, broker = console["web"], console["broker"]
    younger = console["suspensions"][YOUNGER]["action_id"]
    lead = signed_in(browser, web, "lead", "lead-1")
    lead.goto(f"{web.url}/review/{younger}")
    lead.locator("#to").fill("lead-1")  # held by reviewer-5 since the last test: the lead takes it
    lead.locator("form.reassign button").click()
    assert "lead-1" in lead.locator("dd.holder").inner_text()
    form = {"csrf_token": _csrf(lead), "decision": "REJECT", "note": "One shipment week, carrier strike."}
    first = lead.request.post(f"{web.url}/review/{younger}/decision", form=form, max_redirects=0)
    second = lead.request.post(f"{web.url}/review/{younger}/decision", form=form, max_redirects=0)
    assert first.status == 303 and second.status in (303, 409)
    time.sleep(2.0)
    assert len(decisions_for(console, younger, 1)) == 1
    wait_for(lambda: lead.goto(f"{web.url}/review/{younger}") and lead.locator(".decision-state.applied").count(),
             "the rejection applied")
    # a decision on an action no longer pending: 409, nothing published
    status, body = http(f"{web.url}/api/review/{younger}/decision", "POST", _bearer("reviewer", "reviewer-9"),
                        b'{"decision": "APPROVE", "note": "late"}')
    assert status == 409 and "no longer pending" in body
    assert len(decisions_for(console, younger, 1)) == 1
    lead.goto(f"{web.url}/review/audit")
    steps = lead.locator("table.audit-log tr[data-step]").evaluate_all(
        "rows => rows.map(r => [r.dataset.step, r.cells[1].innerText, r.cells[3].innerText])")
    mine = [(step, who) for step, who, case in reversed(steps) if case == younger]
    assert ("CLAIM", "reviewer-1 (reviewer)") in mine and ("REASSIGN", "lead-1 (lead)") in mine
    assert mine[-1] == ("DECIDE", "lead-1 (lead)") and [s for s, _ in mine].count("DECIDE") == 1
    shot(lead, "review-audit")
    audit = decoded(broker, console["worker"].topic("trust-safety.review-audit"),
                    lambda rs: any(r["step"] == "DECIDE" and r["action_id"] == younger for r in rs))
    assert [r["step"] for r in audit if r["action_id"] == younger] == [s for s, _ in mine]
    # the workers' backlog figures
    status, text = http(f"http://127.0.0.1:{console['worker'].port}/metrics")
    assert 'warden_review_decisions_total{kind="SUSPENSION",outcome="REJECTED"} 1.0' in text
    assert 'warden_pending_reviews{kind="SUSPENSION"} 0.0' in text
