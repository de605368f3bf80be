"""The seller dashboard's pages and their JSON twins (CONTRACT §9). Every handler first
asks who is calling (web.signin) and whether they may; pages answer a missing sign-in
with the sign-in page, the API with 401."""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from rules.history import BAN, HIDDEN_FROM_SELLER, SELLER_APPEALABLE, SUSPENSION, UPHELD, WARNING
from rules.metrics import DESCRIPTIONS, FLAWED_REASONS, METRICS
from rules.notifications import IMPROVE
from rules.policy import Policy
from streams.contract.auth import AuthError, Identity, require_seller
from streams.view_reader import SellerView, Unavailable, ViewReader
from web.charts import DayRate, daily_rate_svg, monthly_bars_svg
from web.commands import CommandPublisher
from web.signin import CSRF_FIELD, check_csrf, csrf_token, identify, session_of, signin_location

MAX_APPEAL_CHARS = 2_000
CSRF_HEADER = "X-CSRF-Token"
TREND_DAYS = 90
STANDING_WORDS = {
    "BELOW": ("below", "Needs attention"),
    "MEETS": ("meets", "Meets the standard: learn how to improve"),
    "EXCEEDS": ("exceeds", "Exceeds the standard"),
    "INSUFFICIENT_DATA": ("insufficient", "Not measured yet"),
}
ACTION_WORDS = {
    ("WARNING", "ISSUED"): "Warning in force", ("SUSPENSION", "APPROVED"): "Selling suspended",
    ("BAN", "APPROVED"): "Account closed", ("REINSTATEMENT", "ISSUED"): "Selling restored",
}
STATUS_WORDS = {"APPEALED": "under appeal", "UPHELD": "appeal not granted", "OVERTURNED": "overturned on appeal"}


def pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def appeal_id_of(action: dict[str, Any]) -> str:
    """One appeal per action: its id is derived from the action, so a second submission
    (a double click, a retry) is the same appeal."""
    return "apl_" + hashlib.sha256(f"{action['action_id']}\x1fappeal".encode()).hexdigest()[:24]


def seller_actions(view: SellerView, identity: Identity) -> list[dict[str, Any]]:
    """The actions `identity` may see: a seller is not shown proposals waiting for review
    or rejected on review; staff see all."""
    if identity.role != "seller":
        return view.actions
    return [a for a in view.actions if a["status"] not in HIDDEN_FROM_SELLER]


def appeal_refusal(action: dict[str, Any] | None, message: str) -> str | None:
    """Why an appeal cannot be filed, or None."""
    if action is None:
        return "There is no such action on your account."
    if action["status"] == "APPEALED" or action["status"] == UPHELD:
        return "This action has already been appealed: one appeal per action."
    if action["status"] not in SELLER_APPEALABLE or action["action"] not in (WARNING, SUSPENSION, BAN):
        return "This action is not in force, so there is nothing to appeal."
    if not message.strip():
        return "Say why the action is wrong: the message is required."
    if len(message) > MAX_APPEAL_CHARS:
        return f"The message is {len(message):,} characters long; the limit is {MAX_APPEAL_CHARS:,}."
    return None


