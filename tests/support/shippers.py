"""A late shipper's records for the console's and the operations' tests."""

from __future__ import annotations

from schemas.codec import Codec

codec = Codec()
HOUR, DAY = 3_600_000, 86_400_000


def late_shipper(seller: str, start: int) -> list[tuple[str, bytes]]:
    """40 orders, 30 shipped in time and 10 late: a warning at the 2nd late one."""
    out = []
    ship_by = start + 2 * DAY
    for i in range(40):
        oid = f"{seller}-o{i:02d}"
        out.append(("marketplace.orders", codec.encode("OrderPlaced", dict(
            event_id=f"ev-{oid}", order_id=oid, seller_id=seller, buyer_id=f"buyer-{i}", show_id=f"show-{i // 10}",
            amount_cents=2000, currency="USD", placed_at=start + i * 60_000, ship_by=ship_by))))
    for i in range(40):
        oid = f"{seller}-o{i:02d}"
        at = ship_by - 8 * HOUR if i < 30 else ship_by + (i - 29) * HOUR
        out.append(("marketplace.shipment-scans", codec.encode("ShipmentScan", dict(
            event_id=f"ev-scan-{oid}", shipment_id=f"sh-{oid}", order_ids=[oid], seller_id=seller, carrier="usps",
            tracking_number="9400", scan_type="ACCEPTED", carrier_fault=False, scanned_at=at))))
    return out
