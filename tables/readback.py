"""What the tables hold, read back as effects: the recent decisions to publish again after
a rebalance, and every seller's current view (a Redis that lost what it held). A mixin of
tables.engine.Engine; nothing here changes state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from rules.effects import DecideAction, Effect, PublishMetrics
from rules.metrics import FLAWED_REASONS, METRICS
from rules.policy import Policy
from rules.reviews import republish
from rules.standing import seller_metrics_record
from tables.clocks import PartitionClocks
from tables.keys import evidence_key
from tables.months import MonthCalendar
from tables.orders import OrderState


class Evidence(Mapping[str, list[str]]):
    """A seller's evidence lists, read from the store only if a rule asks for them."""

    def __init__(self, engine: Any, seller_id: str) -> None:
        self.engine, self.seller_id = engine, seller_id

    def __getitem__(self, metric: str) -> list[str]:
        return list(self.engine.stores.evidence.get(evidence_key(self.seller_id, METRICS.index(metric)), ()))

    def __iter__(self) -> Iterator[str]:
        return iter(METRICS)

    def __len__(self) -> int:
        return len(METRICS)


class SellerDetail(Evidence):
    """What a seller's view shows beside the `SellerMetrics` record, read from the tables
    when the view is written: the orders behind each numerator and their facts, the flawed
    items by month and reason, and the day's figures for the 90-day trend. `touched`: the
    seller's orders written since its last publication, whose facts the view must write
    again (None: every order's, as when the view is written anew); `left`: those that
    left its evidence lists meanwhile (an order's facts change only when it is written)."""

    def __init__(self, engine: Any, seller_id: str, as_of: int, figures: Any,
                 touched: set[str] | None = None, left: set[str] | None = None) -> None:
        super().__init__(engine, seller_id)
        self.day = engine.months.day(as_of)
        self.figures = figures
        self.touched = touched
        self.left = left if left is not None else set()

    def view(self) -> dict[str, Any]:
        """The evidence (order ids, newest first, at most MAX_EVIDENCE a metric) and the
        flawed items by month and reason, as plain data (JSON)."""
        f = self.figures
        return {
            "evidence": {metric: self[metric][::-1] for metric in METRICS},
            "flawed_monthly_by_reason": {month: dict(zip(FLAWED_REASONS, counts, strict=True))
                                         for (month, _), counts in zip(f.flawed_monthly, f.flawed_monthly_by_reason,
                                                                       strict=True)},
        }

    def facts(self, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The facts of those of `order_ids` the tables still hold, by id (the orders behind
        the evidence; read without keeping them in a bounded cache: Engine.facts_of)."""
        return self.engine.facts_of(self.seller_id, order_ids)  # type: ignore[no-any-return]

    def daily(self) -> list[int]:
        """The day's figures: numerator and denominator of each metric, in METRICS order."""
        out: list[int] = []
        for num, den in zip(self.figures.numerators, self.figures.denominators, strict=True):
            out += (num, den)
        return out


def order_facts(o: OrderState) -> dict[str, Any]:
    """One order's facts as a seller or reviewer reads them (times in ms, UTC)."""
    return {
        "show_id": o.show_id,
        "buyer_id": o.buyer_id,
        "placed_at": o.placed_at,
        "ship_by": o.ship_by,
        "first_scan_at": o.possession_at,
        "carrier_fault": o.carrier_fault,
        "cancelled_at": o.cancelled_at,
        "cancelled_by_seller": o.cancelled_by_seller,
        "refunds": [[FLAWED_REASONS[reason], at] for reason, at in o.flawed],
        "stars": o.stars or None,
        "rated_at": o.rated_at,
    }


class Readback:
    policy: Policy
    stores: Any
    months: MonthCalendar
    clocks: PartitionClocks
    partition_of: Callable[[str], int]

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
            now = self.clocks.last_now(partition)
            if not now:
                continue
            figures = s.snapshot(self.months.last_three(now))
            record = seller_metrics_record(seller_id, figures, self.policy, now)
            effects.append(PublishMetrics(seller_id, record, SellerDetail(self, seller_id, now, figures), "view"))
        for seller_id, history in self.stores.enforcement.items():
            if partitions is not None and self.partition_of(seller_id) not in partitions:
                continue
            for action in history.actions.values():
                effects.extend(e for e in republish(action, history, self.policy)
                               if isinstance(e, DecideAction))
        return effects
