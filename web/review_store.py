"""The review console's state in Redis: the queue the workers keep (streams.contract.view_keys), and
what the console keeps itself: claims that lapse (SET NX PX, so two reviewers never hold
one case), the decisions sent (HSETNX, so a second submission publishes nothing), and the
audit lists shown on the pages (the durable audit log is the trust-safety.review-audit
topic)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from streams.view_reader import Unavailable, ViewReader

AUDIT_KEPT = 5_000  # entries in the all-cases list the leads' page reads
CASE_AUDIT_KEPT = 500

# Give a claim back only if it is still the caller's (a lapsed claim may be someone else's now)
RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['by'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Claim:
    by: str
    at: int  # ms
    until: int  # ms


class ReviewStore:
    """Reads and writes of the review console, over the views' Redis client."""

    def __init__(self, reader: ViewReader) -> None:
        self.client = reader.client
        self.keys = reader.keys
        self._release = self.client.register_script(RELEASE)

    async def _run(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            raise Unavailable(f"the views store (Redis) does not answer: {exc}") from None

    async def queue(self) -> list[dict[str, Any]]:
        """Every action waiting for a human, as the workers last wrote it."""
        raw = await self._run(self.client.hgetall(self.keys.review_queue()))
        return [json.loads(doc) for doc in raw.values()]

    async def action(self, action_id: str) -> dict[str, Any] | None:
        """An action's latest record, found through its seller; None if unknown."""
        seller = await self._run(self.client.hget(self.keys.action_sellers(), action_id))
        if seller is None:
            return None
        doc = await self._run(self.client.hget(self.keys.actions(seller.decode()), action_id))
        return json.loads(doc) if doc else None

    async def case_extras(self, action: dict[str, Any]) -> dict[str, Any]:
        """The orders behind an action, the seller's timeline and appeals, the decisions sent, the case's audit."""
        seller, action_id = action["seller_id"], action["action_id"]
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.action_orders(action_id))
            pipe.lrange(self.keys.timeline(seller), 0, -1)
            pipe.hgetall(self.keys.appeals(seller))
            pipe.hgetall(self.keys.decision_sent(action_id))
            pipe.lrange(self.keys.audit(action_id), 0, -1)
            results = await self._run(pipe.execute())
        orders, timeline, appeals, sent, audit = results
        return {
            "orders": json.loads(orders) if orders else {},
            "timeline": [json.loads(doc) for doc in timeline],
            "appeals": {k.decode(): json.loads(v) for k, v in appeals.items()},
            "sent": {k.decode(): json.loads(v) for k, v in sent.items()},
            "audit": [json.loads(doc) for doc in audit],
        }

    async def claims(self, action_ids: list[str]) -> dict[str, Claim]:
        """Who holds each of these cases now (lapsed claims are gone)."""
        if not action_ids:
            return {}
        raw = await self._run(self.client.mget([self.keys.claim(a) for a in action_ids]))
        return {a: Claim(**json.loads(v)) for a, v in zip(action_ids, raw, strict=True) if v}

    async def claim(self, action_id: str, who: str, now: int, ttl_ms: int, force: bool = False) -> Claim:
        """Take a case for `who` for `ttl_ms` (refreshing their own claim); the current
        claim when someone else holds it. `force` (a lead's reassignment) takes it anyway."""
        key = self.keys.claim(action_id)
        mine = Claim(who, now, now + ttl_ms)
        value = json.dumps(mine.__dict__)
        if force:
            await self._run(self.client.set(key, value, px=ttl_ms))
            return mine
        if await self._run(self.client.set(key, value, px=ttl_ms, nx=True)):
            return mine
        held = await self._run(self.client.get(key))
        if held is None:  # lapsed between the two calls: try once more
            if await self._run(self.client.set(key, value, px=ttl_ms, nx=True)):
                return mine
            held = await self._run(self.client.get(key))
        current = Claim(**json.loads(held))
        if current.by == who:
            await self._run(self.client.set(key, value, px=ttl_ms, xx=True))
            return mine
        return current

    async def release(self, action_id: str, who: str) -> bool:
        return bool(await self._run(self._release(keys=[self.keys.claim(action_id)], args=[who])))

    async def drop_claim(self, action_id: str) -> None:
        await self._run(self.client.delete(self.keys.claim(action_id)))

    async def mark_sent(self, action_id: str, status: str, decision: dict[str, Any]) -> dict[str, Any] | None:
        """Record a decision sent for the action in `status`; the one already recorded if any."""
        key = self.keys.decision_sent(action_id)
        if await self._run(self.client.hsetnx(key, status, json.dumps(decision))):
            await self._run(self.client.hset(self.keys.decision_events(), decision["event_id"], decision["by"]))
            return None
        held = await self._run(self.client.hget(key, status))
        return json.loads(held) if held else None

    async def unmark_sent(self, action_id: str, status: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.hdel(self.keys.decision_sent(action_id), status)

    async def deciders(self, event_ids: list[str]) -> dict[str, str]:
        """Who sent each of these ReviewDecision events through the console."""
        if not event_ids:
            return {}
        raw = await self._run(self.client.hmget(self.keys.decision_events(), event_ids))
        return {e: v.decode() for e, v in zip(event_ids, raw, strict=True) if v}

    async def remember_audit(self, entry: dict[str, Any]) -> None:
        """The audit entry on the case's list and the all-cases list (newest first)."""
        doc = json.dumps(entry)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.lpush(self.keys.audit(entry["action_id"]), doc)
            pipe.ltrim(self.keys.audit(entry["action_id"]), 0, CASE_AUDIT_KEPT - 1)
            pipe.lpush(self.keys.audit(), doc)
            pipe.ltrim(self.keys.audit(), 0, AUDIT_KEPT - 1)
            await self._run(pipe.execute())

    async def audit(self, limit: int = 500) -> list[dict[str, Any]]:
        raw = await self._run(self.client.lrange(self.keys.audit(), 0, limit - 1))
        return [json.loads(doc) for doc in raw]
