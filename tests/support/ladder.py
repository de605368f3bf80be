"""One late shipper on the broker: its records, the policy that warns it at a known
event, and the worker's outputs read back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from rules.calendar import ShipByCalendar
from schemas.codec import Codec
from tests.support.kafka import consume_all, consume_until

codec = Codec()
HOUR, DAY = 3_600_000, 86_400_000
_monday = (int(time.time() * 1000) // DAY - 70) // 7 * 7 * DAY + 4 * DAY  # 1970-01-05 was a Monday
WED = _monday + 2 * DAY + 12 * HOUR
SHIP_BY = ShipByCalendar("UTC").ship_by(WED)
SELLER, OTHER = "seller-late", "seller-clock"
ORDERS = [f"o{i:02d}" for i in range(40)]


def policy_file(tmp: Path) -> Path:
    """The default policy, with the late-shipment band crossed exactly at 4 % (no confidence
    bound), so the crossing event is known: the 2nd late order of 40."""
    doc = yaml.safe_load(Path("rules/policy.yaml").read_text())
    del doc["metrics"]["late_dropoff_rate"]["min_confidence"]
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def order(seller: str, oid: str, placed: int) -> bytes:
    return codec.encode("OrderPlaced", dict(
        event_id=f"ev-{seller}-{oid}", order_id=oid, seller_id=seller, buyer_id=f"buyer-{oid}", show_id="show",
        amount_cents=2000, currency="USD", placed_at=placed, ship_by=None))


def scan(oid: str, when: int, event_id: str) -> bytes:
    return codec.encode("ShipmentScan", dict(
        event_id=event_id, shipment_id=f"sh-{oid}", order_ids=[oid], seller_id=SELLER, carrier="usps",
        tracking_number="9400", scan_type="ACCEPTED", carrier_fault=False, scanned_at=when))


def decision(action_id: str, verdict: str, event_id: str, at: int) -> bytes:
    return codec.encode("ReviewDecision", dict(
        event_id=event_id, action_id=action_id, seller_id=SELLER, reviewer_id="reviewer-1", decision=verdict,
        note="checked the evidence", decided_at=at))


class Outputs:
    """Reads an output topic of the worker, decoded, keyed by seller."""

    def __init__(self, worker: Any, name: str) -> None:
        self.broker = worker.env["KAFKA_BOOTSTRAP_SERVERS"]
        self.topic = worker.topic(name)

    def until(self, check: Any, timeout: float = 60) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        def done(messages: list[Any]) -> bool:
            found[:] = [codec.decode(m.value())[1] for m in messages]
            return bool(check(found))

        try:
            consume_until(self.broker, self.topic, done, timeout=timeout)
        except AssertionError as exc:
            seen = [(r.get("action"), r.get("status"), r.get("template")) for r in found]
            raise AssertionError(f"{exc}: {seen}") from None
        return found

    def settled(self) -> list[dict[str, Any]]:
        """Every record on the topic now, read to its end (after `settle`)."""
        return [codec.decode(m.value())[1] for m in consume_all(self.broker, self.topic)]


def settle() -> None:
    """Let the worker's quiet period pass: nothing new may appear (checked by the caller)."""
    time.sleep(2.0)
