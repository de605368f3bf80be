"""The sellers' views in Redis: the latest metrics and actions of each seller, written in
batches by the worker that owns the seller, read by the HTTP API."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis.asyncio as aioredis

from agents.runtime import LoopWatch
from rules.history import review_kind
from schemas import compact_json
from schemas.codec import Codec
from streams.contract.settings import without_password
from streams.contract.view_keys import ViewKeys
from streams.faust_internals import membership_lost
from streams.observability import VIEW_WRITE_FAILURES

log = logging.getLogger("warden")


# One call writes a flush's sellers' views: a pipeline of an HSET per seller costs the
# worker a command packed and a response read each in the client, a fifth of a busy
# worker's loop; the script's arguments are packed in one go.
# Per seller: KEYS view, daily, orders; ARGV record, detail, n, then n pairs of day and
# that day's latest figures, then whether the orders hash is replaced (1) or amended (0),
# m, m pairs of order id and its facts, d, and d order ids no longer behind a figure. The
# daily hash keeps the last DAILY_DAYS days.
DAILY_DAYS = 90
WRITE_VIEWS = f"""
local a = 1
for i = 1, #KEYS, 3 do
  redis.call('HSET', KEYS[i], 'record', ARGV[a], 'detail', ARGV[a + 1])
  local n = tonumber(ARGV[a + 2])
  a = a + 3
  if n > 0 then
    for j = 0, n - 1 do
      redis.call('HSET', KEYS[i + 1], ARGV[a + 2 * j], ARGV[a + 2 * j + 1])
    end
    a = a + 2 * n
    if redis.call('HLEN', KEYS[i + 1]) > {DAILY_DAYS} then
      local days = redis.call('HKEYS', KEYS[i + 1])
      table.sort(days)
      for j = 1, #days - {DAILY_DAYS} do redis.call('HDEL', KEYS[i + 1], days[j]) end
    end
  end
  if ARGV[a] == '1' then redis.call('DEL', KEYS[i + 2]) end
  local m = tonumber(ARGV[a + 1])
  a = a + 2
  for j = 0, m - 1 do
    redis.call('HSET', KEYS[i + 2], ARGV[a + 2 * j], ARGV[a + 2 * j + 1])
  end
  a = a + 2 * m
  local d = tonumber(ARGV[a])
  a = a + 1
  for j = 0, d - 1 do redis.call('HDEL', KEYS[i + 2], ARGV[a + j]) end
  a = a + d
