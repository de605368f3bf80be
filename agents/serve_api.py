"""HTTP: health, Prometheus and the sellers' views (CONTRACT §6)."""

from __future__ import annotations

import json
from typing import Any

from faust.web import Request, Response, View

from agents.runtime import broker, view
from streams.app import app
from streams.observability import exposition


def consuming() -> bool:
    """Started, not rebalancing, tables recovered, partitions assigned, brokers answering."""
    try:
        return bool(
            broker.reachable
            and app.started
            and not app.rebalancing
            and app.tables.recovery.completed.is_set()
            and app.consumer.assignment()
        )
    except Exception:
        return False


@app.page("/healthz")
class Health(View):
    async def get(self, request: Request) -> Response:
        ok = consuming()
        return self.json({"status": "ok" if ok else "starting"}, status=200 if ok else 503)


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Request) -> Response:
        return self.bytes(exposition(), content_type="text/plain; version=0.0.4")


def _not_found(self: View, seller_id: str, what: str) -> Response:
    return self.json({"error": f"no {what} for seller {seller_id!r}"}, status=404)


@app.page("/api/sellers/{seller_id}/metrics")
class SellerMetricsView(View):
    async def get(self, request: Request, seller_id: str) -> Response:
        record = await view.metrics(seller_id)
        if record is None:
            return _not_found(self, seller_id, "metrics")
        return self.json(record)


@app.page("/api/sellers/{seller_id}/actions")
class SellerActionsView(View):
    async def get(self, request: Request, seller_id: str) -> Response:
        raw: Any = await view.client.hgetall(view.actions_key(seller_id))
        actions = [json.loads(doc) for doc in raw.values()]
        actions.sort(key=lambda a: (a.get("decided_at", 0), a.get("action_id", "")), reverse=True)
        return self.json({"seller_id": seller_id, "actions": actions})
