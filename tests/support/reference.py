"""A brute-force recomputation of CONTRACT §4 from a full event list, for the property tests.

Written straight from the contract's definitions, independently of the incremental core:
it rescans every event for every figure. Interpretations shared with the core (and
documented in README): an order's cancellation is its earliest one (at equal times a
seller-initiated one); its possession scan is the earliest carrier-possession scan (excused
when any such scan at that instant carries carrier_fault); the latest rating is the one
with the greatest (rated_at, rating_id); a metric's defect buyer is the order's buyer
(from OrderPlaced, else its latest rating, else the order itself).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rules.calendar import ShipByCalendar
from rules.policy import Policy

POSSESSION = {"ACCEPTED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"}
FLAWED = ("DAMAGED", "WRONG_ITEM", "MISSING_ITEM", "COUNTERFEIT")


def reference_figures(events: Iterable[tuple[str, dict[str, Any]]], now: int, policy: Policy,
                      timezone: str = "UTC") -> dict[str, dict[str, Any]]:
    cal = ShipByCalendar(timezone)
    zone = ZoneInfo(timezone)
    W = policy.window_ms

    def inw(t: int | None) -> bool:
        return t is not None and now - W < t <= now

    placed: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    scans: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    cancels: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    refunds: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    ratings: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for name, r in events:
        s = r["seller_id"]
        if name == "OrderPlaced":
            placed[(s, r["order_id"])].append(r)
        elif name == "ShipmentScan":
            for oid in r["order_ids"]:
                scans[(s, oid)].append(r)
        elif name == "OrderCancelled":
            cancels[(s, r["order_id"])].append(r)
        elif name == "RefundIssued":
            refunds[(s, r["order_id"])].append(r)
        elif name == "RatingSubmitted":
            ratings[(s, r["order_id"])].append(r)

    keys = set(placed) | set(scans) | set(cancels) | set(refunds) | set(ratings)
    out: dict[str, dict[str, Any]] = {}

    def seller(s: str) -> dict[str, Any]:
        if s not in out:
            out[s] = {
                "num": [0] * 5, "den": [0] * 5, "buyers": [set() for _ in range(5)],
                "by_reason": {r: 0 for r in FLAWED}, "first_flawed": [],
            }
        return out[s]

    for key in keys:
        s_id, oid = key
        fig = seller(s_id)
        p = min(placed[key], key=lambda r: r["placed_at"]) if placed[key] else None
        placed_at = p["placed_at"] if p else None
        ship_by = None
        if p:
            ship_by = p["ship_by"] if p.get("ship_by") is not None else cal.ship_by(p["placed_at"])
        c = (min(cancels[key], key=lambda r: (r["cancelled_at"], r["initiated_by"] != "SELLER"))
             if cancels[key] else None)
        cancelled_at = c["cancelled_at"] if c else None
        poss = [r for r in scans[key] if r["scan_type"] in POSSESSION]
        possession_at = min(r["scanned_at"] for r in poss) if poss else None
        fault = any(r.get("carrier_fault") for r in poss if r["scanned_at"] == possession_at)
        latest = max(ratings[key], key=lambda r: (r["rated_at"], r["rating_id"])) if ratings[key] else None
        buyer = (p["buyer_id"] if p else None) or (latest["buyer_id"] if latest else None) or f"order:{oid}"

        defects = [False] * 5
        if inw(placed_at):
            fig["den"][0] += 1
        if c and c["initiated_by"] == "SELLER" and inw(cancelled_at):
            defects[0] = True
        if ship_by is not None and not (cancelled_at is not None and cancelled_at < ship_by):
            if inw(ship_by):
                fig["den"][1] += 1
                if possession_at is None:
                    late = now >= ship_by + policy.scan_grace_ms
                else:
                    late = possession_at > ship_by and not fault
                defects[1] = late
            due = ship_by + policy.unfulfilled_grace_ms
            if inw(due):
                fig["den"][2] += 1
                no_scan = possession_at is None or possession_at > due
                not_cancelled = cancelled_at is None or cancelled_at > due
                defects[2] = no_scan and not_cancelled
        if any(r["scan_type"] == "DELIVERED" and inw(r["scanned_at"]) for r in scans[key]):
            fig["den"][3] += 1
        flawed_refunds = [r for r in refunds[key] if r["reason"] in FLAWED]
        in_window = [r for r in flawed_refunds if inw(r["refunded_at"])]
        if in_window:
            defects[3] = True
            for reason in {r["reason"] for r in in_window}:
                fig["by_reason"][reason] += 1
        if flawed_refunds:
            fig["first_flawed"].append(min(r["refunded_at"] for r in flawed_refunds))
        if latest and inw(latest["rated_at"]):
            fig["den"][4] += 1
            defects[4] = latest["stars"] <= 2
        for i, d in enumerate(defects):
            if d:
                fig["num"][i] += 1
                fig["buyers"][i].add(buyer)

    def month(ms: int) -> str:
        t = datetime.fromtimestamp(ms / 1000, zone)
        return f"{t.year:04d}-{t.month:02d}"

    for fig in out.values():
        fig["defect_buyers"] = [len(b) for b in fig.pop("buyers")]
        months: dict[str, int] = defaultdict(int)
        for t in fig.pop("first_flawed"):
            months[month(t)] += 1
        fig["months"] = dict(months)
    return out