end
return #KEYS
"""
TIMELINE_KEPT = 500  # a seller's latest action records, every status change
ACTION_ORDERS_TTL_S = 400 * 86_400  # a case's orders stay readable long after its decision
VIEWS_PER_CALL = 500  # a call's sellers: the server runs a script without interruption
SLICE_S = 0.002  # a flush gives the event loop a turn at least this often
FLUSH_INTERVAL_S = 0.25  # the views are written this often when the worker is idle or lightly loaded
FLUSH_INTERVAL_MAX_S = 1.0  # and at least this often under load


def view_detail(seller_id: str, detail: Any, changes: tuple[set[str], set[str]] | None,
                written: set[str]) -> tuple[tuple[Any, ...], str]:
    """A seller's detail read now (tables.readback.SellerDetail) as JSON, with what to do
    to its orders hash: (replace, m, m pairs of order id and facts, d, d ids to drop).
    `changes`: the orders written and those that left the evidence since the seller's
    last view was written (None: unknown, the hash is written whole)."""
    view = getattr(detail, "view", None)
    if view is None:  # a plain mapping: evidence lists only
        return (0, 0, 0), compact_json.dumps({"evidence": dict(detail)})
    fields = view()
    behind = {order_id for ids in fields["evidence"].values() for order_id in ids}
    dropped: tuple[str, ...] = ()
    if changes is None or seller_id not in written:
        replace, wanted = 1, behind
        written.add(seller_id)
    else:
        touched, left = changes
        replace, wanted, dropped = 0, behind.intersection(touched), tuple(left - behind)
    facts = detail.facts(sorted(wanted))
    out: list[Any] = [replace, len(facts)]
    for order_id, of_order in facts.items():
        out += (order_id, compact_json.dumps(of_order))
    out.append(len(dropped))
    out += dropped
    return tuple(out), compact_json.dumps(fields)


class RedisView:
    """The sellers' latest metrics and actions in Redis, written in batches.

    A seller's view is four keys. `...:view`, a hash: `record`, the latest SellerMetrics
    as published (the wire bytes, made once for the topic: nothing is serialized again per
    record), and `detail`, JSON read from the tables when the view is written (the orders
    behind each numerator, newest first, at most 50 per metric; the flawed items by month
    and reason). `...:orders`, a hash: order id -> its facts, for the orders behind the
    numerators: written whole the first time this worker writes the seller's view (after
    an assignment), then only for the orders written since (tables.readback.SellerDetail's
    `touched`: the facts of an order change only when it is written), so a view's write
    reads no order it did not just handle. `...:daily`, a hash: day -> the day's latest
    numerators and denominators, the last 90 days. `...:actions`, a hash: action id -> its
    latest record as JSON. Only a seller's latest record of each flush is written."""

    def __init__(self, url: str, prefix: str, codec: Codec, app: Any, loop_watch: LoopWatch) -> None:
        self.url = url
        self.location = without_password(url)  # for the log: never the password
        self.codec = codec
        self.app = app
        self.loop_watch = loop_watch
        self.client = aioredis.from_url(url)
        self.keys = ViewKeys(prefix)
        self.write_views = self.client.register_script(WRITE_VIEWS)
        # seller -> (record bytes, the detail as staged, or its view fields once read)
        self.pending: dict[str, tuple[bytes, Any]] = {}
        self.pending_actions: dict[str, dict[str, str]] = {}
        self.pending_action_orders: dict[str, str] = {}  # action id -> its evidence orders' facts
        self.pending_timeline: dict[str, list[str]] = {}  # seller -> every action record, in order
        self.pending_appeals: dict[str, dict[str, str]] = {}  # seller -> action id -> the appeal (JSON)
        # seller -> day -> the detail of that day's latest figures: every day is written,
        # not only the day of a flush's latest record
        self.pending_days: dict[str, dict[str, Any]] = {}
        # seller -> the orders written and those that left its evidence since its view was
        # last written (None: unknown, its orders hash is written whole)
        self.pending_facts: dict[str, tuple[set[str], set[str]] | None] = {}
        self.facts_written: set[str] = set()  # sellers whose orders hash this worker wrote whole
        self._warned = False
        # Redis lost what it held (it was away, or restarted empty): every view of this
        # worker's sellers is written again from the tables (`resync`, set by the worker)
        self.resync: Callable[[], None] | None = None
        self.run_id: str | None = None
        self._identity_checked = 0.0

    def stage(self, views: dict[str, tuple[bytes, Mapping[str, list[str]]]]) -> None:
        self.pending.update(views)
        days, facts = self.pending_days, self.pending_facts
        for seller_id, (_, detail) in views.items():
            if hasattr(detail, "touched"):
                touched, left = detail.touched, detail.left  # type: ignore[attr-defined]
                if touched is None:
                    facts[seller_id] = None
                elif seller_id not in facts:
                    facts[seller_id] = (set(touched), set(left))
                else:
                    staged = facts[seller_id]
                    if staged is not None:
                        staged[0].update(touched)
                        staged[1].update(left)
            day = getattr(detail, "day", None)
            if day is not None:
                mine = days.get(seller_id)
                if mine is None:
                    days[seller_id] = {day: detail}
                else:
                    mine[day] = detail

    def forget_facts(self) -> None:
        """After an assignment (or a Redis that lost its data): each seller's orders hash is
        written whole at its next view."""
        self.facts_written.clear()

    def stage_actions(self, actions: dict[str, dict[str, str]], orders: dict[str, str] | None = None,
                      appeals: dict[str, dict[str, str]] | None = None) -> None:
        """Actions (latest record each), every record for the sellers' timelines, a new
        action's orders' facts, and appeals' messages."""
        for seller_id, docs in actions.items():
            self.pending_actions.setdefault(seller_id, {}).update(docs)
            self.pending_timeline.setdefault(seller_id, []).extend(docs.values())
        if orders:
            self.pending_action_orders.update(orders)
        for seller_id, docs in (appeals or {}).items():
            self.pending_appeals.setdefault(seller_id, {}).update(docs)

    async def _check_identity(self) -> None:
        """Once a second: a Redis whose run id changed restarted, empty (views keep
        nothing on disk): write every view again."""
        now = time.monotonic()
        if now - self._identity_checked < 1.0:
            return
        self._identity_checked = now
        run_id = (await self.client.info("server")).get("run_id")
        if self.run_id is not None and run_id != self.run_id and self.resync is not None:
            log.warning("Redis at %s restarted: writing every view again", self.location)
            self.resync()
        self.run_id = run_id

    async def flush(self) -> None:
        try:
            await self._check_identity()
        except Exception as exc:
            self._unavailable(exc)
            return
        if not self.pending and not self.pending_actions and not self.pending_action_orders \
                and not self.pending_appeals:
            self.pending_days.clear()  # (days come only with a seller's record)
            return
        batch, self.pending = self.pending, {}
        actions, self.pending_actions = self.pending_actions, {}
        action_orders, self.pending_action_orders = self.pending_action_orders, {}
        timeline, self.pending_timeline = self.pending_timeline, {}
        appeals, self.pending_appeals = self.pending_appeals, {}
        days, self.pending_days = self.pending_days, {}
        facts, self.pending_facts = self.pending_facts, {}
        written = self.facts_written
        try:
            keys: list[str] = []
            args: list[Any] = []
            dumps = compact_json.dumps
            clock = time.perf_counter
            turn_at = clock() + SLICE_S
            for seller_id, (record, detail) in batch.items():
                if clock() > turn_at:
                    # a seller's detail takes ~0.1 ms to read and encode (its orders' facts
                    # written whole, after an assignment: up to 250 orders read from disk),
                    # and a busy second's flush has thousands: the loop gets a turn between them
                    await asyncio.sleep(0)
                    turn_at = clock() + SLICE_S
                of_orders: tuple[Any, ...] = (0, 0, 0)  # the orders hash left as it is
                if not isinstance(detail, str):
                    of_orders, detail = view_detail(seller_id, detail, facts.get(seller_id), written)
                    batch[seller_id] = (record, detail)
                keys += (self.keys.metrics(seller_id), self.keys.daily(seller_id), self.keys.orders(seller_id))
                mine = days.get(seller_id) or {}
                args += (record, detail, len(mine))
                for day, of_day in mine.items():
                    args += (day, of_day if isinstance(of_day, str) else dumps(of_day.daily()))
                args += of_orders
                if len(keys) == 3 * VIEWS_PER_CALL:
                    await self.write_views(keys=keys, args=args)
                    keys, args = [], []
            if keys:
                await self.write_views(keys=keys, args=args)
            if actions or action_orders or appeals:
                await self._write_actions(actions, action_orders, timeline, appeals)
            self._warned = False
        except Exception as exc:  # Redis down: keep the newest views, try again next flush
            for seller_id, staged in batch.items():
                self.pending.setdefault(seller_id, staged)
                written.discard(seller_id)  # its orders hash is written whole at its next view
            for seller_id, of_days in days.items():
                later = self.pending_days.setdefault(seller_id, {})
                for day, of_day in of_days.items():
                    later.setdefault(day, of_day)
            for seller_id, docs in actions.items():
                for action_id, doc in docs.items():
                    self.pending_actions.setdefault(seller_id, {}).setdefault(action_id, doc)
            for action_id, evidence_facts in action_orders.items():
                self.pending_action_orders.setdefault(action_id, evidence_facts)
            for seller_id, records in timeline.items():
                self.pending_timeline[seller_id] = records + self.pending_timeline.get(seller_id, [])
            for seller_id, appealed in appeals.items():
                for action_id, doc in appealed.items():
                    self.pending_appeals.setdefault(seller_id, {}).setdefault(action_id, doc)
            self._unavailable(exc)

    async def _write_actions(self, actions: dict[str, dict[str, str]], action_orders: dict[str, str],
                             timeline: dict[str, list[str]], appeals: dict[str, dict[str, str]]) -> None:
        """Each seller's actions and timeline (every record, the last TIMELINE_KEPT); the
        review queue (actions waiting for a human) and the index of action to seller,
        shared by all workers; a new action's orders' facts; appeals' messages."""
        keys = self.keys
        async with self.client.pipeline(transaction=False) as pipe:
            for seller_id, records in timeline.items():
                pipe.rpush(keys.timeline(seller_id), *records)
                pipe.ltrim(keys.timeline(seller_id), -TIMELINE_KEPT, -1)
            for seller_id, docs in appeals.items():
                pipe.hset(keys.appeals(seller_id), mapping=cast(Any, docs))
            for seller_id, docs in actions.items():
                # (redis' stubs take a Mapping of a wider key type, which a dict[str, str] is not)
                pipe.hset(keys.actions(seller_id), mapping=cast(Any, docs))
                pipe.hset(keys.action_sellers(), mapping=cast(Any, dict.fromkeys(docs, seller_id)))
                for action_id, doc in docs.items():
                    if review_kind(json.loads(doc)) is not None:
                        pipe.hset(keys.review_queue(), action_id, doc)
                    else:
                        pipe.hdel(keys.review_queue(), action_id)
            for action_id, facts in action_orders.items():
                pipe.set(keys.action_orders(action_id), facts, ex=ACTION_ORDERS_TTL_S)
            await pipe.execute()

    def _unavailable(self, exc: Exception) -> None:
        VIEW_WRITE_FAILURES.inc()
        if not self._warned:
            log.warning("Redis at %s unavailable (%s); views will catch up", self.location, exc)
            self._warned = True

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        interval = FLUSH_INTERVAL_S
        while True:
            await asyncio.sleep(interval)
            if (self.pending or self.pending_actions) and self.loop_watch.paused_recently():
                # frozen past the session: these sellers may have a new owner by now, whose
                # views are newer than ours; wait for the heartbeat to tell (as the checkpoint)
                await asyncio.sleep(2.0)
                if membership_lost(self.app.consumer):
                    self.pending.clear()
                    self.pending_actions.clear()
                    self.pending_action_orders.clear()
                    self.pending_timeline.clear()
                    self.pending_appeals.clear()
                    self.pending_days.clear()
                    continue
            started = time.monotonic()
            await self.flush()
            # A busy worker's flush reads and encodes thousands of sellers' views: flushing
            # less often then writes each seller once for many of its records, so the views
            # take at most about a fifth of the loop (and are at most a second behind)
            interval = min(FLUSH_INTERVAL_MAX_S, max(FLUSH_INTERVAL_S, 4 * (time.monotonic() - started)))
