"""The Avro wire format: single-object encoding by default, Confluent framing with a registry.

Every `.avsc` in this folder (and every earlier version in `history/`) is parsed once, at
import. Readers are built with the `timestamp-millis` logical type stripped, so timestamps
decode as plain epoch-millisecond ints (the engine's unit) and no `datetime` is built on
the hot path; the Parsing Canonical Form, hence every fingerprint, is unaffected.
"""

from __future__ import annotations

import copy
import io
import json
import struct
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas import avro_reader
from schemas.avro_reader import compile_reader
from schemas.avro_writer import Encoded, compile_writer

SCHEMA_DIR = Path(__file__).resolve().parent
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = 0

INPUT_RECORDS = (
    "OrderPlaced",
    "ShipmentScan",
    "OrderCancelled",
    "RefundIssued",
    "RatingSubmitted",
    "ReviewDecision",
    "AppealFiled",
)
OUTPUT_RECORDS = ("EnforcementAction", "Notification", "SellerMetrics", "ReviewAudit")
RECORD_NAMES = INPUT_RECORDS + OUTPUT_RECORDS

Record = dict[str, Any]


class DecodeError(ValueError):
    """A record that cannot be decoded; `reason` is a short, fixed label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _strip_logical_types(node: Any) -> Any:
    """Return a copy of a schema with `logicalType` removed (timestamps stay plain longs)."""
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


def _load(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one record schema, as written on the wire."""

    name: str
    source: dict[str, Any]
    writer: Any  # fastavro-parsed, logical types stripped
    compiled: Any  # the body writer compiled for this schema (schemas.avro_writer), or None
    compiled_reader: Any  # the body reader compiled for this schema (schemas.avro_reader), or None
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO of the Parsing Canonical Form
    current: bool


def _version(name: str, source: dict[str, Any], current: bool) -> SchemaVersion:
    pcf = to_parsing_canonical_form(source)
    fp = bytes.fromhex(fingerprint(pcf, "CRC-64-AVRO"))
    stripped = _strip_logical_types(copy.deepcopy(source))
    parsed = fastavro.parse_schema(stripped)
    return SchemaVersion(name=name, source=source, writer=parsed,
                         compiled=compile_writer(stripped) if current else None,
                         compiled_reader=compile_reader(stripped), fingerprint=fp, current=current)


def _write_body(version: SchemaVersion, record: Mapping[str, Any]) -> bytes:
    """A record's Avro body: by the compiled writer, or by fastavro for what it cannot take
    (fastavro then writes it, or its error names what is wrong)."""
    if version.compiled is not None:
        try:
            return version.compiled(record)  # type: ignore[no-any-return]
        except Exception:
            pass
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, version.writer, record)
    return buf.getvalue()


def encoded_part(record: str, part: str, value: dict[str, Any]) -> dict[str, Any]:
    """`value` carrying its encoding (schemas.avro_writer.Encoded), so that every record
    sharing it writes those bytes as they are: `part` is the full name of a record type
    within the current `record` schema ("warden.MonthCount"), or a top-level field of it
    ("flawed_items_by_reason"). A plain dict when the writer of `record` is not compiled."""
    compiled = CATALOG.current[record].compiled
    if compiled is None:
        return value
    writer = compiled.parts.get(part) or compiled.fields[part]
    return Encoded(value, writer(value))


