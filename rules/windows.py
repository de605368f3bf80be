"""What one order contributes to its seller's sliding-window figures at a given instant.

The seller's figures are the sum of their orders' contributions, so the engine keeps them
incrementally: when an order changes (an event about it, or time passing one of its
instants) it subtracts the old contribution and adds the new one. `next_change` tells
when the contribution can change next with no event, which is how deadlines and window
exits fire on their own.
"""

from __future__ import annotations

from typing import Protocol

from rules.metrics import (
    CANCELLATION,
    FLAWED_ITEM,
    LATE_DROPOFF,
    LOW_RATING,
    REASON_BITS,
    UNFULFILLED,
    den_bit,
    num_bit,
)
from rules.policy import Policy

_CANCEL_NUM, _CANCEL_DEN = num_bit(CANCELLATION), den_bit(CANCELLATION)
_LATE_NUM, _LATE_DEN = num_bit(LATE_DROPOFF), den_bit(LATE_DROPOFF)
_UNF_NUM, _UNF_DEN = num_bit(UNFULFILLED), den_bit(UNFULFILLED)
_FLAW_NUM, _FLAW_DEN = num_bit(FLAWED_ITEM), den_bit(FLAWED_ITEM)
_LOW_NUM, _LOW_DEN = num_bit(LOW_RATING), den_bit(LOW_RATING)


class OrderFacts(Protocol):
    """The facts about one order the metrics need (held by tables.orders.OrderState)."""

    placed_at: int | None
    ship_by: int | None
    possession_at: int | None  # earliest carrier-possession scan
    carrier_fault: bool  # that scan carried carrier_fault
    cancelled_at: int | None  # earliest cancellation
    cancelled_by_seller: bool
    delivered: list[int]  # DELIVERED scan times
    flawed: list[tuple[int, int]]  # (flawed reason index, refunded_at)
    rated_at: int | None  # the latest rating
    stars: int


def contribution(o: OrderFacts, now: int, policy: Policy) -> int:
    """The bit mask of numerators, denominators and flawed reasons `o` adds at `now`."""
    lo = now - policy.window_ms  # in window: lo < t <= now
    mask = 0
    placed_at = o.placed_at
    if placed_at is not None and lo < placed_at <= now:
        mask |= _CANCEL_DEN
    cancelled_at = o.cancelled_at
    if cancelled_at is not None and o.cancelled_by_seller and lo < cancelled_at <= now:
        mask |= _CANCEL_NUM
    ship_by = o.ship_by
    if ship_by is not None and (cancelled_at is None or cancelled_at >= ship_by):
        possession_at = o.possession_at
        if lo < ship_by <= now:
            mask |= _LATE_DEN
            if possession_at is None:
                if now >= ship_by + policy.scan_grace_ms:
                    mask |= _LATE_NUM
            elif possession_at > ship_by and not o.carrier_fault:
                mask |= _LATE_NUM
        due = ship_by + policy.unfulfilled_grace_ms
        if lo < due <= now:
            mask |= _UNF_DEN
            if (possession_at is None or possession_at > due) and (
                cancelled_at is None or cancelled_at > due
            ):
                mask |= _UNF_NUM
    for t in o.delivered:
        if lo < t <= now:
            mask |= _FLAW_DEN
            break
    for reason, t in o.flawed:
        if lo < t <= now:
            mask |= _FLAW_NUM | REASON_BITS[reason]
    rated_at = o.rated_at
    if rated_at is not None and lo < rated_at <= now:
        mask |= _LOW_DEN
        if o.stars <= 2:
            mask |= _LOW_NUM
    return mask


def next_change(o: OrderFacts, now: int, policy: Policy) -> int | None:
    """The earliest instant after `now` at which `contribution` may differ, or None."""
    window = policy.window_ms
    # Each fact's instant matters twice: when it enters the window and when it leaves it.
    instants: list[int | None] = [o.placed_at, o.cancelled_at, o.rated_at]
    ship_by = o.ship_by
    if ship_by is not None:
        instants.append(ship_by)
        instants.append(ship_by + policy.unfulfilled_grace_ms)
    instants.extend(o.delivered)
    for _, t in o.flawed:
        instants.append(t)
    best: int | None = None
    for instant in instants:
        if instant is None:
            continue
        t = instant
        if t <= now:
            t += window
            if t <= now:
                continue
        if best is None or t < best:
            best = t
    if ship_by is not None:
        late_at = ship_by + policy.scan_grace_ms  # judged late, no scan yet (it never leaves)
        if late_at > now and (best is None or late_at < best):
            best = late_at
    return best
