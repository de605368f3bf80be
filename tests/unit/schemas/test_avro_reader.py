"""The compiled Avro readers read back exactly what fastavro reads, for every schema of
schemas/ (current and earlier versions), and name what is wrong with a bad body."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avro_reader import BadIndex, Truncated, compile_reader, read_long
from schemas.codec import CATALOG, SCHEMA_DIR, Codec, _load, _strip_logical_types
from tests.support.avro import LONG, strategy

SCHEMAS = {name: _strip_logical_types(v.source) for name, v in CATALOG.current.items()}
for path in sorted((SCHEMA_DIR / "history").glob("*.avsc")):
    SCHEMAS[Path(path).stem] = _strip_logical_types(_load(path))


def body(schema: Any, record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_compiles(name: str) -> None:
    assert compile_reader(SCHEMAS[name]) is not None


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_reader_reads_what_fastavro_reads(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    raw = body(schema, data.draw(strategy(schema, {})))
    read = compile_reader(schema)
    assert read is not None
    expected = fastavro.schemaless_reader(io.BytesIO(raw), fastavro.parse_schema(schema), None)
    record, end = read(b"HDR" + raw, 3)
    assert end == 3 + len(raw)
    assert record == expected
    assert list(record) == list(expected)  # fields in schema order


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_body_cut_short_is_truncated(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name]
    raw = body(schema, data.draw(strategy(schema, {})))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    read = compile_reader(schema)
    assert read is not None
    with pytest.raises((Truncated, IndexError)):
        read(raw[:cut], 0)


@given(LONG)
def test_long_decoding_matches_fastavro(n: int) -> None:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "long", n)
    raw = buf.getvalue()
    assert read_long(raw + b"\x00", 0) == (n, len(raw))


def test_an_enum_index_out_of_range_is_named() -> None:
    schema = {"type": "record", "name": "E", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]}}]}
    read = compile_reader(schema)
    assert read is not None
    assert read(b"\x02", 0) == ({"e": "B"}, 1)
    with pytest.raises(BadIndex):
        read(b"\x04", 0)  # index 2 of 2 symbols


def test_a_compiled_read_through_the_codec_equals_fastavros() -> None:
    codec = Codec()
    record = dict(event_id="e", order_id="o", seller_id="s", buyer_id="b", show_id=None, amount_cents=1999,
                  currency="USD", placed_at=1_700_000_000_000, ship_by=None, quantity=2, listing_id="l")
    name, decoded = codec.decode(codec.encode("OrderPlaced", record))
    assert name == "OrderPlaced" and decoded == record


def test_unsupported_schemas_are_left_to_fastavro() -> None:
    schema = {"type": "record", "name": "U", "fields": [{"name": "x", "type": ["int", "string", "null"]}]}
    assert compile_reader(schema) is None
