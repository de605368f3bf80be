"""Units every layer shares: time in milliseconds, rates as text."""

from __future__ import annotations

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def pct(rate: float) -> str:
    """A rate as people read it: 0.0812 -> "8.1 %"."""
    return f"{rate * 100:.1f} %"