class SellerPages:
    """Handlers of the seller dashboard."""

    def __init__(self, secret: str, policy: Policy, reader: ViewReader, publisher: CommandPublisher,
                 render: Any) -> None:
        self.secret = secret
        self.policy = policy
        self.reader = reader
        self.publisher = publisher
        self.render = render

    # --- who is asking ---------------------------------------------------------------

    def page_identity(self, request: web.Request, seller_id: str | None = None) -> Identity:
        """The signed-in identity for a page; a redirect to the sign-in page, or 403."""
        try:
            identity = identify(request, self.secret)
        except AuthError:
            raise web.HTTPSeeOther(signin_location(request)) from None
        if seller_id is not None:
            try:
                require_seller(identity, seller_id)
            except AuthError as exc:
                raise self.error_page(request, 403, "Not yours to see", str(exc), identity) from None
        return identity

    def api_identity(self, request: web.Request, seller_id: str | None = None) -> Identity:
        """The caller of an API route. A change (POST) signed in by the session cookie, not a
        Bearer token, must carry the session's CSRF token in `X-CSRF-Token`: a cross-site
        form can post a body that reads as JSON, but it cannot set a header."""
        try:
            identity = identify(request, self.secret)
            if request.method == "POST":
                check_csrf(request, self.secret, request.headers.get(CSRF_HEADER))
            if seller_id is not None:
                require_seller(identity, seller_id)
        except AuthError as exc:
            raise api_error(exc.status, str(exc)) from None
        return identity

    def context(self, request: web.Request, identity: Identity | None, **values: Any) -> dict[str, Any]:
        session = session_of(request)
        return {"identity": identity, "csrf": csrf_token(self.secret, session) if session else "",
                "csrf_field": CSRF_FIELD, "pct": pct, "when": when, **values}

    def error_page(self, request: web.Request, status: int, title: str, message: str,
                   identity: Identity | None = None) -> web.HTTPException:
        body = self.render("error.html", self.context(request, identity, status=status, title=title, message=message))
        return _http_error(status, body)

    # --- pages -----------------------------------------------------------------------

    async def seller_page(self, request: web.Request) -> web.Response:
        seller_id = request.match_info["seller_id"]
        identity = self.page_identity(request, seller_id)
        view = await self.load(request, seller_id, identity)
        return self.html("seller.html", request, identity, **self.seller_context(view, identity))

    def seller_context(self, view: SellerView, identity: Identity) -> dict[str, Any]:
        tiles = [self.tile(view, metric) for metric in METRICS]
        actions = seller_actions(view, identity)
        now = view.metrics["as_of"]
        in_force = [a for a in actions if self.in_force(a, now)]
        past = [a for a in actions if a not in in_force]
        return {"view": view, "seller_id": view.seller_id, "tiles": tiles, "in_force": in_force, "past": past,
                "as_of": view.metrics["as_of"], "appealable": {a["action_id"] for a in in_force
                                                              if appeal_refusal(a, "x") is None},
                "action_words": action_words}

    def in_force(self, action: dict[str, Any], now: int) -> bool:
        """An action that binds the seller now: a live warning (within the policy's
        warning_ttl), an approved suspension or ban, or one under appeal or upheld."""
        if action["action"] == "REINSTATEMENT" or action["status"] == "OVERTURNED":
            return False
        if action["action"] == WARNING and action["status"] == "ISSUED":
            return bool(action["decided_at"] + self.policy.ladder.warning_ttl_ms > now)
        return True

    def tile(self, view: SellerView, metric: str) -> dict[str, Any]:
        figure = view.metrics[metric]
        mp = self.policy.metrics[metric]
        num, den, standing = figure["numerator"], figure["denominator"], figure["standing"]
        css, words = STANDING_WORDS[standing]
        at_risk = standing in ("MEETS", "EXCEEDS") and mp.is_at_risk(num, den)
        if standing == "INSUFFICIENT_DATA":
            more = max(0, mp.min_volume - den)
            explain = (f"{more} more order{'s' if more != 1 else ''} before this is measured "
                       f"({den} of {mp.min_volume} needed).")
        elif standing == "BELOW":
            explain = IMPROVE[metric]
        elif at_risk:
            explain = (f"Close to the standard: at risk from {pct(mp.at_risk * mp.threshold_below)}. "
                       f"{IMPROVE[metric]}")
        else:
            explain = "Keep it up." if standing == "EXCEEDS" else IMPROVE[metric]
        return {"metric": metric, "name": metric.replace("_", " ").capitalize(), "what": DESCRIPTIONS[metric],
                "numerator": num, "denominator": den, "rate": figure["rate"], "standing": standing,
                "css": "at-risk" if at_risk else css, "words": "At risk" if at_risk else words,
                "at_risk": at_risk, "threshold_below": figure["threshold_below"],
                "threshold_exceeds": figure["threshold_exceeds"], "explain": explain}

    async def metric_page(self, request: web.Request) -> web.Response:
        seller_id, metric = request.match_info["seller_id"], request.match_info["metric"]
        identity = self.page_identity(request, seller_id)
        if metric not in METRICS:
            raise self.error_page(request, 404, "No such metric",
                                  f"{metric!r} is not one of Warden's metrics ({', '.join(METRICS)}).", identity)
        view = await self.load(request, seller_id, identity, with_daily=True)
        return self.html("metric.html", request, identity, **self.metric_context(view, metric))

    def metric_context(self, view: SellerView, metric: str) -> dict[str, Any]:
        tile = self.tile(view, metric)
        orders = orders_behind(view, metric)
        by_show: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for order in orders:
            by_show[order["show_id"] or ""].append(order)
        beyond = max(0, tile["numerator"] - len(orders))
        i = METRICS.index(metric)
        points = [DayRate(day, figures[2 * i] / figures[2 * i + 1], figures[2 * i], figures[2 * i + 1])
                  for day, figures in sorted(view.daily.items()) if figures[2 * i + 1] > 0]
        last_day = datetime.fromtimestamp(view.metrics["as_of"] / 1000, UTC).date().isoformat()
        if points and points[-1].day > last_day:
            last_day = points[-1].day
        mp = self.policy.metrics[metric]
        chart = daily_rate_svg(points, last_day, TREND_DAYS, mp.threshold_below, mp.at_risk,
                               f"{tile['name']}: daily rate over the last {TREND_DAYS} days")
        monthly = None
        if metric == "flawed_item_rate":
            by_month = view.detail.get("flawed_monthly_by_reason", {})
            months = [m["month"] for m in view.metrics.get("flawed_items_monthly", [])] or sorted(by_month)
            counts = [[by_month.get(m, {}).get(r, 0) for r in FLAWED_REASONS] for m in months]
            monthly = {"months": months, "reasons": FLAWED_REASONS, "counts": counts,
                       "trend": month_trend(months, counts),
                       "chart": monthly_bars_svg(months, FLAWED_REASONS, counts, "Flawed items per month by reason")}
        return {"seller_id": view.seller_id, "tile": tile, "metric": metric, "shows": sorted(by_show.items()),
                "listed": len(orders), "beyond": beyond, "chart": chart, "points": points, "monthly": monthly,
                "as_of": view.metrics["as_of"]}

    async def file_appeal(self, request: web.Request) -> web.Response:
        seller_id = request.match_info["seller_id"]
        identity = self.page_identity(request, seller_id)
        form = await request.post()
        try:
            check_csrf(request, self.secret, _text(form.get(CSRF_FIELD)))
        except AuthError as exc:
            raise self.error_page(request, 403, "The form has expired", str(exc), identity) from None
        self.seller_only(request, identity, seller_id, page=True)
        action_id, message = _text(form.get("action_id")), _text(form.get("message"))
        view = await self.load(request, seller_id, identity)
        action = next((a for a in seller_actions(view, identity) if a["action_id"] == action_id), None)
        problem = appeal_refusal(action, message)
        if problem is None and action is not None:
            problem = await self.appeal(action, message)
        if problem is not None:
            context = self.seller_context(view, identity)
            context.update(appeal_error=problem, appeal_action=action_id, appeal_message=message)
            return self.html("seller.html", request, identity, status=422, **context)
        raise web.HTTPSeeOther(f"/sellers/{seller_id}?appealed={action_id}#actions")

    def seller_only(self, request: web.Request, identity: Identity, seller_id: str, page: bool) -> None:
        """Appeals come from the seller themself."""
        if identity.role == "seller" and identity.seller_id == seller_id:
            return
        message = f"{identity.sub} ({identity.role}) may not appeal for seller {seller_id!r}: only the seller may"
        if page:
            raise self.error_page(request, 403, "Only the seller may appeal", message, identity)
        raise api_error(403, message)

    async def appeal(self, action: dict[str, Any], message: str) -> str | None:
        """Publish the seller's appeal; a reason when it was not filed."""
        appeal_id = appeal_id_of(action)
        if not await self.reader.claim_appeal(appeal_id):
            return "This action has already been appealed: one appeal per action."
        now = int(time.time() * 1000)
        record = {"event_id": appeal_id, "appeal_id": appeal_id, "action_id": action["action_id"],
                  "seller_id": action["seller_id"], "message": message, "filed_at": now}
        try:
            await self.publisher.publish("trust-safety.appeals", "AppealFiled", record)
        except Unavailable:
            await self.reader.unclaim_appeal(appeal_id)
            raise
        return None

    # --- the API ---------------------------------------------------------------------

    async def api_metrics(self, request: web.Request) -> web.Response:
        seller_id = request.match_info["seller_id"]
        self.api_identity(request, seller_id)
        view = await self.api_load(seller_id)
        record = dict(view.metrics)
        record["evidence_order_ids"] = view.detail.get("evidence", {})
        return web.json_response(record)

    async def api_actions(self, request: web.Request) -> web.Response:
        seller_id = request.match_info["seller_id"]
        identity = self.api_identity(request, seller_id)
        view = await self.api_load(seller_id)
        return web.json_response({"seller_id": seller_id, "actions": seller_actions(view, identity)})

    async def api_orders(self, request: web.Request) -> web.Response:
        seller_id = request.match_info["seller_id"]
        self.api_identity(request, seller_id)
        metric = request.query.get("metric", "")
        if metric not in METRICS:
            raise api_error(400, f"metric: must be one of {', '.join(METRICS)}, got {metric!r}")
        view = await self.api_load(seller_id)
        orders = orders_behind(view, metric)
        numerator = view.metrics[metric]["numerator"]
        return web.json_response({"seller_id": seller_id, "metric": metric, "numerator": numerator,
                                  "orders": orders, "beyond": max(0, numerator - len(orders))})

    async def api_appeal(self, request: web.Request) -> web.Response:
        seller_id = request.match_info["seller_id"]
        identity = self.api_identity(request, seller_id)
        self.seller_only(request, identity, seller_id, page=False)
        body = await json_body(request)
        action_id, message = body.get("action_id"), body.get("message", "")
        if not isinstance(action_id, str) or not action_id:
            raise api_error(400, "action_id: required, a string")
        if not isinstance(message, str):
            raise api_error(400, "message: must be a string")
        view = await self.api_load(seller_id)
        action = next((a for a in seller_actions(view, identity) if a["action_id"] == action_id), None)
        problem = appeal_refusal(action, message)
        if problem is None and action is not None:
            try:
                problem = await self.appeal(action, message)
            except Unavailable as exc:
                raise api_error(503, str(exc)) from None
        if problem is not None:
            status = 404 if action is None else (400 if "message" in problem else 409)
            raise api_error(status, problem)
        assert action is not None
        return web.json_response({"appeal_id": appeal_id_of(action), "action_id": action_id}, status=202)

    # --- helpers ---------------------------------------------------------------------

    async def load(self, request: web.Request, seller_id: str, identity: Identity,
                   with_daily: bool = False) -> SellerView:
        try:
            view = await self.reader.seller(seller_id, with_daily)
        except Unavailable as exc:
            raise self.error_page(request, 503, "Temporarily unavailable",
                                  f"{exc}. Nothing is lost: try again in a moment.", identity) from None
        if view is None:
            raise self.error_page(request, 404, "No such seller",
                                  f"Warden has no figures for seller {seller_id!r} (yet).", identity)
        return view

    async def api_load(self, seller_id: str) -> SellerView:
        try:
            view = await self.reader.seller(seller_id)
        except Unavailable as exc:
            raise api_error(503, str(exc)) from None
        if view is None:
            raise api_error(404, f"no figures for seller {seller_id!r}")
        return view

    def html(self, template: str, request: web.Request, identity: Identity | None, status: int = 200,
             **values: Any) -> web.Response:
        return web.Response(text=self.render(template, self.context(request, identity, **values)),
                            content_type="text/html", status=status)


