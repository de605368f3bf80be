"""Every schema round-trips; both framings decode; old writers are read; bad bytes are named."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro
import pytest

from schemas.codec import CATALOG, RECORD_NAMES, Codec, DecodeError, _strip_logical_types

T = 1_767_225_600_000
SAMPLES: dict[str, dict[str, Any]] = {
    "OrderPlaced": dict(event_id="e", order_id="o", seller_id="s", buyer_id="b", show_id=None,
                        amount_cents=100, currency="USD", placed_at=T, ship_by=None, quantity=2, listing_id="l"),
    "ShipmentScan": dict(event_id="e", shipment_id="sh", order_ids=["o1", "o2"], seller_id="s", carrier="ups",
                         tracking_number="1z", scan_type="DELIVERED", carrier_fault=True, scanned_at=T),
    "OrderCancelled": dict(event_id="e", order_id="o", seller_id="s", initiated_by="SELLER", reason="r",
                           cancelled_at=T),
    "RefundIssued": dict(event_id="e", refund_id="r", order_id="o", seller_id="s", reason="COUNTERFEIT",
                         amount_cents=5, refunded_at=T),
    "RatingSubmitted": dict(event_id="e", rating_id="r", order_id="o", seller_id="s", buyer_id="b", stars=1,
                            show_id="sh", rated_at=T),
    "ReviewDecision": dict(event_id="e", action_id="a", seller_id="s", reviewer_id="rv", decision="APPROVE",
                           note="ok", decided_at=T),
    "AppealFiled": dict(event_id="e", appeal_id="ap", action_id="a", seller_id="s", message="<b>hi</b>",
                        filed_at=T),
    "EnforcementAction": dict(action_id="a", seller_id="s", action="WARNING", status="ISSUED", rule_id="r",
                              metric="late_dropoff_rate", observed_rate=0.1, numerator=1, denominator=10,
                              threshold=0.04, window_days=30, evidence_order_ids=["o"], policy_version="1",
                              reason="Late.", decided_at=T, caused_by="e"),
    "Notification": dict(notification_id="n", seller_id="s", action_id=None, channels=["EMAIL", "PUSH"],
                         template="t", subject="s", body="b", created_at=T),
    "ReviewAudit": dict(event_id="e", action_id="a", seller_id="s", actor="rv", actor_role="reviewer",
                        step="DECIDE", detail="APPROVE: checked", at=T),
}
fig = dict(numerator=1, denominator=2, rate=0.5, standing="BELOW", threshold_below=0.1, threshold_exceeds=0.0)
SAMPLES["SellerMetrics"] = dict(
    seller_id="s", as_of=T, window_days=30, policy_version="1",
    cancellation_rate=fig, late_dropoff_rate=fig, unfulfilled_rate=fig, flawed_item_rate=fig,
    low_rating_rate=dict(fig, rate=None, standing="INSUFFICIENT_DATA"),
    flawed_items_by_reason={"DAMAGED": 1}, flawed_items_monthly=[{"month": "2026-01", "count": 1}],
)


def test_every_record_has_a_sample() -> None:
    assert set(SAMPLES) == set(RECORD_NAMES)


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_single_object_round_trip(name: str) -> None:
    codec = Codec()
    data = codec.encode(name, SAMPLES[name])
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == CATALOG.fingerprint_of(name)
    decoded_name, record = codec.decode(data)
    assert decoded_name == name
    assert record == SAMPLES[name]


@pytest.mark.parametrize("path", sorted(Path("schemas").glob("*.avsc")), ids=lambda p: p.stem)
def test_avsc_files_are_valid_avro_in_namespace_warden(path: Path) -> None:
    source = json.loads(path.read_text())
    fastavro.parse_schema(source)
    assert source["namespace"] == "warden"


def test_timestamps_are_timestamp_millis() -> None:
    for name in RECORD_NAMES:
        text = json.dumps(CATALOG.current[name].source)
        for field in CATALOG.current[name].source["fields"]:
            if field["name"].endswith("_at") or field["name"] in ("ship_by", "as_of"):
                assert "timestamp-millis" in json.dumps(field), (name, field["name"])
        assert text


def test_older_writer_version_is_read_by_current_reader() -> None:
    v1 = json.loads(Path("schemas/history/OrderPlaced.v1.avsc").read_text())
    old = {k: v for k, v in SAMPLES["OrderPlaced"].items() if k not in ("quantity", "listing_id")}
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(v1), "CRC-64-AVRO"))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(_strip_logical_types(v1)), old)
    name, record = Codec().decode(b"\xc3\x01" + fp + buf.getvalue())
    assert name == "OrderPlaced"
    assert record["quantity"] == 1 and record["listing_id"] is None  # defaults of the new fields
    assert record["order_id"] == "o"


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"\xc3\x01\x00\x01\x02\x03\x04\x05\x06\x07rest", "unknown_schema"),
    (b"\xc3\x01\x00", "truncated"),
    (b"\x7fgarbage", "bad_framing"),
    (b"\x00\x00\x00\x00\x01body", "unknown_schema"),  # Confluent framing with no registry set
])
def test_bad_bytes_are_named(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        Codec().decode(data)
    assert err.value.reason == reason


def test_truncated_body_is_rejected() -> None:
    data = Codec().encode("RatingSubmitted", SAMPLES["RatingSubmitted"])
    with pytest.raises(DecodeError) as err:
        Codec().decode(data[:-5])
    assert err.value.reason == "truncated"


def test_unknown_enum_symbol_is_rejected() -> None:
    data = bytearray(Codec().encode("OrderCancelled", SAMPLES["OrderCancelled"]))
    # the enum index follows event_id, order_id, seller_id (1-char strings: 2 bytes each)
    data[10 + 6] = 0x7E  # zig-zag 63: no such symbol
    with pytest.raises(DecodeError) as err:
        Codec().decode(bytes(data))
    assert err.value.reason == "unknown_enum_symbol"


class FakeRegistry:
    """An in-memory stand-in for confluent_kafka's SchemaRegistryClient (unit test only)."""

    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}

    def register_schema(self, subject: str, schema: Any) -> int:
        for sid, text in self.schemas.items():
            if text == schema.schema_str:
                return sid
        sid = len(self.schemas) + 1
        self.schemas[sid] = schema.schema_str
        return sid

    def get_schema(self, schema_id: int) -> Any:
        if schema_id not in self.schemas:
            raise KeyError(f"schema {schema_id} not found")
        return type("Registered", (), {"schema_str": self.schemas[schema_id]})()


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_confluent_framing_round_trip(name: str) -> None:
    registry = FakeRegistry()
    codec = Codec("http://registry.invalid", client_factory=lambda url: registry)
    data = codec.encode(name, SAMPLES[name], topic="t")
    assert data[0] == 0
    (sid,) = struct.unpack(">I", data[1:5])
    assert sid in registry.schemas
    assert codec.decode(data) == (name, SAMPLES[name])
    # and single-object input still decodes when a registry is configured
    assert codec.decode(Codec().encode(name, SAMPLES[name])) == (name, SAMPLES[name])


def test_confluent_unknown_schema_id() -> None:
    codec = Codec("http://registry.invalid", client_factory=lambda url: FakeRegistry())
    with pytest.raises(DecodeError) as err:
        codec.decode(b"\x00\x00\x00\x00\x09body")
    assert err.value.reason == "unknown_schema"
