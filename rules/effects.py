"""Effects the decision core returns; drivers perform them (publish, store, notify)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PublishMetrics:
    """A seller's figures changed: publish this `SellerMetrics` record (and its evidence)."""

    seller_id: str
    record: dict[str, Any] = field(hash=False)
    evidence: dict[str, list[str]] = field(hash=False)
    caused_by: str = ""


@dataclass(frozen=True)
class RejectInput:
    """An input that decoded but cannot be applied (e.g. a decision for an unknown action)."""

    reason: str
    message: str


Effect = PublishMetrics | RejectInput
