"""Compact JSON (no spaces), the encoding of table values and of the sellers' views.

`json.dumps` builds a new encoder on every call, which costs as much as the encoding of a
small value; this one is built once. Values are JSON types (no circular check).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_encode: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":")).encode


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json's C encoder itself, made once: JSONEncoder.encode builds one on every call, which
# costs as much again as encoding a table value. (The pure-Python encoder where it lacks.)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_make_encoder is not None:
    _c_encode = _c_make_encoder(
        None, _no_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)

    def _encode_c(value: Any) -> str:
        return "".join(_c_encode(value, 0))

    _encode = _encode_c


def dumps(value: Any) -> str:
    """`value` as compact JSON text."""
    return _encode(value)


def dumpb(value: Any) -> bytes:
    """`value` as compact JSON, UTF-8 bytes."""
    return _encode(value).encode()


_decode = json.JSONDecoder().decode


def loads(raw: bytes | str) -> Any:
    """A JSON value from text or UTF-8 bytes (json.loads, without its per-call checks)."""
    return _decode(raw.decode() if isinstance(raw, (bytes, bytearray)) else raw)
