"""`warden web`: the web service's application, built from settings (nothing at import),
and its run loop."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from rules.policy import Policy, load_policy
from schemas.codec import Codec
from streams.contract import topics as T
from streams.contract.auth import AuthError, Identity, check_secret, verify
from streams.contract.settings import Settings
from streams.view_reader import Unavailable, ViewReader
from web.commands import CommandPublisher
from web.group_lag import GroupLag
from web.pages import SellerPages
from web.review import ReviewPages
from web.review_store import ReviewStore
from web.signin import COOKIE, CSRF_FIELD, check_csrf, identify, safe_next

log = logging.getLogger("warden.web")
HERE = Path(__file__).resolve().parent
LAG_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("group_lag", asyncio.Task)
SECURITY_HEADERS = {
    # no script at all, styles and images from this site only, never framed
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def templates() -> jinja2.Environment:
    """The pages' templates: every value escaped unless marked safe (the server's own SVG)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                              autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)


def build_web(settings: Settings, policy: Policy | None = None, reader: ViewReader | None = None,
              publisher: CommandPublisher | None = None) -> web.Application:
    """The web service's application: its reader of the views, its command publisher, its pages."""
    secret = check_secret(settings.auth_secret)
    policy = policy or load_policy(settings.policy_path)
    codec = Codec(settings.schema_registry_url)
    reader = reader or ViewReader(settings.redis_url, settings.topic_prefix, codec)
    publisher = publisher or CommandPublisher(settings.kafka_bootstrap_servers, settings.topic_prefix, codec,
                                              settings.kafka_client_config())
    env = templates()

    def render(name: str, context: dict[str, Any]) -> str:
        return env.get_template(name).render(**context)

    pages = SellerPages(secret, policy, reader, publisher, render)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        """Security headers on every answer; a fault is a page saying so, never a traceback."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        except Unavailable as exc:
            response = _page_or_json(request, pages, 503, "Temporarily unavailable",
                                     f"{exc}. Nothing is lost: try again in a moment.")
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _page_or_json(request, pages, 500, "Something went wrong",
                                     "The error is logged. Nothing you sent was lost or applied twice.")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if isinstance(response, web.HTTPException):
            raise response
        return response

    async def home(request: web.Request) -> web.Response:
        identity = pages.page_identity(request)
        if identity.role == "seller" and identity.seller_id:
            raise web.HTTPSeeOther(f"/sellers/{identity.seller_id}")
        return pages.html("home.html", request, identity)

    async def find_seller(request: web.Request) -> web.Response:
        pages.page_identity(request)
        seller_id = request.query.get("seller_id", "").strip()
        if not seller_id:
            raise web.HTTPSeeOther("/")
        raise web.HTTPSeeOther(f"/sellers/{quote(seller_id, safe='')}")

    async def signin(request: web.Request) -> web.Response:
        return pages.html("signin.html", request, None, next=safe_next(request.query.get("next"), "/"), error=None)

    async def login(request: web.Request) -> web.Response:
        token = request.query.get("token", "").strip()
        target = safe_next(request.query.get("next"), "/")
        try:
            identity: Identity = verify(secret, token)
        except AuthError as exc:
            return pages.html("signin.html", request, None, status=401, next=target,
                              error=f"That sign-in link does not work: {exc}.")
        if target == "/" and identity.role == "seller":
            target = f"/sellers/{identity.seller_id}"
        response = web.HTTPSeeOther(target)
        exp = _claim_exp(token)
        response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=settings.ui_secure_cookie,
                            path="/", max_age=max(1, exp - int(time.time())) if exp else None)
        log.info("signed in: %s (%s)", identity.sub, identity.role)
        raise response

    async def logout(request: web.Request) -> web.Response:
        form = await request.post()
        try:
            check_csrf(request, secret, str(form.get(CSRF_FIELD, "")))
        except AuthError as exc:
            raise pages.error_page(request, 403, "The form has expired", str(exc)) from None
        response = web.HTTPSeeOther("/signin")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def healthz(request: web.Request) -> web.Response:
        redis_ok = await reader.ping()
        return web.json_response({"status": "ok" if redis_ok else "degraded", "redis": redis_ok},
                                 status=200 if redis_ok else 503)

    async def livez(request: web.Request) -> web.Response:
        """Alive: the process serves (a Redis or broker away makes it not ready, not dead)."""
        return web.json_response({"status": "alive"})

    async def not_found(request: web.Request) -> web.Response:
        return _page_or_json(request, pages, 404, "Not found", f"There is no page at {request.path}.")

    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    group_lag = GroupLag(settings.kafka_bootstrap_servers, settings.consumer_group,
                         [settings.topic(name) for name in T.INPUT_TOPICS], registry,
                         security=settings.kafka_client_config())

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def starting(app: web.Application) -> None:
        app[LAG_TASK] = asyncio.get_running_loop().create_task(group_lag.run())

    async def closing(app: web.Application) -> None:
        app[LAG_TASK].cancel()
        group_lag.close()
        await reader.close()
        publisher.close()

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    r = app.router
    r.add_get("/", home)
    r.add_get("/signin", signin)
    r.add_get("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", healthz)
    r.add_get("/livez", livez)
    r.add_get("/metrics", metrics)
    r.add_get("/sellers", find_seller)
    r.add_get("/sellers/{seller_id}", pages.seller_page)
    r.add_get("/sellers/{seller_id}/metrics/{metric}", pages.metric_page)
    r.add_post("/sellers/{seller_id}/appeals", pages.file_appeal)
    r.add_get("/api/sellers/{seller_id}/metrics", pages.api_metrics)
    r.add_get("/api/sellers/{seller_id}/actions", pages.api_actions)
    r.add_get("/api/sellers/{seller_id}/orders", pages.api_orders)
    r.add_post("/api/sellers/{seller_id}/appeals", pages.api_appeal)
    ReviewPages(pages, ReviewStore(reader), publisher).routes(app)
    r.add_static("/static", HERE / "static", append_version=True)
    r.add_route("*", "/{tail:.*}", not_found)
    app.on_startup.append(starting)
    app.on_cleanup.append(closing)
    return app


def _claim_exp(token: str) -> int | None:
    import jwt

    exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    return int(exp) if isinstance(exp, (int, float)) else None


def _page_or_json(request: web.Request, pages: SellerPages, status: int, title: str, message: str) -> web.Response:
    if request.path.startswith("/api/"):
        return web.json_response({"error": message}, status=status)
    try:
        identity: Identity | None = identify(request, pages.secret)
    except AuthError:
        identity = None
    return pages.html("error.html", request, identity, status=status, title=title, message=message)


def run_web(settings: Settings) -> None:
    """Serve until interrupted."""
    app = build_web(settings)
    print(f"warden web: serving {settings.ui_url} (Ctrl-C stops)", flush=True)
    web.run_app(app, host=settings.ui_host, port=settings.ui_port, print=None, access_log=None)


__all__ = ["build_web", "run_web"]
