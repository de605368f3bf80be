"""A seller's standing per metric, and the `SellerMetrics` record that publishes it."""

from __future__ import annotations

from typing import Any

from rules.metrics import FLAWED_REASONS, METRICS, rate_of, standing_of
from rules.policy import Policy


def seller_metrics_record(seller_id: str, figures: Any, policy: Policy, as_of: int) -> dict[str, Any]:
    """The CONTRACT §3 `SellerMetrics` record for a figures snapshot (tables.sellers.SellerFigures)."""
    record: dict[str, Any] = {
        "seller_id": seller_id,
        "as_of": as_of,
        "window_days": policy.window_days,
        "policy_version": policy.version,
    }
    for i, name in enumerate(METRICS):
        mp = policy.metrics[name]
        num, den = figures.numerators[i], figures.denominators[i]
        record[name] = {
            "numerator": num,
            "denominator": den,
            "rate": rate_of(num, den),
            "standing": standing_of(num, den, mp),
            "threshold_below": mp.threshold_below,
            "threshold_exceeds": mp.threshold_exceeds,
        }
    record["flawed_items_by_reason"] = dict(zip(FLAWED_REASONS, figures.flawed_by_reason))
    record["flawed_items_monthly"] = [{"month": m, "count": c} for m, c in figures.flawed_monthly]
    return record


def standings(figures: Any, policy: Policy) -> dict[str, str]:
    return {
        name: standing_of(figures.numerators[i], figures.denominators[i], policy.metrics[name])
        for i, name in enumerate(METRICS)
    }
