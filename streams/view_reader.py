"""The one reader of the sellers' views the workers keep in Redis (streams.contract.view_keys),
decoded: the web service's pages and the worker's `/api` read through it. Every read has a
short timeout; Redis away is `Unavailable`, answered with a 503 while the client
reconnects by itself on the next request."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from schemas.codec import Codec
from streams.contract.view_keys import ViewKeys

TIMEOUT_S = 2.0


class Unavailable(Exception):
    """A store or the broker did not answer: the page says so (503), nothing is lost."""


@dataclass
class SellerView:
    """One seller as the workers last wrote them."""

    seller_id: str
    metrics: dict[str, Any]  # the SellerMetrics record
    detail: dict[str, Any]  # evidence, orders, flawed_monthly_by_reason
    daily: dict[str, list[int]]  # day -> [numerator, denominator] per metric, in METRICS order
    actions: list[dict[str, Any]] = field(default_factory=list)  # newest first


class ViewReader:
    """Reads sellers' views from Redis."""

    def __init__(self, redis_url: str, topic_prefix: str, codec: Codec) -> None:
        self.url = redis_url
        self.codec = codec
        self.keys = ViewKeys(topic_prefix)
        self.client = aioredis.from_url(redis_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                        retry_on_timeout=False)

    async def seller(self, seller_id: str, with_daily: bool = False) -> SellerView | None:
        """A seller's view, or None when the workers have written none (unknown seller)."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.keys.metrics(seller_id))
                pipe.hgetall(self.keys.actions(seller_id))
                pipe.hgetall(self.keys.orders(seller_id))
                if with_daily:
                    pipe.hgetall(self.keys.daily(seller_id))
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the views store (Redis) does not answer: {exc}") from None
        stored, raw_actions = results[0], results[1]
        if not stored or b"record" not in stored:
            return None
        _, metrics = self.codec.decode(stored[b"record"])
        detail = json.loads(stored.get(b"detail", b"{}"))
        # the orders behind the figures, with their facts (a hash of their own: written as they change)
        detail["orders"] = {k.decode(): json.loads(v) for k, v in results[2].items()}
        daily = ({k.decode(): json.loads(v) for k, v in results[3].items()} if with_daily else {})
        return SellerView(seller_id, metrics, detail, daily, _newest_first(raw_actions))

    async def metrics(self, seller_id: str) -> dict[str, Any] | None:
        """A seller's latest SellerMetrics record with its evidence order ids per metric, or
        None when the workers have written none."""
        try:
            stored = await self.client.hgetall(self.keys.metrics(seller_id))
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the views store (Redis) does not answer: {exc}") from None
        if not stored or b"record" not in stored:
            return None
        raw = stored[b"record"]
        _, record = self.codec.decode(raw if isinstance(raw, bytes) else raw.encode())
        record["evidence_order_ids"] = json.loads(stored.get(b"detail", b"{}")).get("evidence", {})
        return record

    async def actions(self, seller_id: str) -> list[dict[str, Any]]:
        """A seller's enforcement actions as the workers last wrote them, newest first."""
        try:
            raw = await self.client.hgetall(self.keys.actions(seller_id))
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the views store (Redis) does not answer: {exc}") from None
        return _newest_first(raw)

    async def claim_appeal(self, appeal_id: str, ttl_s: int = 7 * 86400) -> bool:
        """Mark an appeal as being filed; False when it already was (a second appeal)."""
        try:
            return bool(await self.client.set(self.keys.appeal_filed(appeal_id), b"1", nx=True, ex=ttl_s))
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the views store (Redis) does not answer: {exc}") from None

    async def unclaim_appeal(self, appeal_id: str) -> None:
        """The appeal could not be published: let the seller try again."""
        with contextlib.suppress(RedisError, OSError):
            await self.client.delete(self.keys.appeal_filed(appeal_id))

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.client.aclose()


def _newest_first(raw: dict[Any, Any]) -> list[dict[str, Any]]:
    """The stored actions (action id -> JSON), the newest decision first."""
    actions = [json.loads(doc) for doc in raw.values()]
    actions.sort(key=lambda a: (a.get("decided_at", 0), a.get("action_id", "")), reverse=True)
    return actions
