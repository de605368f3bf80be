"""The decision core: a single-threaded state machine over plain mappings.

The engine holds the order of operations: the clock moves, due timers fire, the record is
applied (tables.apply), each touched order moves its seller's figures (tables.figures),
changed figures are published and the rules evaluated on them, decisions recorded. The
clock (tables.clocks), the deadline heap (tables.deadlines), the calendar months
(tables.months), the key formats (tables.keys) and the read-back of state
(tables.readback) are rooms of their own.

`process(partition, record_name, record) -> effects` and `tick(partition, now) -> effects`.
It holds no Faust: the live worker hands it Faust tables (their writes go to changelogs),
tests, backtests and the benchmark hand it dicts. One core, several drivers.

Per event it reads and writes one order (k for a scan of k orders), one seller, and, only
when a defect appears or disappears, one distinct-buyer counter and one evidence list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from rules.calendar import ShipByCalendar
from rules.effects import DecideAction, Effect, PublishMetrics
from rules.enforcement import evaluate, may_act, next_check
from rules.history import History, Snapshot, review_kind
from rules.policy import Policy
from rules.standing import seller_metrics_record
from schemas.validation import EVENT_TIME
from tables.apply import EventHandlers
from tables.clocks import PartitionClocks, clock_named
from tables.deadlines import ENFORCEMENT as _ENFORCE
from tables.deadlines import ORDER as _ORDER
from tables.deadlines import SELLER as _SELLER
from tables.deadlines import Deadlines, Entry
from tables.figures import RETENTION_SLACK_MS, Figures
from tables.keys import order_key, seller_of, split_order_key
from tables.months import MonthCalendar
from tables.orders import OrderState
from tables.readback import Evidence, Readback, SellerDetail, order_facts
from tables.sellers import SellerState

# A step of the core (Engine.process_steps) pauses after this many timers fired or sellers
# published: ~1-3 ms of work
PAUSE_EVERY = 32
Steps = Iterator[None]  # a generator that returns nothing: its results go where it was told


@dataclass
class Stores:
    """The state the core reads and writes; any MutableMapping (dict, Faust table) will do."""

    orders: MutableMapping[str, OrderState] = field(default_factory=dict)
    sellers: MutableMapping[str, SellerState] = field(default_factory=dict)
    defect_buyers: MutableMapping[str, int] = field(default_factory=dict)
    evidence: MutableMapping[str, list[str]] = field(default_factory=dict)
    clocks: MutableMapping[str, list[Any]] = field(default_factory=dict)
    enforcement: MutableMapping[str, History] = field(default_factory=dict)


def _single_partition(seller_id: str) -> int:
    return 0


def _due_of(o: OrderState) -> int | None:
    return o.due


class Engine(EventHandlers, Figures, Readback):
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
        timer_limit: int | None = None,
    ) -> None:
        self.policy = policy
        self.stores = stores if stores is not None else Stores()
        self.clocks = PartitionClocks(clock_named(clock, wall_clock), self.stores)
        self.clock = clock
        self.wall_clock = wall_clock
        self.calendar = ShipByCalendar(timezone)
        self.partition_of = partition_of
        self._retention_ms = policy.window_ms + policy.longest_grace_ms + RETENTION_SLACK_MS
        self.deadlines = Deadlines(timer_limit)  # bounded: the tables hold the later ones
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
        # seller -> its orders written since its last publication (their facts are written to
        # its view again), and those that left its evidence lists (tables.readback.SellerDetail)
        self._touched: dict[str, set[str]] = {}
        self._left: dict[str, set[str]] = {}
        # actions waiting for a human on this worker's partitions: action id -> (seller,
        # waiting since (event time), review kind): the review backlog
        self.pending: dict[str, tuple[str, int, str]] = {}
        # reviews decided since the driver last drained them: (kind, decision status,
        # event-time ms from proposal or appeal to decision), for the backlog figures
        self.reviews_decided: list[tuple[str, str, int]] = []
        self.evaluations = 0  # rule evaluations so far (a counter for the driver to export)

    # --- the clock (tables.clocks.PartitionClocks) ------------------------------------------

    @property
    def held(self) -> set[int]:
        """Partitions whose clock may not pass their stream time (the driver's guard)."""
        return self.clocks.held

    def partitions_seen(self) -> list[int]:
        return self.clocks.partitions_seen()

    def stream_time(self, partition: int) -> int | None:
        return self.clocks.stream_time(partition)

    # --- entry points ---------------------------------------------------------------------

    def process(self, partition: int, name: str, record: dict[str, Any]) -> list[Effect]:
        """Apply one validated input record; return what must be published."""
        effects: list[Effect] = []
        for _ in self.process_steps(partition, name, record, effects):
            pass
        return effects

    def process_steps(self, partition: int, name: str, record: dict[str, Any], effects: list[Effect]) -> Steps:
        """`process` as steps: it pauses (yields) every PAUSE_EVERY timers fired or sellers
        published, and adds the effects to `effects`. A record that moves time past a
        month's or a day's end fires thousands of timers at once (every seller of the
        partition); a driver with an event loop lets it run between the steps. Nothing else
        may change the state before the last step: the effects are those of `process`."""
        now = self.clocks.now(partition, record.get(EVENT_TIME[name]))
        dirty: dict[str, str] = {}
        next_due = self.deadlines.next_due(partition)
        if next_due is not None and next_due <= now:
            yield from self._fire(partition, now, dirty, record["event_id"])
        handler = self._handlers.get(name)
        if handler is not None:
            handler(record, now, dirty, partition)
        yield from self._flush(dirty, now, effects)

    def tick(self, partition: int, now: int | None = None) -> list[Effect]:
        """Let time pass on a partition with no event: fire its due deadlines and exits."""
        effects: list[Effect] = []
        for _ in self.tick_steps(partition, effects, now):
            pass
        return effects

    def tick_steps(self, partition: int, effects: list[Effect], now: int | None = None) -> Steps:
        """`tick` as steps (see `process_steps`)."""
        if now is None:
            now = self.clocks.now(partition, None)
        elif self.clock == "event":
            now = self.clocks.now(partition, now)
        dirty: dict[str, str] = {}
        yield from self._fire(partition, now, dirty, f"tick:{partition}:{now}")
        yield from self._flush(dirty, now, effects)

    def rebuild_timers(self, partitions: set[int] | None = None) -> int:
        """Rebuild the in-memory deadline heaps from the stored state (after recovery), and
        the review backlog. Unbounded heaps: each partition's entries gathered into a list,
        then made a heap at once (cheaper than a push per entry). Bounded (`deadlines.limit`): the earliest of each of
        `partitions` streamed from the tables, a partition at a time."""
        self.clocks.forget()
        self.pending = {}
        self._touched, self._left = {}, {}  # the views of the sellers now here are written whole first
        for seller_id, h in self.stores.enforcement.items():
            for action_id, a in h.actions.items():
                kind = review_kind(a)
                if kind is not None:
                    self.pending[action_id] = (seller_id, a["decided_at"], kind)
        if self.deadlines.limit is not None and partitions is not None:
            deadlines = self.deadlines
            deadlines.clear()
            for partition in sorted(partitions):
                deadlines.refill(partition, lambda p=partition: self._order_deadlines(p),  # type: ignore[misc]
                                 complete=True)
            partition_of = self.partition_of
            tables: tuple[tuple[Any, int], ...] = ((self.stores.sellers, _SELLER), (self.stores.enforcement, _ENFORCE))
            for table, holder_kind in tables:
                for seller_id, held in table.items():
                    partition = partition_of(seller_id)
                    if held.due is not None and partition in partitions:
                        deadlines.schedule(partition, held.due, holder_kind, seller_id)
            return deadlines.count()
        entries: dict[int, list[Entry]] = {}
        partition_of = self.partition_of
        for key, due in self._order_dues(None):
            if due is not None:
                partition = partition_of(seller_of(key))
                found = entries.get(partition)
                if found is None:
                    entries[partition] = [(due, _ORDER, key)]
                else:
                    found.append((due, _ORDER, key))
        for seller_id, s in self.stores.sellers.items():
            if s.due is not None:
                entries.setdefault(partition_of(seller_id), []).append((s.due, _SELLER, seller_id))
        for seller_id, h in self.stores.enforcement.items():
            if h.due is not None:
                entries.setdefault(partition_of(seller_id), []).append((h.due, _ENFORCE, seller_id))
        return self.deadlines.load(entries)

    def _order_dues(self, partition: int | None) -> Iterator[tuple[str, int | None]]:
        """Every held order's key and due (of `partition`, or all): a store that can scan its
        raw values (streams.table_stores.BoundedCache.scan) reads the due without decoding."""
        orders = self.stores.orders
        scan = getattr(orders, "scan", None)
        if scan is not None:
            yield from scan(OrderState.due_of, _due_of, None if partition is None else {partition})
            return
        partition_of = self.partition_of
        for key, o in orders.items():
            if partition is None or partition_of(seller_of(key)) == partition:
                yield key, o.due

    def _order_deadlines(self, partition: int, after: int | None = None) -> Iterator[Entry]:
        """Every order deadline of `partition` held in the tables (due after `after`, if given)."""
        floor = -1 if after is None else after
        for key, due in self._order_dues(partition):
            if due is not None and due > floor:
                yield due, _ORDER, key

    def _refill_steps(self, partition: int) -> Steps:
        """The clock reached the partition's horizon: its next order deadlines from the tables,
        pausing as `process_steps` does (a scan of a partition's orders)."""
        horizon = self.deadlines.horizons[partition]
        yield from self.deadlines.refill_steps(partition, lambda: self._order_deadlines(partition, horizon))

    def facts_of(self, seller_id: str, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The facts of a seller's orders still held (tables.readback.order_facts), by id; a
        store with a bounded cache reads them without keeping them (old orders, read for a
        view or an action, would push the core's working set out)."""
        out = {}
        read = getattr(self.stores.orders, "peek", self.stores.orders.get)  # not kept in a bounded cache
        for order_id in order_ids:
            o = read(order_key(seller_id, order_id))
            if o is not None:
                out[order_id] = order_facts(o)
        return out

    def pending_timers(self, partition: int | None = None) -> int:
        return self.deadlines.count(partition)

    # --- timers ---------------------------------------------------------------------------

    def _schedule(self, partition: int, due: int, kind: int, key: str) -> None:
        self.deadlines.schedule(partition, due, kind, key)

    def _fire(self, partition: int, now: int, dirty: dict[str, str], cause: str) -> Iterator[None]:
        """Fire the partition's due timers at `now`; what they change is caused by `cause`,
        the event (or tick) that moved the clock. Pauses every PAUSE_EVERY timers."""
        deadlines = self.deadlines
        next_due = deadlines.next_due(partition)
        if next_due is None or next_due > now:
            return
        orders = self.stores.orders
        fired = 0
        while next_due is not None and next_due <= now:
            if deadlines.beyond_horizon(partition, next_due):
                # the heap held every deadline up to here: the next ones, from the tables
                yield from self._refill_steps(partition)
                next_due = deadlines.next_due(partition)
                continue
            fired += 1
            if fired % PAUSE_EVERY == 0:
                yield
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

    def _flush(self, dirty: dict[str, str], now: int, effects: list[Effect]) -> Steps:
        """Publish the changed sellers' figures and evaluate their rules, into `effects`.
        Pauses every PAUSE_EVERY sellers."""
        effects += self._out
        self._out = []
        months = self.months.last_three(now)
        for n, (seller_id, cause) in enumerate(dirty.items()):
            if n % PAUSE_EVERY == PAUSE_EVERY - 1:
                yield
            s = self._seller(seller_id)
            figures = s.snapshot(months)
            signature: list[Any] = [list(s.counts), list(figures.flawed_by_reason),
                                    dict(s.monthly), list(months),
                                    self.policy.version]
            changed = signature != s.published and now > 0  # now == 0: no clock yet (held)
            if changed:
                s.published = signature
                record = seller_metrics_record(seller_id, figures, self.policy, now)
                # evidence is read when the view is written (the latest record with the latest lists)
                detail = SellerDetail(self, seller_id, now, figures, self._touched.pop(seller_id, set()),
                                      self._left.pop(seller_id, set()))
                effects.append(PublishMetrics(seller_id, record, detail, cause))
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

    # --- enforcement ----------------------------------------------------------------------

    def _enforce(self, seller_id: str, figures: Any, now: int, cause: str, effects: list[Effect]) -> None:
        """Evaluate the rules on a seller's changed figures; record and return the decisions."""
        self.evaluations += 1
        h = self.stores.enforcement.get(seller_id)
        if h is None and not may_act(figures, self.policy):
            return  # no history, nothing to act on: the rules would decide nothing
        snapshot = Snapshot(seller_id, figures.numerators, figures.denominators, figures.defect_buyers,
                            figures.flawed_by_reason, Evidence(self, seller_id))
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
                    r = e.record
                    kind = review_kind(r)
                    if kind is not None:
                        self.pending[r["action_id"]] = (seller_id, r["decided_at"], kind)
                        continue
                    waited = self.pending.pop(r["action_id"], None)
                    if waited is not None and changed and len(self.reviews_decided) < 10_000:
                        self.reviews_decided.append((waited[2], r["status"], r["decided_at"] - waited[1]))
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

