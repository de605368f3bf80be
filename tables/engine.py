"""The decision core: a single-threaded state machine over plain mappings.

`process(partition, record_name, record) -> effects` and `tick(partition, now) -> effects`.
It holds no Faust: the live worker hands it Faust tables (their writes go to changelogs),
tests, backtests and the benchmark hand it dicts. One core, several drivers.

Per event it reads and writes one order (k for a scan of k orders), one seller, and, only
when a defect appears or disappears, one distinct-buyer counter and one evidence list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, MutableMapping

from rules.calendar import ShipByCalendar
from rules.effects import DecideAction, Effect, PublishMetrics, RejectInput
from rules.enforcement import (
    AWAITING_REVIEW,
    History,
    Snapshot,
    appeal,
    decide,
    evaluate,
    may_act,
    next_check,
    republish,
)
from rules.metrics import ALL_NUM_BITS, METRICS, NUM_BITS
from rules.policy import Policy
from rules.standing import seller_metrics_record
from rules.units import DAY_MS
from rules.windows import contribution, next_change
from schemas.validation import EVENT_TIME
from tables.clocks import clock_named
from tables.deadlines import ENFORCEMENT as _ENFORCE
from tables.deadlines import ORDER as _ORDER
from tables.deadlines import SELLER as _SELLER
from tables.deadlines import Deadlines
from tables.keys import clock_key, defect_buyer_key, evidence_key, order_key, seller_of, split_order_key
from tables.months import MonthCalendar
from tables.orders import OrderState
from tables.sellers import SellerState

MAX_EVIDENCE = 50
# A flawed order counts in flawed_items_monthly by its first flawed refund. Its facts are
# kept this long after that refund, not just while its month is on show (three months): a
# later refund that arrives late (its own month still on show) must find the first one and
# leave the order where it was counted, not make it count again in a newer month.
FLAWED_RETENTION_MS = 400 * DAY_MS
# Beyond window + grace, an order's facts are kept this long after its latest fact, so a
# late fact (a refund inside a 30-day return window) still finds the order's buyer.
RETENTION_SLACK_MS = 30 * DAY_MS


@dataclass
class Stores:
    """The state the core reads and writes; any MutableMapping (dict, Faust table) will do."""

    orders: MutableMapping[str, OrderState] = field(default_factory=dict)
    sellers: MutableMapping[str, SellerState] = field(default_factory=dict)
    defect_buyers: MutableMapping[str, int] = field(default_factory=dict)
    evidence: MutableMapping[str, list[str]] = field(default_factory=dict)
    clocks: MutableMapping[str, list[Any]] = field(default_factory=dict)
    enforcement: MutableMapping[str, History] = field(default_factory=dict)


class _Evidence(Mapping[str, list[str]]):
    """A seller's evidence lists, read from the store only if a rule asks for them."""

    def __init__(self, engine: Engine, seller_id: str) -> None:
        self.engine, self.seller_id = engine, seller_id

    def __getitem__(self, metric: str) -> list[str]:
        return list(self.engine.stores.evidence.get(evidence_key(self.seller_id, METRICS.index(metric)), ()))

    def __iter__(self) -> Iterator[str]:
        return iter(METRICS)

    def __len__(self) -> int:
        return len(METRICS)


def _single_partition(seller_id: str) -> int:
    return 0


