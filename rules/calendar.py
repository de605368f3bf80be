"""Business days and the default ship-by deadline (CONTRACT §4)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

# Every local midnight of every IANA zone falls on a quarter hour of UTC, so all instants
# in one 15-minute slot share a local date: the slot is a safe cache key.
_SLOT_MS = 15 * 60 * 1000


class ShipByCalendar:
    """Computes ship_by: the end of the second business day after the order's local date.

    Business days are Monday to Friday, less US federal holidays, in the given zone.
    """

    def __init__(self, timezone: str = "UTC", business_days: int = 2) -> None:
        self.zone = ZoneInfo(timezone)
        self.business_days = business_days
        self._holidays: holidays.HolidayBase | None = None
        self._for_slot = lru_cache(maxsize=65_536)(self._compute)

    def load(self) -> holidays.HolidayBase:
        """The holiday calendar, read on first use: reading it imports every country's
        module (0.3 s). A worker reads it while its group join waits, not at its start."""
        if self._holidays is None:
            self._holidays = holidays.country_holidays("US", categories=("public",))
        return self._holidays

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.load()

    def ship_by(self, placed_at_ms: int) -> int:
        """ship_by in epoch ms for an order placed at `placed_at_ms`."""
        return self._for_slot(placed_at_ms // _SLOT_MS)

    def _compute(self, slot: int) -> int:
        placed_day = datetime.fromtimestamp(slot * _SLOT_MS / 1000, self.zone).date()
        day, counted = placed_day, 0
        while counted < self.business_days:
            day += timedelta(days=1)
            if self.is_business_day(day):
                counted += 1
        end = datetime.combine(day + timedelta(days=1), time(0), self.zone)
        return int(end.timestamp() * 1000) - 1