class SchemaCatalog:
    """All schemas of `schemas/`: the current version of each record and every earlier one,
    read from their files when first asked for (nothing is read at import)."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        self.directory = directory
        self._current: dict[str, SchemaVersion] | None = None
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}

    @property
    def current(self) -> dict[str, SchemaVersion]:
        if self._current is None:
            self._read()
        assert self._current is not None
        return self._current

    @property
    def by_fingerprint(self) -> dict[bytes, SchemaVersion]:
        if self._current is None:
            self._read()
        return self._by_fingerprint

    def _read(self) -> None:
        directory = self.directory
        current: dict[str, SchemaVersion] = {}
        by_fingerprint: dict[bytes, SchemaVersion] = {}
        for path in sorted(directory.glob("*.avsc")):
            source = _load(path)
            version = _version(source["name"], source, current=True)
            current[version.name] = version
            by_fingerprint[version.fingerprint] = version
        for path in sorted((directory / "history").glob("*.avsc")):
            source = _load(path)
            version = _version(source["name"], source, current=False)
            if version.name not in current:
                raise ValueError(f"{path}: no current schema named {version.name}")
            by_fingerprint.setdefault(version.fingerprint, version)
        missing = set(RECORD_NAMES) - set(current)
        if missing:
            raise ValueError(f"schemas/ lacks records {sorted(missing)}")
        self._current, self._by_fingerprint = current, by_fingerprint

    def fingerprint_of(self, name: str) -> bytes:
        return self.current[name].fingerprint


CATALOG = SchemaCatalog()


class SingleObjectCodec:
    """Avro single-object encoding (`C3 01` + 8-byte fingerprint + body); needs no registry."""

    def __init__(self, catalog: SchemaCatalog = CATALOG) -> None:
        self.catalog = catalog
        # fingerprint -> (record name, writer schema, reader schema or None when identical,
        # the compiled reader when identical)
        self._readers: dict[bytes, tuple[str, Any, Any, Any]] = {}
        for fp, version in catalog.by_fingerprint.items():
            reader = None if version.current else catalog.current[version.name].writer
            self._readers[fp] = (version.name, version.writer, reader,
                                 version.compiled_reader if version.current else None)
        self._headers = {n: SINGLE_OBJECT_MAGIC + v.fingerprint for n, v in catalog.current.items()}

    def decode(self, data: bytes) -> tuple[str, Record]:
        fp = data[2:10]
        entry = self._readers.get(fp)
        if entry is None:
            if len(fp) < 8:
                raise DecodeError("truncated", "single-object header shorter than 10 bytes")
            raise DecodeError("unknown_schema", f"unknown schema fingerprint {fp.hex()}")
        name, writer, reader, compiled = entry
        if compiled is not None:
            return name, _read_compiled(data, 10, compiled)
        return name, _read_body(data, 10, writer, reader)

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        return self._headers[name] + _write_body(self.catalog.current[name], record)


def _read_compiled(data: bytes, offset: int, read: Any) -> Record:
    """A body read by a compiled reader, with fastavro's failures named as `_read_body` does."""
    try:
        record, end = read(data, offset)
    except (avro_reader.Truncated, IndexError) as exc:
        raise DecodeError("truncated", f"record body ends early: {exc}") from None
    except avro_reader.BadIndex:
        raise DecodeError("unknown_enum_symbol", "enum symbol or union branch index out of range") from None
    except Exception as exc:  # a negative length, bad UTF-8, ...
        raise DecodeError("undecodable", f"{type(exc).__name__}: {exc}") from None
    if end != len(data):
        raise DecodeError("trailing_bytes", f"{len(data) - end} bytes after the record")
    return record  # type: ignore[no-any-return]


def _read_body(data: bytes, offset: int, writer: Any, reader: Any) -> Record:
    buf = io.BytesIO(data)
    buf.seek(offset)
    try:
        record = fastavro.schemaless_reader(buf, writer, reader)
    except EOFError as exc:
        raise DecodeError("truncated", f"record body ends early: {exc}") from None
    except IndexError as exc:
        # fastavro's reader: a symbol/branch index past its list, or a read past the end
        if "list index" in str(exc):
            raise DecodeError("unknown_enum_symbol", "enum symbol or union branch index out of range") from None
        raise DecodeError("truncated", f"record body ends early: {exc}") from None
    except Exception as exc:  # fastavro raises many types for corrupt bodies
        raise DecodeError("undecodable", f"{type(exc).__name__}: {exc}") from None
    if buf.tell() != len(data):
        raise DecodeError("trailing_bytes", f"{len(data) - buf.tell()} bytes after the record")
    if not isinstance(record, dict):
        raise DecodeError("undecodable", "body is not a record")
    return record


