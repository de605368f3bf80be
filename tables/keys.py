"""The key formats of the tables: one place, so a key is always built the same way.

Every key starts with the seller id, so a key lives in its seller's partition; parts are
joined by the unit separator, which no id contains."""

from __future__ import annotations

SEP = "\x1f"


def order_key(seller_id: str, order_id: str) -> str:
    return f"{seller_id}{SEP}{order_id}"


def seller_of(key: str) -> str:
    """The seller a table key belongs to."""
    return key.split(SEP, 1)[0]


def split_order_key(key: str) -> tuple[str, str]:
    seller_id, order_id = key.split(SEP, 1)
    return seller_id, order_id


def defect_buyer_key(seller_id: str, metric_index: int, buyer: str | None) -> str:
    """A buyer's count of defective orders for one metric of one seller."""
    return f"{seller_id}{SEP}{metric_index}{SEP}{buyer}"


def evidence_key(seller_id: str, metric_index: int) -> str:
    """The order ids behind one metric's numerator."""
    return f"{seller_id}{SEP}{metric_index}"


def clock_key(partition: int) -> str:
    """A partition's clock: [stream time, the engine's last now]."""
    return f"clock{SEP}{partition}"


def clock_partition(key: str) -> int:
    """The partition a clock key is of."""
    return int(key.split(SEP, 1)[1])
