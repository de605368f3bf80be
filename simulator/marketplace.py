"""A deterministic, realistic simulated marketplace publishing the five input topics.

Sellers have behaviour profiles; they run live shows where buyers win several items,
ship (combined per buyer and show), get scanned by carriers, cancel, refund and get
rated. A discrete-event simulation emits every event in timestamp order.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rules.calendar import ShipByCalendar
from rules.units import DAY_MS, HOUR_MS

HOUR, DAY = HOUR_MS, DAY_MS


@dataclass(frozen=True)
class Profile:
    """How a kind of seller behaves: probabilities per order, volume per day."""

    name: str
    orders_per_day: float
    late: float  # hands the parcel over after ship_by
    never_ships: float  # never hands it over
    cancel: float  # seller-initiated cancellation
    flawed: float  # refunded as damaged / wrong / missing
    counterfeit: float  # refunded as counterfeit
    low_rating: float  # 1-2 stars when rated


PROFILES = {
    "reliable": Profile("reliable", 30, 0.01, 0.0, 0.003, 0.002, 0.0, 0.01),
    "slow_shipper": Profile("slow_shipper", 25, 0.30, 0.03, 0.005, 0.004, 0.0, 0.06),
    "canceller": Profile("canceller", 25, 0.02, 0.0, 0.12, 0.004, 0.0, 0.03),
    "flawed_items": Profile("flawed_items", 25, 0.02, 0.0, 0.004, 0.10, 0.0, 0.10),
    "counterfeit_ring": Profile("counterfeit_ring", 15, 0.03, 0.0, 0.01, 0.02, 0.08, 0.15),
    "small_seller": Profile("small_seller", 0.4, 0.05, 0.0, 0.02, 0.02, 0.0, 0.05),
}
# share of sellers per profile
MIX = (("reliable", 0.55), ("small_seller", 0.25), ("slow_shipper", 0.06), ("canceller", 0.05),
       ("flawed_items", 0.05), ("counterfeit_ring", 0.04))
CARRIERS = ("ups", "usps", "fedex", "dhl")
FLAWED_REASONS = ("DAMAGED", "WRONG_ITEM", "MISSING_ITEM")
OTHER_REASONS = ("NOT_AS_DESCRIBED", "BUYER_REMORSE", "OTHER")


@dataclass
class Seller:
    seller_id: str
    profile: Profile
    size: float  # volume multiplier (Zipf-like)


def make_sellers(rng: random.Random, count: int, zipf: float = 0.0) -> list[Seller]:
    sellers = []
    names, weights = zip(*MIX, strict=False)
    for i in range(count):
        profile = PROFILES[rng.choices(names, weights)[0]]
        if count >= 6 and i < 6:  # every run shows each profile at least once
            profile = PROFILES[("reliable", "slow_shipper", "canceller", "flawed_items",
                                "counterfeit_ring", "small_seller")[i]]
        size = 1.0 if zipf <= 0 else min(50.0, 1.0 / ((i % 1000) + 1) ** zipf * 20)
        sellers.append(Seller(f"seller-{i:05d}-{profile.name}", profile, size))
    return sellers


class Marketplace:
    """Generates (timestamp_ms, record_name, record) in timestamp order."""

    def __init__(self, seed: int, sellers: int, start_ms: int, zipf: float = 0.0,
                 timezone: str = "UTC") -> None:
        self.rng = random.Random(seed)
        self.sellers = make_sellers(self.rng, sellers, zipf)
        self.start_ms = start_ms
        self.calendar = ShipByCalendar(timezone)
        self._heap: list[tuple[int, int, str, dict[str, Any]]] = []
        self._seq = 0
        self._day = -1
        self._ids = 0

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids:09d}"

    def _at(self, ts: int, name: str, record: dict[str, Any]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (ts, self._seq, name, record))

    def _plan_day(self, day: int) -> None:
        """Schedule every seller's shows for one day, and the orders' whole futures."""
        rng = self.rng
        day_start = self.start_ms + day * DAY
        for seller in self.sellers:
            expected = seller.profile.orders_per_day * seller.size
            if expected < 1 and rng.random() > expected:
                continue
            n_orders = max(1, int(rng.gauss(expected, expected ** 0.5)))
            show_start = day_start + rng.randrange(10 * HOUR, 22 * HOUR)
            show_id = self._id("show")
            buyers = [f"buyer-{rng.randrange(200_000):06d}" for _ in range(max(1, n_orders // 3))]
            by_buyer: dict[str, list[tuple[str, int]]] = {}
            for _ in range(n_orders):
                buyer = rng.choice(buyers)
                placed = show_start + rng.randrange(0, 2 * HOUR)
                order_id = self._id("order")
                by_buyer.setdefault(buyer, []).append((order_id, placed))
                self._at(placed, "OrderPlaced", {
                    "event_id": self._id("ev"), "order_id": order_id, "seller_id": seller.seller_id,
                    "buyer_id": buyer, "show_id": show_id, "amount_cents": rng.randrange(500, 50_000),
                    "currency": "USD", "placed_at": placed, "ship_by": None,
                    "quantity": 1, "listing_id": None,
                })
            for buyer, orders in by_buyer.items():
                self._plan_shipment(seller, buyer, orders, show_id)

    def _plan_shipment(self, seller: Seller, buyer: str, orders: list[tuple[str, int]], show_id: str) -> None:
        rng, p = self.rng, seller.profile
        last_placed = max(t for _, t in orders)
        # a combined shipment is due by the earliest ship_by of the orders in it
        ship_by = self.calendar.ship_by(min(t for _, t in orders))
        sid = seller.seller_id
        kept = []
        for order_id, placed in orders:
            if rng.random() < p.cancel:
                self._at(placed + rng.randrange(HOUR, 30 * HOUR), "OrderCancelled", {
                    "event_id": self._id("ev"), "order_id": order_id, "seller_id": sid,
                    "initiated_by": "SELLER", "reason": "out of stock", "cancelled_at": 0})
            elif rng.random() < 0.01:
                self._at(placed + rng.randrange(HOUR, 10 * HOUR), "OrderCancelled", {
                    "event_id": self._id("ev"), "order_id": order_id, "seller_id": sid,
                    "initiated_by": "BUYER", "reason": "changed my mind", "cancelled_at": 0})
            else:
                kept.append(order_id)
        if not kept:
            return
        if rng.random() < p.never_ships:
            return
        if rng.random() < p.late:
            handoff = ship_by + rng.randrange(HOUR, 3 * DAY)
        else:
            handoff = last_placed + rng.randrange(2 * HOUR, max(3 * HOUR, ship_by - last_placed - HOUR))
        carrier = rng.choice(CARRIERS)
        shipment = self._id("shp")
        tracking = f"1Z{rng.randrange(10**12):012d}"
        label = max(last_placed + HOUR, handoff - rng.randrange(HOUR, 12 * HOUR))
        steps = [("LABEL_CREATED", label), ("ACCEPTED", handoff),
                 ("IN_TRANSIT", handoff + rng.randrange(4 * HOUR, DAY)),
                 ("OUT_FOR_DELIVERY", handoff + rng.randrange(2 * DAY, 4 * DAY))]
        delivered = steps[-1][1] + rng.randrange(2 * HOUR, 10 * HOUR)
        steps.append(("DELIVERED", delivered))
        for scan_type, ts in steps:
            # carrier data arrives late: a scan may be published hours after it happened
            self._at(ts + rng.randrange(0, 2 * HOUR), "ShipmentScan", {
                "event_id": self._id("ev"), "shipment_id": shipment, "order_ids": list(kept),
                "seller_id": sid, "carrier": carrier, "tracking_number": tracking,
                "scan_type": scan_type, "carrier_fault": False, "scanned_at": ts})
        for order_id in kept:
            roll = rng.random()
            if roll < p.counterfeit:
                reason = "COUNTERFEIT"
            elif roll < p.counterfeit + p.flawed:
                reason = rng.choice(FLAWED_REASONS)
            elif roll < p.counterfeit + p.flawed + 0.01:
                reason = rng.choice(OTHER_REASONS)
            else:
                reason = None
            if reason:
                self._at(delivered + rng.randrange(HOUR, 5 * DAY), "RefundIssued", {
                    "event_id": self._id("ev"), "refund_id": self._id("rf"), "order_id": order_id,
                    "seller_id": sid, "reason": reason, "amount_cents": 1000, "refunded_at": 0})
            if rng.random() < 0.45:
                low = rng.random() < (p.low_rating + (0.5 if reason else 0.0))
                self._at(delivered + rng.randrange(HOUR, 7 * DAY), "RatingSubmitted", {
                    "event_id": self._id("ev"), "rating_id": self._id("rt"), "order_id": order_id,
                    "seller_id": sid, "buyer_id": buyer,
                    "stars": rng.choice((1, 2)) if low else rng.choice((3, 4, 5, 5, 5)),
                    "show_id": show_id, "rated_at": 0})

    def events(self, until_ms: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """Every event with timestamp < until_ms, in timestamp order (days planned as needed)."""
        while True:
            next_day_start = self.start_ms + (self._day + 1) * DAY
            if next_day_start < until_ms and (not self._heap or self._heap[0][0] >= next_day_start):
                self._day += 1
                self._plan_day(self._day)
                continue
            if not self._heap or self._heap[0][0] >= until_ms:
                return
            ts, _, name, record = heapq.heappop(self._heap)
            for field in ("cancelled_at", "refunded_at", "rated_at"):
                if record.get(field) == 0:
                    record[field] = ts
            yield ts, name, record
