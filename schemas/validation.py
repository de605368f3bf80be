"""Field rules a decoded input record must keep (CONTRACT §8) beyond what its schema says."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The earliest timestamp Warden accepts: 2000-01-01T00:00:00Z. Anything older is a unit error.
EARLIEST_MS = 946_684_800_000

# Non-empty string fields per record (the ids every rule needs).
REQUIRED_IDS: dict[str, tuple[str, ...]] = {
    "OrderPlaced": ("event_id", "order_id", "seller_id", "buyer_id"),
    "ShipmentScan": ("event_id", "shipment_id", "seller_id"),
    "OrderCancelled": ("event_id", "order_id", "seller_id"),
    "RefundIssued": ("event_id", "refund_id", "order_id", "seller_id"),
    "RatingSubmitted": ("event_id", "rating_id", "order_id", "seller_id", "buyer_id"),
    "ReviewDecision": ("event_id", "action_id", "seller_id", "reviewer_id"),
    "AppealFiled": ("event_id", "appeal_id", "action_id", "seller_id"),
}

# The event time of each record, and its other timestamps.
EVENT_TIME: dict[str, str] = {
    "OrderPlaced": "placed_at",
    "ShipmentScan": "scanned_at",
    "OrderCancelled": "cancelled_at",
    "RefundIssued": "refunded_at",
    "RatingSubmitted": "rated_at",
    "ReviewDecision": "decided_at",
    "AppealFiled": "filed_at",
}
OTHER_TIMES: dict[str, tuple[str, ...]] = {"OrderPlaced": ("ship_by",)}

MAX_ID_LENGTH = 256


class FieldRuleViolation(ValueError):
    """A decoded record that breaks a field rule; `reason` is a short, fixed label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def validate(name: str, record: Mapping[str, Any], now_ms: int, max_future_ms: int) -> None:
    """Raise `FieldRuleViolation` when `record` (of schema `name`) breaks a field rule."""
    for field in REQUIRED_IDS.get(name, ()):
        value = record.get(field)
        if not value or not str(value).strip():
            raise FieldRuleViolation(f"missing_{field}", f"{name}.{field} is empty")
        if len(value) > MAX_ID_LENGTH:
            raise FieldRuleViolation("id_too_long", f"{name}.{field} is longer than {MAX_ID_LENGTH}")
    latest = now_ms + max_future_ms
    for field in (EVENT_TIME[name], *OTHER_TIMES.get(name, ())):
        ts = record.get(field)
        if ts is None:
            continue
        if ts > latest:
            raise FieldRuleViolation(
                "timestamp_in_future", f"{name}.{field}={ts} is more than {max_future_ms} ms ahead"
            )
        if ts < EARLIEST_MS:
            raise FieldRuleViolation("timestamp_too_old", f"{name}.{field}={ts} is before 2000-01-01")
    if name == "RatingSubmitted":
        stars = record["stars"]
        if not 1 <= stars <= 5:
            raise FieldRuleViolation("stars_out_of_range", f"RatingSubmitted.stars={stars} is outside 1..5")
    elif name == "ShipmentScan":
        order_ids = record["order_ids"]
        if not order_ids or not all(order_ids):
            raise FieldRuleViolation("missing_order_ids", "ShipmentScan.order_ids is empty or has an empty id")
    elif name == "OrderPlaced":
        if record["amount_cents"] < 0:
            raise FieldRuleViolation("negative_amount", "OrderPlaced.amount_cents is negative")
        ship_by = record.get("ship_by")
        if ship_by is not None and ship_by < record["placed_at"]:
            raise FieldRuleViolation("ship_by_before_placed_at", "OrderPlaced.ship_by is before placed_at")
    elif name == "RefundIssued" and record["amount_cents"] < 0:
        raise FieldRuleViolation("negative_amount", "RefundIssued.amount_cents is negative")
