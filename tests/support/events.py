"""Input records for the decision core, as (record name, fields), with ids of their own."""

from __future__ import annotations

from datetime import UTC, datetime

HOUR = 3_600_000
DAY = 24 * HOUR
SELLER = "seller-1"


def at(text: str) -> int:
    """Milliseconds of an ISO time in UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


WED = at("2026-11-18T12:00")  # placed Wednesday -> ship_by Friday 2026-11-20 23:59:59.999
SHIP_BY = at("2026-11-20T23:59:59.999")
_ids = iter(range(1, 10**9))


def order(oid: str = "o1", placed: int = WED, buyer: str = "b1", ship_by: int | None = None) -> tuple[str, dict]:
    return "OrderPlaced", dict(event_id=f"e{next(_ids)}", order_id=oid, seller_id=SELLER, buyer_id=buyer,
                               show_id="show-1", amount_cents=1000, currency="USD", placed_at=placed,
                               ship_by=ship_by)


def scan(when: int, *oids: str, kind: str = "ACCEPTED", fault: bool = False) -> tuple[str, dict]:
    return "ShipmentScan", dict(event_id=f"e{next(_ids)}", shipment_id="sh", order_ids=list(oids or ["o1"]),
                                seller_id=SELLER, carrier="ups", tracking_number="1z", scan_type=kind,
                                carrier_fault=fault, scanned_at=when)


def cancel(when: int, by: str = "SELLER", oid: str = "o1") -> tuple[str, dict]:
    return "OrderCancelled", dict(event_id=f"e{next(_ids)}", order_id=oid, seller_id=SELLER, initiated_by=by,
                                  reason="r", cancelled_at=when)


def refund(when: int, reason: str = "DAMAGED", oid: str = "o1") -> tuple[str, dict]:
    return "RefundIssued", dict(event_id=f"e{next(_ids)}", refund_id=f"r{next(_ids)}", order_id=oid,
                                seller_id=SELLER, reason=reason, amount_cents=100, refunded_at=when)


def rating(when: int, stars: int, oid: str = "o1", rid: str | None = None) -> tuple[str, dict]:
    return "RatingSubmitted", dict(event_id=f"e{next(_ids)}", rating_id=rid or f"rt{next(_ids)}", order_id=oid,
                                   seller_id=SELLER, buyer_id="b1", stars=stars, show_id=None, rated_at=when)
