"""What the tables hold, read back as effects: the recent decisions to publish again after
a rebalance, and every seller's current view (a Redis that lost what it held). A mixin of
tables.engine.Engine; nothing here changes state."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rules.effects import DecideAction, Effect, PublishMetrics
from rules.metrics import METRICS
from rules.policy import Policy
from rules.reviews import republish
from rules.standing import seller_metrics_record
from tables.clocks import PartitionClocks
from tables.keys import evidence_key
from tables.months import MonthCalendar


class Evidence(Mapping[str, list[str]]):
    """A seller's evidence lists, read from the store only if a rule asks for them."""

    def __init__(self, engine: Any, seller_id: str) -> None:
        self.engine, self.seller_id = engine, seller_id

    def __getitem__(self, metric: str) -> list[str]:
        return list(self.engine.stores.evidence.get(evidence_key(self.seller_id, METRICS.index(metric)), ()))

    def __iter__(self) -> Iterator[str]:
        return iter(METRICS)

    def __len__(self) -> int:
        return len(METRICS)


class Readback:
    policy: Policy
    stores: Any
    months: MonthCalendar
    clocks: PartitionClocks
    partition_of: Callable[[str], int]

    def recent_decisions(self, since_wall_ms: int, partitions: set[int] | None = None) -> list[Effect]:
        """Decisions recorded since `since_wall_ms` (wall clock), to publish again after a
        restart or rebalance: what was stored may not have reached its topic before a
        crash. Same records, same ids: consumers de-duplicate by them."""
        effects: list[Effect] = []
        for seller_id, history in self.stores.enforcement.items():
            if partitions is not None and self.partition_of(seller_id) not in partitions:
                continue
            for action in sorted(history.actions.values(), key=lambda a: a["_"].get("wall", 0)):
                if action["_"].get("wall", 0) >= since_wall_ms:
                    effects.extend(republish(action, history, self.policy))
        return effects

    def current_state(self, partitions: set[int] | None = None) -> list[Effect]:
        """Every seller's figures as of its partition's clock and every action's latest
        record: what a view rebuilt from the tables shows (a Redis that lost what it held)."""
        effects: list[Effect] = []
        for seller_id, s in self.stores.sellers.items():
            partition = self.partition_of(seller_id)
            if partitions is not None and partition not in partitions:
                continue
            now = self.clocks.last_now(partition)
            if not now:
                continue
            figures = s.snapshot(self.months.last_three(now))
            record = seller_metrics_record(seller_id, figures, self.policy, now)
            effects.append(PublishMetrics(seller_id, record, Evidence(self, seller_id), "view"))
        for seller_id, history in self.stores.enforcement.items():
            if partitions is not None and self.partition_of(seller_id) not in partitions:
                continue
            for action in history.actions.values():
                effects.extend(e for e in republish(action, history, self.policy)
                               if isinstance(e, DecideAction))
        return effects
