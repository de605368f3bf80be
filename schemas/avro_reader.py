"""Avro binary readers compiled from a schema into plain Python functions.

The counterpart of `schemas.avro_writer`: fastavro's reader walks the parsed schema for
every record (its dicts, for every field), which in a worker holding millions of table
objects costs twice what it does in a small process. A reader compiled for one schema
has the walk done once. It covers what Warden's schemas use (primitives, records,
enums, arrays, maps, unions of null and one type) and reads a record written with that
same schema; records written with an earlier version go through fastavro's schema
resolution. The values are fastavro's exactly (a property test holds it to that).

A compiled reader is `read(data, pos) -> (record, end)`; a body that ends early raises
`Truncated`, an enum or union index out of range `BadIndex`, anything else malformed
(a negative length, bad UTF-8) `Malformed`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

Reader = Callable[[bytes, int], tuple[Any, int]]

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class Truncated(Exception):
    """The body ends before the record does."""


class BadIndex(Exception):
    """An enum symbol or union branch index out of range."""


class Malformed(Exception):
    """Bytes that no writer of the schema produces."""


class Unsupported(Exception):
    """A schema feature the compiler does not handle (fastavro is used instead)."""


def read_long(data: bytes, pos: int) -> tuple[int, int]:
    """An Avro int or long at `pos` (base-128 varint, then zig-zag); returns (value, end)."""
    shift = 0
    z = 0
    try:
        while True:
            b = data[pos]
            pos += 1
            z |= (b & 0x7F) << shift
            if b < 0x80:
                return (z >> 1) ^ -(z & 1), pos
            shift += 7
            if shift > 63:
                raise Malformed("varint longer than 10 bytes")
    except IndexError:
        raise Truncated("the body ends inside a number") from None


_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT = struct.Struct("<f").unpack_from


class _Compiler:
    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.functions: dict[str, str] = {}
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

    def long(self, target: str, indent: str) -> list[str]:
        """Read a varint into `target`; one-byte values (most ids' lengths, small counts)
        without a call."""
        return [f"{indent}c = data[pos]",
                f"{indent}if c < 0x80:",
                f"{indent}    {target} = (c >> 1) ^ -(c & 1)",
                f"{indent}    pos += 1",
                f"{indent}else:",
                f"{indent}    {target}, pos = RL(data, pos)"]

    def statements(self, schema: Any, target: str, namespace: str | None, indent: str) -> list[str]:
        """Code reading one value of `schema` at `pos` into the variable `target`."""
        schema, namespace = self.resolve(schema, namespace)
        if isinstance(schema, str):
            return self.primitive(schema, target, indent)
        if isinstance(schema, list):
            return self.union(schema, target, namespace, indent)
        kind = schema.get("type")
        if kind == "record":
            return [f"{indent}{target}, pos = {self.record(schema, namespace)}(data, pos)"]
        if kind == "enum":
            full = self.full_name(schema["name"], schema.get("namespace", namespace))
            self.named.setdefault(full, schema)
            symbols = self.constant(tuple(schema["symbols"]))
            index = self.fresh("i")
            return [*self.long(index, indent),
                    f"{indent}if not 0 <= {index} < {len(schema['symbols'])}: raise BadIndex('enum symbol')",
                    f"{indent}{target} = {symbols}[{index}]"]
        if kind in ("array", "map"):
            count, item, key = self.fresh("n"), self.fresh("x"), self.fresh("k")
            inner = indent + "        "
            if kind == "array":
                body = [*self.statements(schema["items"], item, namespace, inner),
                        f"{inner}{target}.append({item})"]
                start = f"{indent}{target} = []"
            else:
                body = [*self.primitive("string", key, inner),
                        *self.statements(schema["values"], item, namespace, inner),
                        f"{inner}{target}[{key}] = {item}"]
                start = f"{indent}{target} = {{}}"
            return [start,
                    f"{indent}while True:",
                    *self.long(count, indent + "    "),
                    f"{indent}    if {count} == 0: break",
                    f"{indent}    if {count} < 0:",
                    f"{indent}        {count} = -{count}",
                    f"{indent}        _, pos = RL(data, pos)  # the block's size in bytes",
                    f"{indent}    for _ in range({count}):",
                    *body]
        raise Unsupported(f"schema type {kind!r}")

    def primitive(self, kind: str, target: str, indent: str) -> list[str]:
        if kind == "null":
            return [f"{indent}{target} = None"]
        if kind == "boolean":
            return [f"{indent}{target} = data[pos] != 0", f"{indent}pos += 1"]
        if kind in ("int", "long"):
            return self.long(target, indent)
        if kind in ("float", "double"):
            size, unpack = (4, "UF") if kind == "float" else (8, "UD")
            return [f"{indent}if pos + {size} > end: raise Truncated('a {kind}')",
                    f"{indent}{target} = {unpack}(data, pos)[0]",
                    f"{indent}pos += {size}"]
        if kind in ("string", "bytes"):
            length = self.fresh("n")
            decode = ".decode()" if kind == "string" else ""
            return [*self.long(length, indent),
                    f"{indent}if {length} < 0: raise Malformed('negative length')",
                    f"{indent}if pos + {length} > end: raise Truncated('a {kind}')",
                    f"{indent}{target} = data[pos:pos + {length}]{decode}",
                    f"{indent}pos += {length}"]
        raise Unsupported(f"primitive {kind!r}")

    def union(self, branches: list[Any], target: str, namespace: str | None, indent: str) -> list[str]:
        kinds = [self.resolve(b, namespace)[0] for b in branches]
        if len(branches) != 2 or "null" not in kinds:
            raise Unsupported("unions other than null and one type")
        null_index = kinds.index("null")
        other = 1 - null_index
        index = self.fresh("i")
        return [*self.long(index, indent),
                f"{indent}if {index} == {null_index}:",
                f"{indent}    {target} = None",
                f"{indent}elif {index} == {other}:",
                *self.statements(branches[other], target, namespace, indent + "    "),
                f"{indent}else:",
                f"{indent}    raise BadIndex('union branch')"]

    def record(self, schema: dict[str, Any], namespace: str | None) -> str:
        namespace = schema.get("namespace", namespace)
        full = self.full_name(schema["name"], namespace)
        if full in self.functions:
            return self.functions[full]
        self.named[full] = schema
        name = self.functions[full] = self.fresh("r_")
        lines = [f"def {name}(data, pos):", "    end = len(data)"]
        fields = []
        for f in schema["fields"]:
            variable = self.fresh("f")
            fields.append(f"{f['name']!r}: {variable}")
            lines += self.statements(f["type"], variable, namespace, "    ")
        lines.append(f"    return {{{', '.join(fields)}}}, pos")
        self.sources.append("\n".join(lines))
        return name


def compile_reader(schema: dict[str, Any]) -> Reader | None:
    """A function reading the Avro body of a record written with `schema` (logical types
    already stripped), or None when the schema uses what the compiler does not cover."""
    compiler = _Compiler()
    try:
        top = compiler.record(schema, None)
    except Unsupported:
        return None
    namespace: dict[str, Any] = {
        "RL": read_long, "UF": _FLOAT, "UD": _DOUBLE, "Truncated": Truncated, "BadIndex": BadIndex,
        "Malformed": Malformed, **compiler.constants,
    }
    source = "\n\n".join(compiler.sources)
    exec(compile(source, f"<avro reader {schema.get('name')}>", "exec"), namespace)
    read: Reader = namespace[top]
    return read
