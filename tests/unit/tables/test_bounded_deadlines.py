"""Bounded deadline heaps (tables.deadlines with a limit): a partition holds only its next
deadlines, the later ones are found again in the tables, and the decisions are exactly
those of heaps that hold every deadline."""

from __future__ import annotations

from typing import Any

from rules.policy import load_policy
from rules.units import DAY_MS
from simulator.marketplace import Marketplace
from tables.deadlines import ORDER, Deadlines
from tables.engine import Engine

POLICY = load_policy("rules/policy.yaml")
START = 1_780_000_000_000 // DAY_MS * DAY_MS


def partition_of(seller_id: str) -> int:
    return sum(seller_id.encode()) % 3


def run(limit: int | None, rebuild_every: int = 0) -> tuple[list[Any], Engine]:
    engine = Engine(POLICY, clock="event", partition_of=partition_of, timer_limit=limit)
    market = Marketplace(seed=5, sellers=10, start_ms=START)
    effects: list[Any] = []
    for n, (_, name, record) in enumerate(market.events(START + 35 * DAY_MS)):
        partition = partition_of(record["seller_id"])
        effects += [(partition, e) for e in engine.process(partition, name, record)]
        if rebuild_every and n % rebuild_every == rebuild_every - 1:
            engine.rebuild_timers({0, 1, 2})  # as after a rebalance: from the tables
    for partition in (0, 1, 2):
        effects += [(partition, e) for e in engine.tick(partition, START + 80 * DAY_MS)]
    return effects, engine


_UNBOUNDED: list[Any] = []


def unbounded() -> list[Any]:
    if not _UNBOUNDED:
        _UNBOUNDED.extend(run(None)[0])
    return _UNBOUNDED


def test_bounded_heaps_decide_exactly_as_unbounded_ones() -> None:
    everything = unbounded()
    bounded_effects, bounded = run(40)
    assert bounded.deadlines.refills > 10  # the horizon was reached, again and again
    assert max(len(h) for h in bounded.deadlines.heaps.values()) <= 50
    assert bounded_effects == everything
    assert len(everything) > 1_000 and any(type(e).__name__ == "DecideAction" for _, e in everything)


def test_bounded_heaps_rebuilt_from_the_tables_decide_exactly_as_unbounded_ones() -> None:
    everything = unbounded()
    rebuilt, engine = run(40, rebuild_every=997)
    assert engine.deadlines.refills > 10
    assert rebuilt == everything


def test_a_heap_over_its_bound_keeps_the_earliest_and_never_splits_an_instant() -> None:
    d = Deadlines(limit=3)
    for i, due in enumerate((50, 10, 40, 20, 20, 20, 30)):
        d.schedule(0, due, ORDER, f"k{i}")
    # over 3 + 3 // 4: the earliest three are 10, 20, 20, but a third 20 is left out: the
    # horizon goes before the instant 20, so only 10 is held
    assert [e[0] for e in d.entries(0)] == [10] and d.horizons[0] == 19
    d.schedule(0, 25, ORDER, "later")  # past the horizon: left to the tables
    assert len(d.heaps[0]) == 1
    d.pop(0)
    assert d.next_due(0) == 20 and d.beyond_horizon(0, 20)  # the engine refills at 20
    d.refill(0, lambda: [(d_, ORDER, "x") for d_ in (60, 21, 30, 21)])
    assert sorted(e[0] for e in d.entries(0)) == [21, 21, 30] and d.horizons[0] == 59
    d.refill(0, lambda: [(d_, ORDER, str(i)) for i, d_ in enumerate((70, 70, 70, 70, 80))])
    assert [e[0] for e in d.entries(0)] == [70] * 4 and d.horizons[0] == 70  # more than 3 at one instant: all held
    d.refill(0, lambda: [(90, ORDER, "y")])
    assert 0 not in d.horizons and d.next_due(0) == 90


def test_a_refill_in_small_steps_holds_what_one_pass_over_every_entry_holds() -> None:
    import random

    for trial in range(500):
        r = random.Random(trial)
        entries = [(r.randint(0, r.choice([5, 60, 10_000])), ORDER, f"k{i}") for i in range(r.randint(0, 400))]
        limit = r.randint(1, 50)
        stepped, whole = Deadlines(limit), Deadlines(limit)
        pauses = sum(1 for _ in stepped.refill_steps(0, lambda e=entries: e, step=r.randint(1, 64),  # type: ignore[misc]
                                                     batch_size=r.randint(1, 64)))
        whole.refill(0, lambda e=entries: e)  # type: ignore[misc]
        assert sorted(stepped.entries(0)) == sorted(whole.entries(0)), trial
        assert stepped.horizons.get(0) == whole.horizons.get(0), trial
        assert pauses >= len(entries) // 64
