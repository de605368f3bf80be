"""Per-order state: the facts each metric needs, merged idempotently from events.

Every merge is order-insensitive and idempotent (earliest scan, earliest cancellation,
latest rating, sets of instants), so duplicates and reordering leave the same state.
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from rules.metrics import FLAWED_REASON_INDEX
from schemas import compact_json
from tables.keys import order_key  # noqa: F401  (orders are keyed by seller and order)

# Bound on the instants kept per order per kind (DELIVERED scans, flawed refunds): real
# orders have one or two; the bound keeps a pathological stream from growing state.
MAX_INSTANTS = 8

POSSESSION_SCANS = frozenset({"ACCEPTED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"})


class OrderState:
    """What Warden knows about one order, and what it currently contributes."""

    __slots__ = (
        "buyer_id",
        "cancelled_at",
        "cancelled_by_seller",
        "carrier_fault",
        "counted_buyer",
        "delivered",
        "due",
        "flawed",
        "flawed_month",
        "mask",
        "placed_at",
        "possession_at",
        "rated_at",
        "rating_buyer",
        "rating_id",
        "ship_by",
        "show_id",
        "stars",
    )

    def __init__(self) -> None:
        self.placed_at: int | None = None
        self.ship_by: int | None = None
        self.buyer_id: str | None = None
        self.show_id: str | None = None
        self.possession_at: int | None = None
        self.carrier_fault = False
        self.cancelled_at: int | None = None
        self.cancelled_by_seller = False
        self.delivered: list[int] = []
        self.flawed: list[tuple[int, int]] = []
        self.rated_at: int | None = None
        self.stars = 0
        self.rating_id = ""
        self.rating_buyer: str | None = None
        # bookkeeping of what the seller's figures currently hold for this order
        self.mask = 0
        self.counted_buyer: str | None = None
        self.flawed_month: str | None = None
        self.due: int | None = None

    # --- merges -----------------------------------------------------------------------

    def place(self, placed_at: int, ship_by: int, buyer_id: str, show_id: str | None) -> bool:
        before = (self.placed_at, self.ship_by, self.buyer_id, self.show_id)
        if self.placed_at is None or placed_at < self.placed_at:
            self.placed_at, self.ship_by = placed_at, ship_by
        self.buyer_id = buyer_id
        self.show_id = show_id
        return before != (self.placed_at, self.ship_by, self.buyer_id, self.show_id)

    def scan(self, scan_type: str, scanned_at: int, carrier_fault: bool) -> bool:
        changed = False
        if scan_type in POSSESSION_SCANS:
            if self.possession_at is None or scanned_at < self.possession_at:
                self.possession_at, self.carrier_fault = scanned_at, carrier_fault
                changed = True
            elif scanned_at == self.possession_at and carrier_fault and not self.carrier_fault:
                self.carrier_fault = True
                changed = True
        if scan_type == "DELIVERED" and scanned_at not in self.delivered:
            insort(self.delivered, scanned_at)
            del self.delivered[:-MAX_INSTANTS]
            changed = True
        return changed

    def cancel(self, cancelled_at: int, by_seller: bool) -> bool:
        current = self.cancelled_at
        if current is None or cancelled_at < current or (
            cancelled_at == current and by_seller and not self.cancelled_by_seller
        ):
            self.cancelled_at, self.cancelled_by_seller = cancelled_at, by_seller
            return True
        return False

    def refund(self, reason: str, refunded_at: int) -> bool:
        index = FLAWED_REASON_INDEX.get(reason)
        if index is None:
            return False
        entry = (index, refunded_at)
        if entry in self.flawed:
            return False
        insort(self.flawed, entry, key=lambda e: e[1])
        del self.flawed[:-MAX_INSTANTS]
        return True

    def rate(self, rating_id: str, stars: int, rated_at: int, buyer_id: str) -> bool:
        if self.rated_at is None or (rated_at, rating_id) > (self.rated_at, self.rating_id):
            self.rated_at, self.rating_id, self.stars = rated_at, rating_id, stars
            self.rating_buyer = buyer_id
            return True
        return False

    # --- derived ----------------------------------------------------------------------

    def buyer(self, order_id: str) -> str:
        """Who bought it, for counting distinct defect buyers (the order itself if unknown)."""
        return self.buyer_id or self.rating_buyer or f"order:{order_id}"

    def last_fact_at(self) -> int:
        """The latest instant of any fact about the order."""
        latest = None
        for t in (self.placed_at, self.ship_by, self.possession_at, self.cancelled_at, self.rated_at):
            if t is not None and (latest is None or t > latest):
                latest = t
        if self.delivered and (latest is None or self.delivered[-1] > latest):
            latest = self.delivered[-1]
        if self.flawed and (latest is None or self.flawed[-1][1] > latest):
            latest = self.flawed[-1][1]
        return 0 if latest is None else latest

    def first_flawed_at(self) -> int | None:
        return self.flawed[0][1] if self.flawed else None

    # --- storage ----------------------------------------------------------------------

    def dumps(self) -> bytes:
        return compact_json.dumpb(
            [self.placed_at, self.ship_by, self.buyer_id, self.show_id, self.possession_at,
             int(self.carrier_fault), self.cancelled_at, int(self.cancelled_by_seller),
             self.delivered, self.flawed, self.rated_at, self.stars, self.rating_id,
             self.rating_buyer, self.mask, self.counted_buyer, self.flawed_month, self.due]
        )

    @staticmethod
    def due_of(raw: bytes) -> int | None:
        """The `due` of a stored order (`dumps`), without decoding the rest: its last item."""
        tail = raw[raw.rindex(b",") + 1:-1]
        return None if tail == b"null" else int(tail)

    @classmethod
    def loads(cls, raw: bytes | str) -> OrderState:
        v: list[Any] = compact_json.loads(raw)
        o = cls.__new__(cls)
        (o.placed_at, o.ship_by, o.buyer_id, o.show_id, o.possession_at, fault, o.cancelled_at,
         by_seller, o.delivered, flawed, o.rated_at, o.stars, o.rating_id, o.rating_buyer,
         o.mask, o.counted_buyer, o.flawed_month, o.due) = v
        o.carrier_fault = bool(fault)
        o.cancelled_by_seller = bool(by_seller)
        o.flawed = [tuple(entry) for entry in flawed] if flawed else []
        return o

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrderState) and self.dumps() == other.dumps()

    def __repr__(self) -> str:
        return f"OrderState({self.dumps().decode()})"
