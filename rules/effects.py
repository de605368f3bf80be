"""Effects the decision core returns; drivers perform them (publish, store, notify)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PublishMetrics:
    """A seller's figures changed: publish this `SellerMetrics` record (and its evidence,
    metric -> order ids, for the seller's view: a mapping that may read them when asked)."""

    seller_id: str
    record: dict[str, Any] = field(hash=False)
    evidence: Mapping[str, list[str]] = field(hash=False)
    caused_by: str = ""


@dataclass(frozen=True)
class DecideAction:
    """Publish this `EnforcementAction` record (new, or a status change of an existing one)
    and record it in the seller's enforcement history."""

    record: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Notify:
    """Publish this `Notification` record to the seller."""

    record: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class SetFlag:
    """Remember an episode fact in the seller's history (a metric below, a warning escalated)."""

    key: str
    value: Any


@dataclass(frozen=True)
class RejectInput:
    """An input that decoded but cannot be applied (e.g. a decision for an unknown action)."""

    reason: str
    message: str


Effect = PublishMetrics | DecideAction | Notify | SetFlag | RejectInput
