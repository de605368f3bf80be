"""The five seller metrics of CONTRACT §4: names, contribution bits, standings, confidence."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules.policy import MetricPolicy

METRICS: tuple[str, ...] = (
    "cancellation_rate",
    "late_dropoff_rate",
    "unfulfilled_rate",
    "flawed_item_rate",
    "low_rating_rate",
)
N_METRICS = len(METRICS)
CANCELLATION, LATE_DROPOFF, UNFULFILLED, FLAWED_ITEM, LOW_RATING = range(N_METRICS)
METRIC_INDEX = {name: i for i, name in enumerate(METRICS)}

# An order's contribution to its seller's figures is a bit mask: bit 2i = numerator of
# metric i, bit 2i+1 = denominator of metric i, then one bit per flawed refund reason.
FLAWED_REASONS: tuple[str, ...] = ("DAMAGED", "WRONG_ITEM", "MISSING_ITEM", "COUNTERFEIT")
FLAWED_REASON_INDEX = {r: i for i, r in enumerate(FLAWED_REASONS)}


def num_bit(metric: int) -> int:
    return 1 << (2 * metric)


def den_bit(metric: int) -> int:
    return 1 << (2 * metric + 1)


REASON_SHIFT = 2 * N_METRICS  # the reason bits follow every metric's two


def reason_bit(reason: int) -> int:
    return 1 << (REASON_SHIFT + reason)


NUM_BITS = tuple(num_bit(m) for m in range(N_METRICS))
DEN_BITS = tuple(den_bit(m) for m in range(N_METRICS))
REASON_BITS = tuple(reason_bit(r) for r in range(len(FLAWED_REASONS)))
ALL_NUM_BITS = sum(NUM_BITS)

EXCEEDS, MEETS, BELOW, INSUFFICIENT_DATA = "EXCEEDS", "MEETS", "BELOW", "INSUFFICIENT_DATA"

# What each metric counts, in words, for notifications and the API.
DESCRIPTIONS = {
    "cancellation_rate": "orders you cancelled",
    "late_dropoff_rate": "orders handed to the carrier after their ship-by date",
    "unfulfilled_rate": "orders never handed to a carrier",
    "flawed_item_rate": "delivered orders refunded as damaged, wrong, missing or counterfeit",
    "low_rating_rate": "orders rated 1 or 2 stars",
}


def rate_of(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def standing_of(numerator: int, denominator: int, policy: MetricPolicy) -> str:
    """The standing of a metric's figures against its bands (CONTRACT §4)."""
    if denominator < policy.min_volume or denominator == 0:
        return INSUFFICIENT_DATA
    rate = numerator / denominator
    if rate > policy.threshold_below:
        return BELOW
    if rate <= policy.threshold_exceeds:
        return EXCEEDS
    return MEETS


def wilson_lower_bound(numerator: int, denominator: int, confidence: float) -> float:
    """Lower bound of the Wilson score interval of a proportion, at two-sided `confidence`."""
    if denominator <= 0:
        return 0.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = min(1.0, numerator / denominator)
    n = denominator
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))
