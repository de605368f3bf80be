"""Compact JSON (no spaces), the encoding of table values and of the sellers' views.

`json.dumps` with `separators` builds a new encoder on every call, which costs as much as
the encoding of a small value; this one is built once.
"""

from __future__ import annotations

import json
from typing import Any

_encode = json.JSONEncoder(separators=(",", ":")).encode


def dumps(value: Any) -> str:
    """`value` as compact JSON text."""
    return _encode(value)


def dumpb(value: Any) -> bytes:
    """`value` as compact JSON, UTF-8 bytes."""
    return _encode(value).encode()
