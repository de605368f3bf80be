"""Avro binary writers compiled from a schema into plain Python functions.

fastavro's generic writer walks the schema for every record: about 21 µs for a
SellerMetrics, which a worker writes for most events. A writer compiled for one schema
does the same work with the walk done once, in a third of the time. It covers what
Warden's schemas use (primitives, records, enums, arrays, maps, unions of null and one
type); `compile_writer` returns None for anything else and the codec keeps fastavro.
The bytes are fastavro's exactly (a property test holds it to that), and a record the
compiled writer cannot take (a missing field, a wrong type) is handed to fastavro, whose
error names the field.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

Writer = Callable[[Any], bytes]

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _zigzag_table() -> dict[int, bytes]:
    table = {}
    for n in range(-64, 64):
        table[n] = bytes([(n << 1) ^ (n >> 63)])
    return table


_ONE_BYTE = _zigzag_table()


def write_long(n: int) -> bytes:
    """An Avro int or long: zig-zag, then base-128 varint."""
    b = _ONE_BYTE.get(n)
    if b is not None:
        return b
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


class Encoded(dict):  # type: ignore[type-arg]
    """A record or map value that carries its own Avro encoding, written as is: for values
    shared by many records (a metric's figure), encoded once. Read it as the dict it is."""

    __slots__ = ("avro",)

    def __init__(self, value: dict[str, Any], avro: bytes) -> None:
        super().__init__(value)
        self.avro = avro


class Unsupported(Exception):
    """A schema feature the compiler does not handle (fastavro is used instead)."""


class _Compiler:
    def __init__(self) -> None:
        self.named: dict[str, Any] = {}  # full name -> schema
        self.functions: dict[str, str] = {}  # full name -> generated function name
        self.sources: list[str] = []
        self.constants: dict[str, Any] = {}
        self.counter = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def constant(self, value: Any) -> str:
        name = self.fresh("K")
        self.constants[name] = value
        return name

    def full_name(self, name: str, namespace: str | None) -> str:
        if "." in name or not namespace:
            return name
        return f"{namespace}.{name}"

    def resolve(self, schema: Any, namespace: str | None) -> tuple[Any, str | None]:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            for candidate in (self.full_name(schema, namespace), schema):
                if candidate in self.named:
                    target = self.named[candidate]
                    return target, target.get("namespace") or candidate.rpartition(".")[0] or None
            raise Unsupported(f"unknown named type {schema}")
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            return schema["type"], namespace
        return schema, namespace

    def statements(self, schema: Any, value: str, namespace: str | None, indent: str) -> list[str]:
        """Code appending the encoding of the expression `value` to the bytearray `b`."""
        schema, namespace = self.resolve(schema, namespace)
        if isinstance(schema, str):
            return self.primitive(schema, value, indent)
        if isinstance(schema, list):
            return self.union(schema, value, namespace, indent)
        kind = schema.get("type")
        if kind == "record":
            function, item = self.record(schema, namespace), self.fresh("v")
            return [f"{indent}{item} = {value}",
                    f"{indent}if type({item}) is Encoded:",
                    f"{indent}    b += {item}.avro",
                    f"{indent}else:",
                    f"{indent}    {function}(b, {item})"]
        if kind == "enum":
            full = self.full_name(schema["name"], schema.get("namespace", namespace))
            self.named.setdefault(full, schema)
            table = self.constant({s: write_long(i) for i, s in enumerate(schema["symbols"])})
            return [f"{indent}b += {table}[{value}]"]
        if kind == "array":
            item = self.fresh("x")
            body = self.statements(schema["items"], item, namespace, indent + "        ")
            seq = self.fresh("s")
            return [f"{indent}{seq} = {value}",
                    f"{indent}if {seq}:",
                    f"{indent}    b += L(len({seq}))",
                    f"{indent}    for {item} in {seq}:",
                    *body,
                    f"{indent}b += Z"]
        if kind == "map":
            key, item, mapping = self.fresh("k"), self.fresh("x"), self.fresh("m")
            body = self.statements(schema["values"], item, namespace, indent + "            ")
            return [f"{indent}{mapping} = {value}",
                    f"{indent}if type({mapping}) is Encoded:",
                    f"{indent}    b += {mapping}.avro",
                    f"{indent}else:",
                    f"{indent}    if {mapping}:",
                    f"{indent}        b += L(len({mapping}))",
                    f"{indent}        for {key}, {item} in {mapping}.items():",
                    *self.primitive("string", key, indent + "            "),
                    *body,
                    f"{indent}    b += Z"]
        raise Unsupported(f"schema type {kind!r}")

    def primitive(self, kind: str, value: str, indent: str) -> list[str]:
        if kind == "null":
            return [f"{indent}if {value} is not None: raise TypeError('not null')"]
        if kind == "boolean":
            return [f"{indent}b += T if {value} else F"]
        if kind in ("int", "long"):
            return [f"{indent}b += L({value}.__index__())"]
        if kind == "float":
            return [f"{indent}b += PF({value})"]
        if kind == "double":
            return [f"{indent}b += PD({value})"]
        if kind == "string":
            encoded = self.fresh("e")
            return [f"{indent}{encoded} = {value}.encode()", f"{indent}b += L(len({encoded}))",
                    f"{indent}b += {encoded}"]
        if kind == "bytes":
            raw = self.fresh("e")
            return [f"{indent}{raw} = bytes({value})", f"{indent}b += L(len({raw}))", f"{indent}b += {raw}"]
        raise Unsupported(f"primitive {kind!r}")

    def union(self, branches: list[Any], value: str, namespace: str | None, indent: str) -> list[str]:
        kinds = [self.resolve(b, namespace)[0] for b in branches]
        if len(branches) != 2 or "null" not in kinds:
            raise Unsupported("unions other than null and one type")
        null_index = kinds.index("null")
        other = 1 - null_index
        inner = self.fresh("u")
        return [f"{indent}{inner} = {value}",
                f"{indent}if {inner} is None:",
                f"{indent}    b += {self.constant(write_long(null_index))}",
                f"{indent}else:",
                f"{indent}    b += {self.constant(write_long(other))}",
                *self.statements(branches[other], inner, namespace, indent + "    ")]

    def record(self, schema: dict[str, Any], namespace: str | None) -> str:
        namespace = schema.get("namespace", namespace)
        full = self.full_name(schema["name"], namespace)
        if full in self.functions:
            return self.functions[full]
        self.named[full] = schema
        name = self.functions[full] = self.fresh("w_")
        lines = [f"def {name}(b, r):"]
        for f in schema["fields"]:
            lines += self.statements(f["type"], f"r[{f['name']!r}]", namespace, "    ")
        if len(lines) == 1:
            lines.append("    pass")
        self.sources.append("\n".join(lines))
        return name


def compile_writer(schema: dict[str, Any], prefix: bytes = b"") -> Writer | None:
    """A function writing `prefix` + the Avro body of a record of `schema` (logical types
    already stripped), or None when the schema uses what the compiler does not cover."""
    compiler = _Compiler()
    try:
        top = compiler.record(schema, None)
        field_writers = {}
        for f in schema["fields"]:  # each top-level field's value alone, for Encoded values
            function = field_writers[f["name"]] = compiler.fresh("f_")
            compiler.sources.append("\n".join([f"def {function}(b, v):",
                                                *compiler.statements(f["type"], "v", schema.get("namespace"), "    ")]))
    except Unsupported:
        return None
    namespace: dict[str, Any] = {
        "L": write_long, "PF": struct.Struct("<f").pack, "PD": struct.Struct("<d").pack,
        "T": b"\x01", "F": b"\x00", "Z": b"\x00", "PREFIX": prefix, "Encoded": Encoded, **compiler.constants,
    }
    source = "\n\n".join(compiler.sources) + (
        f"\n\ndef write(r):\n    b = bytearray(PREFIX)\n    {top}(b, r)\n    return bytes(b)\n")
    exec(compile(source, f"<avro writer {schema.get('name')}>", "exec"), namespace)
    write: Writer = namespace["write"]
    # for values encoded once (Encoded): the writer of each named record type, and of each
    # top-level field's value
    write.parts = {full: _part_writer(namespace[function]) for full, function in compiler.functions.items()}  # type: ignore[attr-defined]
    write.fields = {name: _part_writer(namespace[function]) for name, function in field_writers.items()}  # type: ignore[attr-defined]
    return write


def _part_writer(function: Callable[[bytearray, Any], None]) -> Writer:
    def write_part(value: Any) -> bytes:
        b = bytearray()
        function(b, value)
        return bytes(b)

    return write_part
