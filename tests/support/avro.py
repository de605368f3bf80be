"""Hypothesis strategies for the records of an Avro schema."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

LONG = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def strategy(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    if isinstance(schema, str):
        if schema in named:
            return strategy(named[schema], named)
        return {
            "null": st.none(), "boolean": st.booleans(), "int": INT, "long": LONG,
            "float": st.floats(width=32, allow_nan=False), "double": st.floats(allow_nan=False),
            "string": st.text(), "bytes": st.binary(),
        }[schema]
    if isinstance(schema, list):
        return st.one_of(*[strategy(b, named) for b in schema])
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = named[f"{schema.get('namespace', 'warden')}.{schema['name']}"] = schema
        return st.fixed_dictionaries({f["name"]: strategy(f["type"], named) for f in schema["fields"]})
    if kind == "enum":
        named[schema["name"]] = named[f"warden.{schema['name']}"] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(strategy(schema["items"], named), max_size=5)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), strategy(schema["values"], named), max_size=5)
    return strategy(kind, named)
