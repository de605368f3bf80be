"""The web service's pure parts: who sees which action, when an appeal is refused, the
sign-in helpers, the charts."""

from __future__ import annotations

import re

import pytest
from aiohttp import web

from streams.contract.auth import Identity
from streams.view_reader import SellerView
from web.charts import DayRate, daily_rate_svg, monthly_bars_svg
from web.pages import appeal_id_of, appeal_refusal, month_trend, seller_actions
from web.signin import csrf_token, safe_next

SECRET = "s" * 40


def action(kind: str, status: str, action_id: str = "act_1") -> dict:
    return {"action_id": action_id, "seller_id": "s1", "action": kind, "status": status, "decided_at": 1}


def test_a_seller_is_not_shown_proposals_under_review_or_rejected_but_staff_are() -> None:
    actions = [action("SUSPENSION", "PENDING_REVIEW", "a"), action("BAN", "REJECTED", "b"),
               action("WARNING", "ISSUED", "c"), action("SUSPENSION", "APPROVED", "d")]
    view = SellerView("s1", {}, {}, {}, actions)
    assert [a["action_id"] for a in seller_actions(view, Identity("s1", "seller", "s1"))] == ["c", "d"]
    assert len(seller_actions(view, Identity("r", "reviewer"))) == 4


@pytest.mark.parametrize(("act", "message", "why"), [
    (None, "hi", "no such action"),
    (action("WARNING", "APPEALED"), "hi", "already been appealed"),
    (action("WARNING", "UPHELD"), "hi", "already been appealed"),
    (action("SUSPENSION", "PENDING_REVIEW"), "hi", "not in force"),
    (action("SUSPENSION", "OVERTURNED"), "hi", "not in force"),
    (action("REINSTATEMENT", "ISSUED"), "hi", "not in force"),
    (action("WARNING", "ISSUED"), "   ", "message is required"),
    (action("WARNING", "ISSUED"), "x" * 2001, "the limit is 2,000"),
    (action("BAN", "APPROVED"), "x" * 2000, None),
    (action("WARNING", "ISSUED"), "it was the carrier", None),
])
def test_when_an_appeal_is_refused(act: dict | None, message: str, why: str | None) -> None:
    refusal = appeal_refusal(act, message)
    assert (refusal is None) if why is None else (why in refusal.lower())


def test_an_appeal_is_named_by_its_action_so_a_second_submission_is_the_same_appeal() -> None:
    assert appeal_id_of(action("WARNING", "ISSUED")) == appeal_id_of(action("WARNING", "ISSUED"))
    assert appeal_id_of(action("WARNING", "ISSUED", "x")) != appeal_id_of(action("WARNING", "ISSUED", "y"))


def test_the_month_over_month_sentence() -> None:
    months = ["2026-09", "2026-10", "2026-11"]
    assert "missing item doubled month over month (2 → 4)" in month_trend(months, [[0] * 4, [0, 0, 2, 0],
                                                                                    [0, 0, 4, 0]]).lower()
    assert month_trend(months, [[1, 0, 0, 0]] * 3) is None


@pytest.mark.parametrize(("target", "expected"), [
    ("/sellers/s1", "/sellers/s1"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
    ("/\\evil", "/"), ("", "/"), (None, "/")])
def test_sign_in_redirects_only_to_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target, "/") == expected


def test_the_csrf_token_is_bound_to_the_session_and_the_secret() -> None:
    assert csrf_token(SECRET, "session-a") == csrf_token(SECRET, "session-a")
    assert csrf_token(SECRET, "session-a") != csrf_token(SECRET, "session-b")
    assert csrf_token(SECRET, "session-a") != csrf_token("t" * 40, "session-a")


def test_the_trend_chart_draws_a_point_per_day_with_data_inside_its_90_days() -> None:
    points = [DayRate("2026-08-01", 0.5, 1, 2), DayRate("2026-10-01", 0.01, 1, 100),
              DayRate("2026-10-02", 0.05, 5, 100)]
    svg = daily_rate_svg(points, "2026-10-30", 90, 0.04, 0.8, "late <dropoff>")
    assert re.findall(r'data-day="([\d-]+)"', svg) == ["2026-10-01", "2026-10-02"]  # August is outside
    assert "late &lt;dropoff&gt;" in svg and "<script" not in svg


def test_the_monthly_bars_label_each_reason() -> None:
    svg = monthly_bars_svg(["2026-10", "2026-11"], ["DAMAGED", "WRONG_ITEM"], [[1, 0], [2, 3]], "t")
    assert "2026-11: 3 wrong item" in svg and svg.count("<rect") == 3


def test_an_api_change_by_session_cookie_needs_the_csrf_header() -> None:
    """A cross-site form can post a body that reads as JSON with the victim's cookie, but it
    cannot set a header: a cookie-signed-in POST to the API needs X-CSRF-Token."""
    from aiohttp.test_utils import make_mocked_request

    from streams.contract.auth import issue
    from web.pages import CSRF_HEADER, SellerPages

    pages = SellerPages(SECRET, None, None, None, None)  # type: ignore[arg-type]
    session = issue(SECRET, "s1", "seller", "s1")
    cookie = {"Cookie": f"warden_session={session}"}
    with pytest.raises(web.HTTPForbidden):
        pages.api_identity(make_mocked_request("POST", "/api/sellers/s1/appeals", headers=cookie), "s1")
    allowed = {**cookie, CSRF_HEADER: csrf_token(SECRET, session)}
    assert pages.api_identity(make_mocked_request("POST", "/api/sellers/s1/appeals", headers=allowed), "s1").sub == "s1"
    bearer = {"Authorization": f"Bearer {session}"}  # no browser adds that by itself: no CSRF token needed
    assert pages.api_identity(make_mocked_request("POST", "/api/sellers/s1/appeals", headers=bearer), "s1").sub == "s1"
    assert pages.api_identity(make_mocked_request("GET", "/api/sellers/s1/metrics", headers=cookie), "s1").sub == "s1"
