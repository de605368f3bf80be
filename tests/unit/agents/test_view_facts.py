"""A seller's orders hash in its view: written whole once, then only the orders the core
wrote since (their facts change only then), and those that left the evidence dropped. The
hash kept that way equals the facts of the evidence orders read whole at every write."""

from __future__ import annotations

from typing import Any

from agents.views import view_detail
from rules.effects import PublishMetrics
from rules.policy import load_policy
from rules.units import DAY_MS
from simulator.marketplace import Marketplace
from tables.engine import Engine

POLICY = load_policy("rules/policy.yaml")
START = 1_780_000_000_000 // DAY_MS * DAY_MS


def apply(hash_: dict[str, str], ops: tuple[Any, ...]) -> None:
    """What the view script does to the orders hash with `ops`."""
    replace, m = ops[0], ops[1]
    if replace == 1:
        hash_.clear()
    pairs = ops[2:2 + 2 * m]
    for i in range(0, len(pairs), 2):
        hash_[pairs[i]] = pairs[i + 1]
    d = ops[2 + 2 * m]
    for order_id in ops[3 + 2 * m:3 + 2 * m + d]:
        hash_.pop(order_id, None)


def test_an_amended_orders_hash_equals_one_written_whole_every_time() -> None:
    engine = Engine(POLICY, clock="event")
    market = Marketplace(seed=3, sellers=12, start_ms=START)
    kept: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    pending: dict[str, tuple[set[str], set[str]]] = {}
    checked = amended = 0
    for n, (_, name, record) in enumerate(market.events(START + 45 * DAY_MS)):
        for effect in engine.process(0, name, record):
            if not isinstance(effect, PublishMetrics):
                continue
            detail: Any = effect.evidence
            staged = pending.setdefault(effect.seller_id, (set(), set()))
            staged[0].update(detail.touched)
            staged[1].update(detail.left)
            if n % 7:  # views are written now and then, many records' changes at once
                continue
            ops, _ = view_detail(effect.seller_id, detail, pending.pop(effect.seller_id), written)
            amended += ops[0] == 0
            apply(kept.setdefault(effect.seller_id, {}), ops)
            whole: dict[str, str] = {}
            apply(whole, view_detail(effect.seller_id, detail, None, set())[0])
            assert kept[effect.seller_id] == whole
            checked += 1
    assert checked > 1_000 and amended > checked * 0.9
    assert any(len(h) > 20 for h in kept.values())  # sellers with many orders behind their figures
