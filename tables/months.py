"""Calendar months in the configured time zone, for `flawed_items_monthly`: which month an
instant falls in, the last three months at an instant, and when the next month starts.
Each answer is cached (per 15-minute slot, or per month), so the core pays a dict lookup."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

SLOT_MS = 15 * 60 * 1000  # every zone's offset is a multiple of 15 minutes


class MonthCalendar:
    def __init__(self, timezone: str = "UTC") -> None:
        self.zone = ZoneInfo(timezone)
        self._month_of_slot = lru_cache(maxsize=8192)(self._compute_month)
        self._day_of_slot = lru_cache(maxsize=8192)(self._compute_day)
        self._last_three: dict[str, tuple[str, str, str]] = {}  # month -> the last three months
        self._next_start: dict[str, int] = {}  # month -> when the next one starts

    def month(self, ms: int) -> str:
        """The month of an instant, "YYYY-MM"."""
        return self._month_of_slot(ms // SLOT_MS)

    def day(self, ms: int) -> str:
        """The calendar day of an instant, "YYYY-MM-DD"."""
        return self._day_of_slot(ms // SLOT_MS)

    def last_three(self, now: int) -> tuple[str, str, str]:
        """The last three calendar months at `now`, oldest first."""
        current = self.month(now)
        months = self._last_three.get(current)
        if months is None:
            months = self._last_three[current] = self._compute_last_three(current)
        return months

    def next_month_start(self, now: int) -> int:
        """When the month after `now`'s starts (ms)."""
        current = self.month(now)
        start = self._next_start.get(current)
        if start is None:
            local = datetime.fromtimestamp(now / 1000, self.zone)
            year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
            start = int(datetime(year, month, 1, tzinfo=self.zone).timestamp() * 1000)
            self._next_start[current] = start
        return start

    def _compute_month(self, slot: int) -> str:
        local = datetime.fromtimestamp(slot * SLOT_MS / 1000, self.zone)
        return f"{local.year:04d}-{local.month:02d}"

    def _compute_day(self, slot: int) -> str:
        return datetime.fromtimestamp(slot * SLOT_MS / 1000, self.zone).strftime("%Y-%m-%d")

    @staticmethod
    def _compute_last_three(current: str) -> tuple[str, str, str]:
        year, month = int(current[:4]), int(current[5:])
        out = []
        for back in (2, 1, 0):
            m, y = month - back, year
            while m < 1:
                m += 12
                y -= 1
            out.append(f"{y:04d}-{m:02d}")
        return out[0], out[1], out[2]
