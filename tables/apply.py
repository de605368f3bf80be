"""Applying an input record to the state it touches: the engine's event handlers.

Each reads and writes one order (k for a scan of k orders), then re-evaluates it
(tables.figures.Figures._touch); review decisions and appeals go to the seller's
enforcement history. A mixin of tables.engine.Engine, which owns the state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rules.calendar import ShipByCalendar
from rules.effects import Effect, RejectInput
from rules.history import History
from rules.policy import Policy
from rules.reviews import appeal, decide
from tables.keys import order_key
from tables.orders import OrderState


class EventHandlers:
    """The engine's handlers, by input record (Engine._handlers)."""

    policy: Policy
    stores: Any
    calendar: ShipByCalendar
    _out: list[Effect]
    _touch: Callable[..., None]
    _record: Callable[..., None]

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
