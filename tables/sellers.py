"""Per-seller window figures: fixed-size counters kept exact by per-order contributions.

The figures are sums over the seller's in-window orders; each order's contribution changes
at known instants (rules.windows.next_change), so the sum slides exactly, to the
millisecond, with O(1) work per event and a size that does not grow with the seller's
history: 10 counters, 5 distinct-buyer counts, 4 reason counts, at most 3 months of 4
reason counts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rules.metrics import (
    ALL_NUM_BITS,
    DEN_BITS,
    FLAWED_REASONS,
    N_METRICS,
    NUM_BITS,
    REASON_BITS,
    REASON_SHIFT,
)
from schemas import compact_json

MONTHS_KEPT = 3
MONTH_SEP = "/"  # a monthly key: "YYYY-MM/<reason index>" (a bare "YYYY-MM": state kept before reasons were)


NO_REASONS = (0,) * len(FLAWED_REASONS)


def month_reason(month: str, reason_index: int) -> str:
    """The key a flawed order counts under: its month and its refund reason."""
    return f"{month}{MONTH_SEP}{reason_index}"


class SellerFigures(NamedTuple):
    """A read-only snapshot of a seller's figures, as the rules consume it."""

    numerators: tuple[int, ...]
    denominators: tuple[int, ...]
    defect_buyers: tuple[int, ...]
    flawed_by_reason: tuple[int, ...]
    flawed_monthly: tuple[tuple[str, int], ...]
    # per month shown, the count per flawed reason (FLAWED_REASONS order)
    flawed_monthly_by_reason: tuple[tuple[int, ...], ...] = ()


class SellerState:
    """The running figures of one seller, plus what was last published about them."""

    __slots__ = ("by_reason", "counts", "defect_buyers", "due", "monthly", "published")

    def __init__(self) -> None:
        self.counts = [0] * (2 * N_METRICS)  # numerator, denominator per metric (bit order)
        self.defect_buyers = [0] * N_METRICS
        self.by_reason = [0] * len(FLAWED_REASONS)
        self.monthly: dict[str, int] = {}
        self.published: list[Any] | None = None
        self.due: int | None = None

    def add(self, mask: int, sign: int) -> None:
        """Add (sign=+1) or remove (-1) one order's contribution mask."""
        counts = self.counts
        for i in range(N_METRICS):
            if mask & NUM_BITS[i]:
                counts[2 * i] += sign
            if mask & DEN_BITS[i]:
                counts[2 * i + 1] += sign
        if mask >> REASON_SHIFT:
            for r, bit in enumerate(REASON_BITS):
                if mask & bit:
                    self.by_reason[r] += sign

    def count_month(self, month: str | None, sign: int, keep_from: str) -> None:
        if month is None:
            return
        self.monthly[month] = self.monthly.get(month, 0) + sign
        if self.monthly[month] <= 0:
            del self.monthly[month]
        for stale in [m for m in self.monthly if m < keep_from]:
            del self.monthly[stale]

    def snapshot(self, months: tuple[str, ...]) -> SellerFigures:
        if not self.monthly:  # most sellers: no flawed item in the months shown
            return SellerFigures(tuple(self.counts[0::2]), tuple(self.counts[1::2]), tuple(self.defect_buyers),
                                 tuple(self.by_reason), tuple((m, 0) for m in months),
                                 (NO_REASONS,) * len(months))
        totals = dict.fromkeys(months, 0)
        by_reason = {m: [0] * len(FLAWED_REASONS) for m in months}
        for key, count in self.monthly.items():
            month, _, reason = key.partition(MONTH_SEP)
            if month in totals:
                totals[month] += count
                if reason:
                    by_reason[month][int(reason)] += count
        return SellerFigures(
            numerators=tuple(self.counts[0::2]),
            denominators=tuple(self.counts[1::2]),
            defect_buyers=tuple(self.defect_buyers),
            flawed_by_reason=tuple(self.by_reason),
            flawed_monthly=tuple((m, totals[m]) for m in months),
            flawed_monthly_by_reason=tuple(tuple(by_reason[m]) for m in months),
        )

    def dumps(self) -> bytes:
        return compact_json.dumpb(
            [self.counts, self.defect_buyers, self.by_reason, self.monthly, self.published, self.due]
        )

    @classmethod
    def loads(cls, raw: bytes | str) -> SellerState:
        s = cls.__new__(cls)
        s.counts, s.defect_buyers, s.by_reason, s.monthly, s.published, s.due = compact_json.loads(raw)
        return s

    def __repr__(self) -> str:
        return f"SellerState({self.dumps().decode()})"


__all__ = ["ALL_NUM_BITS", "SellerFigures", "SellerState", "month_reason"]
