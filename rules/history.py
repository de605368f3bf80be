"""A seller's enforcement history: the actions' statuses, the history itself (actions,
flags, the next deadline) and the snapshot of figures the rules read."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.effects import DecideAction, Effect, SetFlag
from schemas import compact_json

WARNING, SUSPENSION, BAN, REINSTATEMENT = "WARNING", "SUSPENSION", "BAN", "REINSTATEMENT"
ISSUED, PENDING_REVIEW, APPROVED, REJECTED = "ISSUED", "PENDING_REVIEW", "APPROVED", "REJECTED"
APPEALED, OVERTURNED, UPHELD = "APPEALED", "OVERTURNED", "UPHELD"
# Rejected and overturned actions do not count as history.
NOT_COUNTING = frozenset({REJECTED, OVERTURNED})
# Waiting for a human: a proposed suspension or ban, or an appeal.
AWAITING_REVIEW = frozenset({PENDING_REVIEW, APPEALED})
# An action that can be appealed: in force.
APPEALABLE = frozenset({ISSUED, APPROVED, UPHELD})
# What a seller is shown of their actions: a proposal waiting for review, or one rejected
# on review, was never in force and is not the seller's to see (CONTRACT §5, 2 and 4).
HIDDEN_FROM_SELLER = frozenset({PENDING_REVIEW, REJECTED})
# Appealable from the seller's page: in force and never appealed (an appeal upheld is final).
SELLER_APPEALABLE = frozenset({ISSUED, APPROVED})
MAX_ACTIONS_KEPT = 100


def review_kind(action: Mapping[str, Any]) -> str | None:
    """The kind of human review an action waits for (the policy's `review.sla_hours` key):
    SUSPENSION or BAN for a proposal, APPEAL for an appealed action; None when none."""
    if action["status"] == PENDING_REVIEW:
        return str(action["action"])
    if action["status"] == APPEALED:
        return "APPEAL"
    return None



@dataclass(frozen=True)
class Snapshot:
    """What the rules see of a seller: figures in the window and their evidence."""

    seller_id: str
    numerators: tuple[int, ...]
    denominators: tuple[int, ...]
    defect_buyers: tuple[int, ...]
    flawed_by_reason: tuple[int, ...]
    evidence: Mapping[str, list[str]] = field(hash=False, default_factory=dict)


@dataclass
class History:
    """A seller's enforcement history: every action's latest record, and episode facts.

    `actions` maps action_id -> the latest published record plus bookkeeping under "_":
    {"issued_at": first decided_at, "approved_at": ..., "event": the event id of the last
    transition, "appeal": appeal_id}. `flags` holds "below:<metric>", "abs:<rule>" and
    "escalated:<action_id>". `episodes` counts actions per rule/metric/action for ids.
    """

    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    episodes: dict[str, int] = field(default_factory=dict)
    due: int | None = None

    def dumps(self) -> bytes:
        return compact_json.dumpb([self.actions, self.flags, self.episodes, self.due])

    @classmethod
    def loads(cls, raw: bytes | str) -> History:
        actions, flags, episodes, due = compact_json.loads(raw)
        return cls(actions, flags, episodes, due)

    def of_metric(self, metric: str, action: str | None = None) -> list[dict[str, Any]]:
        """This metric's counting actions (of one kind), oldest first."""
        return [a for a in self.actions.values()
                if a["metric"] == metric and a["status"] not in NOT_COUNTING
                and (action is None or a["action"] == action)]

    def of_rule(self, rule_id: str) -> list[dict[str, Any]]:
        return [a for a in self.actions.values() if a["rule_id"] == rule_id and a["status"] not in NOT_COUNTING]

    def apply(self, effects: Iterable[Effect]) -> None:
        """Record what the effects decided (the driver publishes them)."""
        for e in effects:
            if isinstance(e, DecideAction):
                record = dict(e.record)
                previous = self.actions.get(record["action_id"])
                if previous is None:
                    key = f"{record['rule_id']}|{record['metric']}|{record['action']}"
                    self.episodes[key] = self.episodes.get(key, 0) + 1
                meta = dict(previous["_"]) if previous else {}
                meta.setdefault("issued_at", record["decided_at"])
                if record["status"] == APPROVED:
                    meta["approved_at"] = record["decided_at"]
                events = list(meta.get("events", ()))
                if record["caused_by"] not in events:
                    events = ([*events, record["caused_by"]])[-8:]
                meta["events"], meta["event"] = events, record["caused_by"]
                record["_"] = meta
                self.actions[record["action_id"]] = record
            elif isinstance(e, SetFlag):
                if e.value in (None, False):
                    self.flags.pop(e.key, None)
                else:
                    self.flags[e.key] = e.value
        if len(self.actions) > MAX_ACTIONS_KEPT:
            self._prune()

    def _prune(self) -> None:
        """Forget the oldest actions that are settled and no longer count as history."""
        settled = sorted((a["_"]["issued_at"], aid) for aid, a in self.actions.items()
                         if a["status"] in NOT_COUNTING or a["action"] == REINSTATEMENT)
        for _, aid in settled[: len(self.actions) - MAX_ACTIONS_KEPT]:
            del self.actions[aid]
            self.flags.pop(f"escalated:{aid}", None)
            self.flags.pop(f"message:{aid}", None)


def stable_id(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return f"{prefix}_{digest[:24]}"
