"""ship_by: end of the second business day after placement, weekends and US holidays skipped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rules.calendar import ShipByCalendar


def ms(s: str) -> int:
    return int(datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("placed,ship_by", [
    ("2026-11-16T10:00:00", "2026-11-18T23:59:59.999"),  # Monday -> Wednesday
    ("2026-11-20T10:00:00", "2026-11-24T23:59:59.999"),  # Friday -> over the weekend -> Tuesday
    ("2026-11-21T23:59:59", "2026-11-24T23:59:59.999"),  # Saturday -> Mon, Tue
    ("2026-11-25T09:00:00", "2026-11-30T23:59:59.999"),  # Wed before Thanksgiving: Fri 27, Mon 30
    ("2026-12-31T12:00:00", "2027-01-05T23:59:59.999"),  # New Year's Day skipped: Mon 4, Tue 5
])
def test_ship_by_utc(placed: str, ship_by: str) -> None:
    assert ShipByCalendar("UTC").ship_by(ms(placed)) == ms(ship_by)


def test_ship_by_in_another_time_zone() -> None:
    # 2026-11-21T03:00Z is still Friday evening in New York: ship by Tuesday 23:59:59.999 EST
    cal = ShipByCalendar("America/New_York")
    assert cal.ship_by(ms("2026-11-21T03:00:00")) == ms("2026-11-25T04:59:59.999")
