"""The incremental sum: an order re-evaluated at `now` moves its seller's figures by the
difference (counts, distinct defect buyers, evidence, the flawed-items months), and the
order is kept, re-scheduled or dropped. A mixin of tables.engine.Engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rules.metrics import ALL_NUM_BITS, NUM_BITS
from rules.policy import Policy
from rules.units import DAY_MS
from rules.windows import contribution, next_change
from tables.deadlines import ORDER as _ORDER
from tables.keys import defect_buyer_key, evidence_key
from tables.months import MonthCalendar
from tables.orders import OrderState
from tables.sellers import SellerState, month_reason

MAX_EVIDENCE = 50
# A flawed order counts in flawed_items_monthly by its first flawed refund. Its facts are
# kept this long after that refund, not just while its month is on show (three months): a
# later refund that arrives late (its own month still on show) must find the first one and
# leave the order where it was counted, not make it count again in a newer month.
FLAWED_RETENTION_MS = 400 * DAY_MS
# Beyond window + grace, an order's facts are kept this long after its latest fact, so a
# late fact (a refund inside a 30-day return window) still finds the order's buyer.
RETENTION_SLACK_MS = 30 * DAY_MS


class Figures:
    """The sellers' figures, moved one order at a time."""

    policy: Policy
    stores: Any
    months: MonthCalendar
    _sellers: dict[str, SellerState]
    _touched: dict[str, set[str]]
    _left: dict[str, set[str]]
    _retention_ms: int
    _schedule: Callable[[int, int, int, str], None]

    def _seller(self, seller_id: str) -> SellerState:
        s = self._sellers.get(seller_id)
        if s is None:
            s = self.stores.sellers.get(seller_id)
            if s is None:
                s = SellerState()
            self._sellers[seller_id] = s
        return s

    def _touch(self, partition: int, seller: str, order_id: str, key: str, o: OrderState,
               now: int, dirty: dict[str, str], cause: str, changed: bool = True) -> None:
        """Re-evaluate one order at `now`, move the seller's figures by the difference.
        `changed`: the caller changed the order's facts. The order is written back only
        when something of it changed (a third of events change nothing: an IN_TRANSIT scan
        after ACCEPTED), so its changelog gets no record that says nothing new."""
        policy = self.policy
        mask = contribution(o, now, policy)
        buyer = o.buyer(order_id)
        old_mask, old_buyer = o.mask, o.counted_buyer
        defects_changed = (mask ^ old_mask) & ALL_NUM_BITS or (mask & ALL_NUM_BITS and buyer != old_buyer)
        if mask != old_mask or defects_changed:
            s = self._seller(seller)
            s.add(old_mask, -1)
            s.add(mask, 1)
            if defects_changed:
                self._move_defects(seller, order_id, s, old_mask, old_buyer, mask, buyer)
            o.mask = mask
            o.counted_buyer = buyer if mask & ALL_NUM_BITS else None
            dirty.setdefault(seller, cause)
            changed = True
        first_flawed = o.first_flawed_at()
        # counted by the month and reason of the order's first flawed refund
        month = month_reason(self.months.month(first_flawed), o.flawed[0][0]) if first_flawed is not None else None
        if month != o.flawed_month:
            s = self._seller(seller)
            keep_from = self.months.last_three(now)[0]
            s.count_month(o.flawed_month, -1, keep_from)
            s.count_month(month, 1, keep_from)
            o.flawed_month = month
            dirty.setdefault(seller, cause)
            changed = True
        due = next_change(o, now, policy)
        # Keep an order's facts after they stop counting: an OrderPlaced may still arrive
        # for an early scan, and a flawed order stays FLAWED_RETENTION_MS after its first
        # flawed refund, so a late or re-delivered refund cannot count it twice in
        # flawed_items_monthly.
        keep_until = o.last_fact_at() + self._retention_ms
        if first_flawed is not None:
            keep_until = max(keep_until, first_flawed + FLAWED_RETENTION_MS)
        if keep_until > now and (due is None or keep_until < due):
            due = keep_until
        if due is None and mask == 0:
            if key in self.stores.orders:
                del self.stores.orders[key]
            return
        if due != o.due or key not in self.stores.orders:
            o.due = due
            if due is not None:
                self._schedule(partition, due, _ORDER, key)
            changed = True
        if changed:
            self.stores.orders[key] = o
            touched = self._touched.get(seller)
            if touched is None:
                self._touched[seller] = {order_id}
            else:
                touched.add(order_id)

    def _move_defects(self, seller: str, order_id: str, s: SellerState, old_mask: int,
                      old_buyer: str | None, mask: int, buyer: str) -> None:
        counters, evidence = self.stores.defect_buyers, self.stores.evidence
        for i, bit in enumerate(NUM_BITS):
            was, now_in = bool(old_mask & bit), bool(mask & bit)
            if was and (not now_in or buyer != old_buyer):
                ckey = defect_buyer_key(seller, i, old_buyer)
                left = counters.get(ckey, 0) - 1
                if left <= 0:
                    if ckey in counters:
                        del counters[ckey]  # (stores note `del`, not pop: streams.table_stores)
                    s.defect_buyers[i] -= 1
                else:
                    counters[ckey] = left
            if now_in and (not was or buyer != old_buyer):
                ckey = defect_buyer_key(seller, i, buyer)
                had = counters.get(ckey, 0)
                counters[ckey] = had + 1
                if had == 0:
                    s.defect_buyers[i] += 1
            if was != now_in:
                ekey = evidence_key(seller, i)
                ids = list(evidence.get(ekey, ()))
                if now_in:
                    if order_id not in ids:
                        ids.append(order_id)
                        if len(ids) > MAX_EVIDENCE:
                            self._left.setdefault(seller, set()).update(ids[:-MAX_EVIDENCE])
                            del ids[:-MAX_EVIDENCE]
                elif order_id in ids:
                    ids.remove(order_id)
                    self._left.setdefault(seller, set()).add(order_id)
                if ids:
                    evidence[ekey] = ids
                elif ekey in evidence:
                    del evidence[ekey]

    def _month_rollover(self, s: SellerState, now: int) -> int | None:
        """The next month boundary, when the monthly figures would shift then."""
        if not any(s.monthly.values()):
            return None
        return self.months.next_month_start(now)
