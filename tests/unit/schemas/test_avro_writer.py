"""The compiled Avro writers write fastavro's bytes exactly, for every record of schemas/."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.avro_writer import compile_writer, write_long
from schemas.codec import CATALOG, Codec, _strip_logical_types
from tests.support.avro import LONG, strategy


def fastavro_bytes(name: str, record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, CATALOG.current[name].writer, record)
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(CATALOG.current))
def test_every_schema_compiles(name: str) -> None:
    assert compile_writer(_strip_logical_types(CATALOG.current[name].source)) is not None


@pytest.mark.parametrize("name", sorted(CATALOG.current))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_writer_writes_fastavros_bytes(name: str, data: st.DataObject) -> None:
    schema = _strip_logical_types(CATALOG.current[name].source)
    record = data.draw(strategy(schema, {}))
    write = compile_writer(schema, b"HDR")
    assert write is not None
    assert write(record) == b"HDR" + fastavro_bytes(name, record)


@given(LONG)
def test_long_encoding_matches_fastavro(n: int) -> None:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "long", n)
    assert write_long(n) == buf.getvalue()


def test_a_record_the_writer_cannot_take_gets_fastavros_error() -> None:
    codec = Codec()
    record = {"seller_id": "s1"}  # most fields missing
    with pytest.raises(Exception) as raised:
        codec.encode("SellerMetrics", record)
    assert not isinstance(raised.value, KeyError)  # fastavro's own error, not the compiled one's


def test_unsupported_schemas_are_left_to_fastavro() -> None:
    schema = {"type": "record", "name": "U", "fields": [{"name": "x", "type": ["int", "string", "null"]}]}
    assert compile_writer(schema) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_sub_records_carrying_their_encoding_write_the_same_bytes(data: st.DataObject) -> None:
    from rules.metrics import METRICS
    from schemas.avro_writer import Encoded
    from schemas.codec import encoded_part

    schema = _strip_logical_types(CATALOG.current["SellerMetrics"].source)
    record = data.draw(strategy(schema, {}))
    shared = dict(record)
    for name in METRICS:
        shared[name] = encoded_part("SellerMetrics", "warden.MetricFigure", record[name])
        assert isinstance(shared[name], Encoded) and shared[name] == record[name]
    shared["flawed_items_monthly"] = [encoded_part("SellerMetrics", "warden.MonthCount", m)
                                      for m in record["flawed_items_monthly"]]
    shared["flawed_items_by_reason"] = encoded_part("SellerMetrics", "flawed_items_by_reason",
                                                    record["flawed_items_by_reason"])
    assert Codec().encode("SellerMetrics", shared) == Codec().encode("SellerMetrics", record)
    assert Codec().encode("SellerMetrics", shared)[10:] == fastavro_bytes("SellerMetrics", record)