class ConfluentCodec:
    """Confluent Schema Registry framing (`00` + 4-byte big-endian schema id + body)."""

    def __init__(self, registry_url: str, catalog: SchemaCatalog = CATALOG,
                 client_factory: Callable[[str], Any] | None = None) -> None:
        self.catalog = catalog
        if client_factory is None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            def client_factory(url: str) -> Any:
                return SchemaRegistryClient({"url": url})

        self._client = client_factory(registry_url)
        self._by_id: dict[int, tuple[str, Any, Any, Any]] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _reader_for(self, schema_id: int) -> tuple[str, Any, Any, Any]:
        entry = self._by_id.get(schema_id)
        if entry is not None:
            return entry
        try:
            registered = self._client.get_schema(schema_id)
        except Exception as exc:
            raise DecodeError("unknown_schema", f"schema id {schema_id}: {exc}") from None
        source = json.loads(registered.schema_str)
        name = source.get("name", "") if isinstance(source, dict) else ""
        short = name.rsplit(".", 1)[-1]
        if short not in self.catalog.current:
            raise DecodeError("unknown_schema", f"schema id {schema_id} is {name!r}, not a Warden record")
        writer = fastavro.parse_schema(_strip_logical_types(source))
        current = self.catalog.current[short]
        same = to_parsing_canonical_form(source) == to_parsing_canonical_form(current.source)
        entry = (short, writer, None if same else current.writer, current.compiled_reader if same else None)
        self._by_id[schema_id] = entry
        return entry

    def decode(self, data: bytes) -> tuple[str, Record]:
        if len(data) < 5:
            raise DecodeError("truncated", "Confluent header shorter than 5 bytes")
        (schema_id,) = struct.unpack_from(">I", data, 1)
        name, writer, reader, compiled = self._reader_for(schema_id)
        if compiled is not None:
            return name, _read_compiled(data, 5, compiled)
        return name, _read_body(data, 5, writer, reader)

    def schema_id(self, name: str, subject: str) -> int:
        key = (name, subject)
        schema_id = self._ids.get(key)
        if schema_id is None:
            from confluent_kafka.schema_registry import Schema

            with self._lock:
                source = json.dumps(self.catalog.current[name].source)
                schema_id = int(self._client.register_schema(subject, Schema(source, "AVRO")))
                self._ids[key] = schema_id
        return schema_id

    def encode(self, name: str, record: Mapping[str, Any], subject: str) -> bytes:
        header = struct.pack(">bI", CONFLUENT_MAGIC, self.schema_id(name, subject))
        return header + _write_body(self.catalog.current[name], record)


class Codec:
    """Decodes either framing by its first byte; encodes single-object unless a registry is set."""

    def __init__(self, registry_url: str | None = None, catalog: SchemaCatalog = CATALOG,
                 client_factory: Callable[[str], Any] | None = None) -> None:
        self.single = SingleObjectCodec(catalog)
        self.confluent = (
            ConfluentCodec(registry_url, catalog, client_factory) if registry_url else None
        )

    def decode(self, data: bytes | None) -> tuple[str, Record]:
        if not data:
            raise DecodeError("empty", "record value is empty")
        first = data[0]
        if data[:2] == SINGLE_OBJECT_MAGIC:
            return self.single.decode(data)
        if first == CONFLUENT_MAGIC:
            if self.confluent is None:
                raise DecodeError("unknown_schema", "Confluent-framed record but SCHEMA_REGISTRY_URL is unset")
            return self.confluent.decode(data)
        raise DecodeError("bad_framing", f"unknown framing byte 0x{first:02x}")

    def encode(self, name: str, record: Mapping[str, Any], topic: str = "") -> bytes:
        if self.confluent is not None:
            return self.confluent.encode(name, record, subject=f"{topic}-value")
        return self.single.encode(name, record)