def action_words(action: dict[str, Any]) -> str:
    base = ACTION_WORDS.get((action["action"], action["status"]))
    if base:
        return base
    kind = action["action"].capitalize()
    return f"{kind} {STATUS_WORDS.get(action['status'], action['status'].lower().replace('_', ' '))}"


def orders_behind(view: SellerView, metric: str) -> list[dict[str, Any]]:
    """The orders behind a metric's numerator, newest first, with their facts."""
    facts = view.detail.get("orders", {})
    out = []
    for order_id in view.detail.get("evidence", {}).get(metric, []):
        order = {"order_id": order_id, **facts.get(order_id, {})}
        order.setdefault("show_id", None)
        out.append(order)
    return out


def month_trend(months: list[str], counts: list[list[int]]) -> str | None:
    """A sentence on the latest month against the one before, by reason ("doubled")."""
    if len(months) < 2:
        return None
    before, last = counts[-2], counts[-1]
    changes = []
    for r, reason in enumerate(FLAWED_REASONS):
        name = reason.lower().replace("_", " ")
        if before[r] and last[r] >= 2 * before[r]:
            factor = last[r] / before[r]
            changes.append(f"{name} {'doubled' if factor < 3 else f'grew {factor:.0f}-fold'} month over month "
                           f"({before[r]} → {last[r]})")
        elif not before[r] and last[r]:
            changes.append(f"{name}: {last[r]} this month, none the month before")
        elif before[r] and last[r] <= before[r] // 2:
            changes.append(f"{name} fell by half or more ({before[r]} → {last[r]})")
    return "; ".join(changes).capitalize() + "." if changes else None


def api_error(status: int, message: str) -> web.HTTPException:
    headers = {"WWW-Authenticate": 'Bearer realm="warden"'} if status == 401 else None
    return _http_error(status, json.dumps({"error": message}), "application/json", headers)


ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
    409: web.HTTPConflict, 422: web.HTTPUnprocessableEntity, 503: web.HTTPServiceUnavailable,
}


def _http_error(status: int, text: str, content_type: str = "text/html",
                headers: dict[str, str] | None = None) -> web.HTTPException:
    return ERRORS[status](text=text, content_type=content_type, headers=headers)


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise api_error(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise api_error(400, "the body must be a JSON object")
    return body


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