class Engine:
    """Keeps every seller's sliding figures and publishes them when they change."""

    def __init__(
        self,
        policy: Policy,
        stores: Stores | None = None,
        *,
        clock: str = "event",
        wall_clock: Callable[[], int] | None = None,
        timezone: str = "UTC",
        partition_of: Callable[[str], int] = _single_partition,
    ) -> None:
        self.source = clock_named(clock, wall_clock)
        self.policy = policy
        self.stores = stores if stores is not None else Stores()
        self.clock = clock
        self.wall_clock = wall_clock
        self.calendar = ShipByCalendar(timezone)
        self.partition_of = partition_of
        self._retention_ms = policy.window_ms + policy.longest_grace_ms + RETENTION_SLACK_MS
        self.deadlines = Deadlines()
        self.months = MonthCalendar(timezone)
        self._handlers: dict[str, Callable[[dict[str, Any], int, dict[str, str], int], None]] = {
            "OrderPlaced": self._on_order,
            "ShipmentScan": self._on_scan,
            "OrderCancelled": self._on_cancel,
            "RefundIssued": self._on_refund,
            "RatingSubmitted": self._on_rating,
            "ReviewDecision": self._on_decision,
            "AppealFiled": self._on_appeal,
        }
        # per call: sellers read or changed (written back once, at the end), enforcement
        # effects of decisions and appeals, sellers whose escalation deadline came due
        self._sellers: dict[str, SellerState] = {}
        self._out: list[Effect] = []
        self._due_checks: set[str] = set()
        # actions waiting for a human on this worker's partitions: action_id -> (seller, since)
        self.pending: dict[str, tuple[str, int]] = {}
        self.evaluations = 0  # rule evaluations so far (a counter for the driver to export)
        self._clocks: dict[int, list[Any]] = {}  # partition -> [stream time, last now]
        # partitions whose clock may not pass their stream time (set by the driver while
        # the partition's inputs have records not read yet)
        self.held: set[int] = set()

    # --- the clock ------------------------------------------------------------------------

    def partitions_seen(self) -> list[int]:
        """The partitions whose clock this engine has read or moved."""
        return list(self._clocks)

    def stream_time(self, partition: int) -> int | None:
        """The highest event time seen on the partition's inputs (CONTRACT §4)."""
        return self._clock(partition)[0]

    def _clock(self, partition: int) -> list[Any]:
        """[stream time, the engine's last `now`] of a partition, recovered from its table."""
        clock = self._clocks.get(partition)
        if clock is None:
            stored = self.stores.clocks.get(clock_key(partition))
            clock = self._clocks[partition] = list(stored) if stored else [None, 0]
        return clock

    def _now(self, partition: int, event_time: int | None) -> int:
        """The engine clock of a partition: monotonic, and held back while it is `held`.

        A held partition (the driver says its inputs have records not read yet: a backlog,
        a restart, a partition just taken over) runs no further than its stream time, the
        latest event time released to it. The driver releases records in timestamp order
        across the partition's topics (a timestamp merge), so no unread record is older
        than that: a deadline is never judged before the scan that meets it has been read,
        and a history read faster than real time is judged as the event clock judges it.
        """
        clock = self._clock(partition)
        stream, last = clock
        if event_time is not None and (stream is None or event_time > stream):
            stream = event_time
        now = self.source.now(stream)
        if partition in self.held:
            limit = stream if stream is not None else 0
            if now > limit:
                now = limit
        if now < last:
            now = last
        if stream != clock[0] or now != last:
            clock[0], clock[1] = stream, now
            self.stores.clocks[clock_key(partition)] = [stream, now]
        return now

    # --- entry points ---------------------------------------------------------------------

    def process(self, partition: int, name: str, record: dict[str, Any]) -> list[Effect]:
        """Apply one validated input record; return what must be published."""
        now = self._now(partition, record.get(EVENT_TIME[name]))
        dirty: dict[str, str] = {}
        self._fire(partition, now, dirty, record["event_id"])
        handler = self._handlers.get(name)
        if handler is not None:
            handler(record, now, dirty, partition)
        return self._flush(dirty, now)

    def tick(self, partition: int, now: int | None = None) -> list[Effect]:
        """Let time pass on a partition with no event: fire its due deadlines and exits."""
        if now is None:
            now = self._now(partition, None)
        elif self.clock == "event":
            now = self._now(partition, now)
        dirty: dict[str, str] = {}
        self._fire(partition, now, dirty, f"tick:{partition}:{now}")
        return self._flush(dirty, now)

    def rebuild_timers(self) -> int:
        """Rebuild the in-memory deadline heaps from the stored state (after recovery)."""
        self.deadlines.clear()
        self._clocks.clear()
        count = 0
        for key, o in self.stores.orders.items():
            if o.due is not None:
                self._schedule(self.partition_of(seller_of(key)), o.due, _ORDER, key)
                count += 1
        for seller_id, s in self.stores.sellers.items():
            if s.due is not None:
                self._schedule(self.partition_of(seller_id), s.due, _SELLER, seller_id)
                count += 1
        self.pending = {}
        for seller_id, h in self.stores.enforcement.items():
            if h.due is not None:
                self._schedule(self.partition_of(seller_id), h.due, _ENFORCE, seller_id)
                count += 1
            for action_id, a in h.actions.items():
                if a["status"] in AWAITING_REVIEW:
                    self.pending[action_id] = (seller_id, a["decided_at"])
        return count

    def pending_timers(self, partition: int | None = None) -> int:
        return self.deadlines.count(partition)

    # --- events ---------------------------------------------------------------------------

    def _order(self, key: str) -> OrderState:
        o = self.stores.orders.get(key)
        return OrderState() if o is None else o

    def _on_order(self, r: dict[str, Any], now: int, dirty: dict[str, str], partition: int) -> None:
        seller, order_id = r["seller_id"], r["order_id"]
        key = order_key(seller, order_id)
        o = self._order(key)
        ship_by = r.get("ship_by")
        if ship_by is None:
            ship_by = self.calendar.ship_by(r["placed_at"])
        changed = o.place(r["placed_at"], ship_by, r["buyer_id"], r.get("show_id"))
        self._touch(partition, seller, order_id, key, o, now, dirty, r["event_id"], changed)

    def _on_scan(self, r: dict[str, Any], now: int, dirty: dict[str, str], partition: int) -> None:
        seller = r["seller_id"]
        for order_id in dict.fromkeys(r["order_ids"]):
            key = order_key(seller, order_id)
            o = self._order(key)
            changed = o.scan(r["scan_type"], r["scanned_at"], r.get("carrier_fault", False))
            self._touch(partition, seller, order_id, key, o, now, dirty, r["event_id"], changed)

    def _on_cancel(self, r: dict[str, Any], now: int, dirty: dict[str, str], partition: int) -> None:
        seller, order_id = r["seller_id"], r["order_id"]
        key = order_key(seller, order_id)
        o = self._order(key)
        changed = o.cancel(r["cancelled_at"], r["initiated_by"] == "SELLER")
        self._touch(partition, seller, order_id, key, o, now, dirty, r["event_id"], changed)

    def _on_refund(self, r: dict[str, Any], now: int, dirty: dict[str, str], partition: int) -> None:
        seller, order_id = r["seller_id"], r["order_id"]
        key = order_key(seller, order_id)
        o = self._order(key)
        if o.refund(r["reason"], r["refunded_at"]) or key not in self.stores.orders:
            self._touch(partition, seller, order_id, key, o, now, dirty, r["event_id"])

    def _on_rating(self, r: dict[str, Any], now: int, dirty: dict[str, str], partition: int) -> None:
        seller, order_id = r["seller_id"], r["order_id"]
        key = order_key(seller, order_id)
        o = self._order(key)
        changed = o.rate(r["rating_id"], r["stars"], r["rated_at"], r["buyer_id"])
        self._touch(partition, seller, order_id, key, o, now, dirty, r["event_id"], changed)

    # --- the incremental sum --------------------------------------------------------------

    def _seller(self, seller_id: str) -> SellerState:
        s = self._sellers.get(seller_id)
        if s is None:
            s = self.stores.sellers.get(seller_id)
            if s is None:
                s = SellerState()
            self._sellers[seller_id] = s
        return s

    def _touch(self, partition: int, seller: str, order_id: str, key: str, o: OrderState,
               now: int, dirty: dict[str, str], cause: str, changed: bool = True) -> None:
        """Re-evaluate one order at `now`, move the seller's figures by the difference.
        `changed`: the caller changed the order's facts. The order is written back only
        when something of it changed (a third of events change nothing: an IN_TRANSIT scan
        after ACCEPTED), so its changelog gets no record that says nothing new."""
        policy = self.policy
        mask = contribution(o, now, policy)
        buyer = o.buyer(order_id)
        old_mask, old_buyer = o.mask, o.counted_buyer
        defects_changed = (mask ^ old_mask) & ALL_NUM_BITS or (mask & ALL_NUM_BITS and buyer != old_buyer)
        if mask != old_mask or defects_changed:
            s = self._seller(seller)
            s.add(old_mask, -1)
            s.add(mask, 1)
            if defects_changed:
                self._move_defects(seller, order_id, s, old_mask, old_buyer, mask, buyer)
            o.mask = mask
            o.counted_buyer = buyer if mask & ALL_NUM_BITS else None
            dirty.setdefault(seller, cause)
            changed = True
        first_flawed = o.first_flawed_at()
        month = self.months.month(first_flawed) if first_flawed is not None else None
        if month != o.flawed_month:
            s = self._seller(seller)
            keep_from = self.months.last_three(now)[0]
            s.count_month(o.flawed_month, -1, keep_from)
            s.count_month(month, 1, keep_from)
            o.flawed_month = month
            dirty.setdefault(seller, cause)
            changed = True
        due = next_change(o, now, policy)
        # Keep an order's facts after they stop counting: an OrderPlaced may still arrive
        # for an early scan, and a flawed order stays FLAWED_RETENTION_MS after its first
        # flawed refund, so a late or re-delivered refund cannot count it twice in
        # flawed_items_monthly.
        keep_until = o.last_fact_at() + self._retention_ms
        if first_flawed is not None:
            keep_until = max(keep_until, first_flawed + FLAWED_RETENTION_MS)
        if keep_until > now and (due is None or keep_until < due):
            due = keep_until
        if due is None and mask == 0:
            if key in self.stores.orders:
                del self.stores.orders[key]
            return
        if due != o.due or key not in self.stores.orders:
            o.due = due
            if due is not None:
                self._schedule(partition, due, _ORDER, key)
            changed = True
        if changed:
            self.stores.orders[key] = o

    def _move_defects(self, seller: str, order_id: str, s: SellerState, old_mask: int,
                      old_buyer: str | None, mask: int, buyer: str) -> None:
        counters, evidence = self.stores.defect_buyers, self.stores.evidence
        for i, bit in enumerate(NUM_BITS):
            was, now_in = bool(old_mask & bit), bool(mask & bit)
            if was and (not now_in or buyer != old_buyer):
                ckey = defect_buyer_key(seller, i, old_buyer)
                left = counters.get(ckey, 0) - 1
                if left <= 0:
                    if ckey in counters:
                        del counters[ckey]  # (stores note `del`, not pop: streams.table_stores)
                    s.defect_buyers[i] -= 1
                else:
                    counters[ckey] = left
            if now_in and (not was or buyer != old_buyer):
                ckey = defect_buyer_key(seller, i, buyer)
                had = counters.get(ckey, 0)
                counters[ckey] = had + 1
                if had == 0:
                    s.defect_buyers[i] += 1
            if was != now_in:
                ekey = evidence_key(seller, i)
                ids = list(evidence.get(ekey, ()))
                if now_in:
                    if order_id not in ids:
                        ids.append(order_id)
                        del ids[:-MAX_EVIDENCE]
                elif order_id in ids:
                    ids.remove(order_id)
                if ids:
                    evidence[ekey] = ids
                elif ekey in evidence:
                    del evidence[ekey]

    # --- timers ---------------------------------------------------------------------------

    def _schedule(self, partition: int, due: int, kind: int, key: str) -> None:
        self.deadlines.schedule(partition, due, kind, key)

    def _fire(self, partition: int, now: int, dirty: dict[str, str], cause: str) -> None:
        """Fire the partition's due timers at `now`; what they change is caused by `cause`,
        the event (or tick) that moved the clock."""
        deadlines = self.deadlines
        next_due = deadlines.next_due(partition)
        if next_due is None or next_due > now:
            return
        orders = self.stores.orders
        while next_due is not None and next_due <= now:
            due, kind, key = deadlines.pop(partition)
            next_due = deadlines.next_due(partition)
            if kind == _ORDER:
                o = orders.get(key)
                if o is None or o.due != due:
                    continue  # superseded: the order was re-scheduled or removed
                seller, order_id = split_order_key(key)
                self._touch(partition, seller, order_id, key, o, now, dirty, cause, changed=False)
            elif kind == _SELLER:
                s = self._seller(key)
                if s.due != due:
                    continue
                s.due = None
                dirty.setdefault(key, cause)
            else:
                h = self.stores.enforcement.get(key)
                if h is None or h.due != due:
                    continue
                self._due_checks.add(key)
                dirty.setdefault(key, cause)

    # --- publication ----------------------------------------------------------------------

    def _flush(self, dirty: dict[str, str], now: int) -> list[Effect]:
        effects: list[Effect] = self._out
        self._out = []
        months = self.months.last_three(now)
        for seller_id, cause in dirty.items():
            s = self._seller(seller_id)
            figures = s.snapshot(months)
            signature: list[Any] = [list(s.counts), list(figures.flawed_by_reason),
                                    [c for _, c in figures.flawed_monthly], list(months),
                                    self.policy.version]
            changed = signature != s.published and now > 0  # now == 0: no clock yet (held)
            if changed:
                s.published = signature
                record = seller_metrics_record(seller_id, figures, self.policy, now)
                # evidence is read when the view is written (the latest record with the latest lists)
                effects.append(PublishMetrics(seller_id, record, _Evidence(self, seller_id), cause))
            if changed or seller_id in self._due_checks:
                self._enforce(seller_id, figures, now, cause, effects)
            due = self._month_rollover(s, now)
            if due != s.due:
                s.due = due
                if due is not None:
                    self._schedule(self.partition_of(seller_id), due, _SELLER, seller_id)
        self._due_checks.clear()
        for seller_id, s in self._sellers.items():
            self.stores.sellers[seller_id] = s
        self._sellers.clear()
        return effects

    # --- enforcement ----------------------------------------------------------------------

    def _enforce(self, seller_id: str, figures: Any, now: int, cause: str, effects: list[Effect]) -> None:
        """Evaluate the rules on a seller's changed figures; record and return the decisions."""
        self.evaluations += 1
        h = self.stores.enforcement.get(seller_id)
        if h is None and not may_act(figures, self.policy):
            return  # no history, nothing to act on: the rules would decide nothing
        snapshot = Snapshot(seller_id, figures.numerators, figures.denominators, figures.defect_buyers,
                            figures.flawed_by_reason, _Evidence(self, seller_id))
        history = h if h is not None else History()
        decided = evaluate(snapshot, history, self.policy, now, cause)
        if not decided and h is None:
            return
        self._record(seller_id, history, decided, now)
        effects.extend(decided)

    def _record(self, seller_id: str, history: History, decided: list[Effect], now: int) -> None:
        """Apply decisions to the seller's history, track pending reviews, re-arm its timer."""
        changed = False
        if decided:
            before = history.dumps()
            history.apply(decided)
            changed = history.dumps() != before  # not so for a re-delivered decision
            if changed:
                wall = self.wall_clock() if self.wall_clock else 0  # 0: not published again
                for e in decided:
                    if isinstance(e, DecideAction):
                        history.actions[e.record["action_id"]]["_"]["wall"] = wall
            for e in decided:
                if isinstance(e, DecideAction):
                    if e.record["status"] in AWAITING_REVIEW:
                        self.pending[e.record["action_id"]] = (seller_id, e.record["decided_at"])
                    else:
                        self.pending.pop(e.record["action_id"], None)
        due = next_check(history, self.policy)
        if due is not None and due <= now:
            due = None  # evaluated at or after it: nothing left to wait for
        if due != history.due:
            history.due = due
            changed = True
            if due is not None:
                self._schedule(self.partition_of(seller_id), due, _ENFORCE, seller_id)
        if changed:
            self.stores.enforcement[seller_id] = history

    def recent_decisions(self, since_wall_ms: int, partitions: set[int] | None = None) -> list[Effect]:
        """Decisions recorded since `since_wall_ms` (wall clock), to publish again after a
        restart or rebalance: what was stored may not have reached its topic before a
        crash. Same records, same ids: consumers de-duplicate by them."""
        effects: list[Effect] = []
        for seller_id, history in self.stores.enforcement.items():
            if partitions is not None and self.partition_of(seller_id) not in partitions:
                continue
            for action in sorted(history.actions.values(), key=lambda a: a["_"].get("wall", 0)):
                if action["_"].get("wall", 0) >= since_wall_ms:
                    effects.extend(republish(action, history, self.policy))
        return effects

    def current_state(self, partitions: set[int] | None = None) -> list[Effect]:
        """Every seller's figures as of its partition's clock and every action's latest
        record: what a view rebuilt from the tables shows (a Redis that lost what it held)."""
        effects: list[Effect] = []
        for seller_id, s in self.stores.sellers.items():
            partition = self.partition_of(seller_id)
            if partitions is not None and partition not in partitions:
                continue
            now = self._clock(partition)[1]
            if not now:
                continue
            figures = s.snapshot(self.months.last_three(now))
            record = seller_metrics_record(seller_id, figures, self.policy, now)
            effects.append(PublishMetrics(seller_id, record, _Evidence(self, seller_id), "view"))
        for seller_id, history in self.stores.enforcement.items():
            if partitions is not None and self.partition_of(seller_id) not in partitions:
                continue
            for action in history.actions.values():
                effects.extend(e for e in republish(action, history, self.policy)
                               if isinstance(e, DecideAction))
        return effects

    def _on_decision(self, r: dict[str, Any], now: int, dirty: dict[str, str], partition: int) -> None:
        self._review(r, now, decide)

    def _on_appeal(self, r: dict[str, Any], now: int, dirty: dict[str, str], partition: int) -> None:
        self._review(r, now, lambda history, record, policy: appeal(history, record))

    def _review(self, r: dict[str, Any], now: int, step: Callable[..., list[Effect]]) -> None:
        seller_id = r["seller_id"]
        h = self.stores.enforcement.get(seller_id)
        history = h if h is not None else History()
        decided = step(history, r, self.policy)
        if any(isinstance(e, RejectInput) for e in decided):
            self._out.extend(decided)
            return
        if decided:
            self._record(seller_id, history, decided, now)
            self._out.extend(decided)

    def _month_rollover(self, s: SellerState, now: int) -> int | None:
        """The next month boundary, when the monthly figures would shift then."""
        if not any(s.monthly.values()):
            return None
        return self.months.next_month_start(now)
