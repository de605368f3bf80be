"""A seller's standing per metric, and the `SellerMetrics` record that publishes it."""

from __future__ import annotations

from typing import Any

from rules.metrics import FLAWED_REASONS, METRICS, rate_of, standing_of
from rules.policy import MetricPolicy, Policy
from schemas.codec import encoded_part

MEMO_LIMIT = 20_000  # memoized parts kept per policy (cleared when reached): the common figures


def seller_metrics_record(seller_id: str, figures: Any, policy: Policy, as_of: int) -> dict[str, Any]:
    """The CONTRACT §3 `SellerMetrics` record for a figures snapshot (tables.sellers.SellerFigures).

    A metric's figure, the reason counts and the monthly entries depend only on their
    counts and the policy, so they are built (and Avro-encoded) once and shared between
    records: a record is read-only."""
    memo = policy.memo
    if len(memo) > MEMO_LIMIT:
        memo.clear()
    record: dict[str, Any] = {
        "seller_id": seller_id,
        "as_of": as_of,
        "window_days": policy.window_days,
        "policy_version": policy.version,
    }
    numerators, denominators = figures.numerators, figures.denominators
    for i, name in enumerate(METRICS):
        key = (i, numerators[i], denominators[i])
        figure = memo.get(key)
        if figure is None:
            figure = memo[key] = encoded_part("SellerMetrics", name, _metric_figure(
                numerators[i], denominators[i], policy.metrics[name]))
        record[name] = figure
    by_reason = figures.flawed_by_reason
    reasons = memo.get(by_reason)
    if reasons is None:
        reasons = memo[by_reason] = encoded_part("SellerMetrics", "flawed_items_by_reason",
                                                 dict(zip(FLAWED_REASONS, by_reason, strict=False)))
    record["flawed_items_by_reason"] = reasons
    monthly = []
    for entry in figures.flawed_monthly:
        item = memo.get(entry)
        if item is None:
            item = memo[entry] = encoded_part("SellerMetrics", "warden.MonthCount",
                                              {"month": entry[0], "count": entry[1]})
        monthly.append(item)
    record["flawed_items_monthly"] = monthly
    return record


def _metric_figure(num: int, den: int, mp: MetricPolicy) -> dict[str, Any]:
    return {
        "numerator": num,
        "denominator": den,
        "rate": rate_of(num, den),
        "standing": standing_of(num, den, mp),
        "threshold_below": mp.threshold_below,
        "threshold_exceeds": mp.threshold_exceeds,
    }

