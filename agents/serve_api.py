"""HTTP: health, Prometheus and the sellers' views (CONTRACT §6). `/healthz` and `/metrics`
are open; every `/api` route needs a sign-in token (§9): 401 without a usable one, 403
for a seller asking about another seller. A seller is not shown suspensions or bans still
waiting for review, or rejected on review: they were never in force."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from agents.outputs import BrokerProbe
from agents.runtime import LoopWatch
from rules.history import HIDDEN_FROM_SELLER
from streams.contract.auth import AuthError, Identity, bearer, require_seller, verify
from streams.faust_internals import rebalancing, recovery_completed
from streams.observability import exposition
from streams.view_reader import Unavailable, ViewReader


def waiting_for(app: Any, broker: BrokerProbe) -> list[str]:
    """What keeps the worker from being ready: empty when it is started, not rebalancing,
    its tables recovered and the brokers answering. A member given no partitions (the group
    has more workers than Faust's assignor spreads them over) is ready: it has nothing to do."""
    try:
        checks = [
            ("brokers", broker.reachable),
            ("start", app.started),
            ("rebalance", not rebalancing(app)),
            ("recovery", recovery_completed(app)),
        ]
    except Exception:
        return ["start"]
    return [name for name, ok in checks if not ok]


def register_pages(app: Any, reader: ViewReader, broker: BrokerProbe, secret: str,
                   loop_watch: LoopWatch | None = None) -> None:
    """The worker's pages on its Faust web server."""

    def caller(page: View, request: Request, seller_id: str) -> Identity | Response:
        """Who asks, if their token may read `seller_id`; else the 401 or 403 to answer."""
        try:
            identity = verify(secret, bearer(request.headers.get("Authorization")))
            require_seller(identity, seller_id)
        except AuthError as exc:
            headers = {"WWW-Authenticate": 'Bearer realm="warden"'} if exc.status == 401 else None
            return page.json({"error": str(exc)}, status=exc.status, headers=headers)
        return identity

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            waiting = waiting_for(app, broker)
            if waiting:
                return self.json({"status": "starting", "waiting_for": waiting}, status=503)
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        """Ready for traffic: assigned, tables restored, not rebalancing, brokers answering
        (503 with what it waits for otherwise). For a load balancer or Kubernetes' readiness."""

        async def get(self, request: Request) -> Response:
            waiting = waiting_for(app, broker)
            if waiting:
                return self.json({"status": "not ready", "waiting_for": waiting}, status=503)
            return self.json({"status": "ready"})

    @app.page("/livez")
    class Live(View):
        """Alive: the event loop runs (this answer is made on it) and its watch saw it run in
        the last 10 s. A rebalance or a restore does not make a worker dead."""

        async def get(self, request: Request) -> Response:
            if loop_watch is not None and not loop_watch.responsive():
                return self.json({"status": "stalled"}, status=503)
            return self.json({"status": "alive"})

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(exposition(), content_type="text/plain; version=0.0.4")

    def not_found(page: View, seller_id: str, what: str) -> Response:
        return page.json({"error": f"no {what} for seller {seller_id!r}"}, status=404)

    @app.page("/api/sellers/{seller_id}/metrics")
    class SellerMetricsView(View):
        async def get(self, request: Request, seller_id: str) -> Response:
            identity = caller(self, request, seller_id)
            if not isinstance(identity, Identity):
                return identity
            try:
                record = await reader.metrics(seller_id)
            except Unavailable as exc:
                return self.json({"error": str(exc)}, status=503)
            if record is None:
                return not_found(self, seller_id, "metrics")
            return self.json(record)

    @app.page("/api/sellers/{seller_id}/actions")
    class SellerActionsView(View):
        async def get(self, request: Request, seller_id: str) -> Response:
            identity = caller(self, request, seller_id)
            if not isinstance(identity, Identity):
                return identity
            try:
                actions = await reader.actions(seller_id)
            except Unavailable as exc:
                return self.json({"error": str(exc)}, status=503)
            if identity.role == "seller":  # a proposal under review, or rejected, is not theirs to see
                actions = [a for a in actions if a["status"] not in HIDDEN_FROM_SELLER]
            return self.json({"seller_id": seller_id, "actions": actions})
