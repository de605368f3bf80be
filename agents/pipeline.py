"""One input record in, its outputs out: decode, validate, route, apply, encode.

Plain Python (no Faust): the worker's agent drives it with Faust tables as state, the
benchmark baseline and backtests drive it with dicts. Errors are values here: a record
that cannot be used becomes a dead-letter output with its reason, never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka.partitioner import murmur2

from rules.effects import DecideAction, Effect, Notify, PublishMetrics, RejectInput, SetFlag
from rules.history import APPEALED, ISSUED, PENDING_REVIEW
from rules.units import DAY_MS
from schemas import compact_json
from schemas.codec import Codec, DecodeError
from schemas.validation import FieldRuleViolation, validate
from streams.contract import topics as T
from streams.observability import (
    ENFORCEMENTS,
    EVENTS,
    EVENTS_INVALID,
    NOTIFICATIONS,
    RULE_EVALUATIONS,
    SELLER_METRICS_PUBLISHED,
)
from tables.engine import Engine


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java, aiokafka) gives a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Outgoing(NamedTuple):
    """A record to publish: contract topic name (unprefixed), key, value, headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None
    timestamp: float | None = None  # seconds; re-keyed records keep their original time


@dataclass
class Outcome:
    """What handling one input record produced."""

    outputs: list[Outgoing] = field(default_factory=list)
    # seller_id -> (SellerMetrics as published, evidence order ids by metric): the Redis view
    views: dict[str, tuple[bytes, Mapping[str, list[str]]]] = field(default_factory=dict)
    actions: dict[str, dict[str, str]] = field(default_factory=dict)  # seller -> action_id -> JSON
    # action_id -> JSON of the facts of its evidence orders when it was made (the review's orders)
    action_orders: dict[str, str] = field(default_factory=dict)
    appeals: dict[str, dict[str, str]] = field(default_factory=dict)  # seller -> action_id -> JSON of the appeal
    decisions: int = 0  # enforcement actions and notifications published
    record_name: str | None = None
    seller_id: str | None = None
    dead_letter_reason: str | None = None


class Pipeline:
    """Routes one raw input record through the decision core."""

    def __init__(self, engine: Engine, codec: Codec, partitions: int, topic_prefix: str = "",
                 max_future_ms: int = DAY_MS, wall_clock: Callable[[], int] | None = None,
                 unread: Callable[[int], tuple[str, ...]] | None = None) -> None:
        self.engine = engine
        self.codec = codec
        self.partitions = partitions
        self.prefix = topic_prefix
        self.max_future_ms = max_future_ms
        self.wall_clock = wall_clock or (lambda: int(time.time() * 1000))
        self._partition_cache: dict[str, int] = {}
        # counted here, added to the Prometheus counters by export_counts (a lock each)
        self._events_tally: dict[str, int] = {}  # topic -> input records since the last export
        self._published_tally = 0
        self._evaluations_exported = 0
        self._bases: dict[str, str] = {}
        # The clock's guard (Engine.held): `unread(p)` names the input topics whose
        # partition p has records not handled yet; asked on every tick. Until a
        # partition's first tick every input topic counts as unread.
        self.unread = unread
        self.guarded = tuple(topic_prefix + t for t in (*T.INPUT_TOPICS, T.REKEYED))
        self._metrics_topic = topic_prefix + T.SELLER_METRICS
        self.behind: dict[int, tuple[str, ...]] = {}
        self.positions: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset handled

    def forget(self) -> None:
        """After a rebalance: what was known of each partition's reading (how far each topic
        was read, which were behind) no longer holds; until a partition's next tick every
        input topic counts as unread again, and the clock is held at what was read."""
        self.behind.clear()
        self.positions.clear()
        self.engine.held.clear()

    def partition_of(self, seller_id: str) -> int:
        p = self._partition_cache.get(seller_id)
        if p is None:
            if len(self._partition_cache) > 1_000_000:
                self._partition_cache.clear()
            p = self._partition_cache[seller_id] = partition_for(seller_id.encode(), self.partitions)
        return p

    def _base(self, topic: str) -> str:
        base = self._bases.get(topic)
        if base is None:
            base = topic[len(self.prefix):] if self.prefix and topic.startswith(self.prefix) else topic
            if len(self._bases) < 10_000:
                self._bases[topic] = base
        return base

    def handle(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
               headers: dict[str, bytes] | None = None, timestamp: float | None = None) -> Outcome:
        out = Outcome()
        for _ in self.handle_steps(out, topic, partition, offset, key, value, headers, timestamp):
            pass
        return out

    def handle_steps(self, out: Outcome, topic: str, partition: int, offset: int, key: bytes | None,
                     value: bytes | None, headers: dict[str, bytes] | None = None,
                     timestamp: float | None = None) -> Iterator[None]:
        """`handle` as steps, filling `out`: it pauses where the core does
        (Engine.process_steps)."""
        base = self._base(topic)
        if base == T.TICKS:
            if self.unread is not None:
                self.behind[partition] = self.unread(partition)
                self._hold(partition)
            effects: list[Effect] = []
            yield from self.engine.tick_steps(partition, effects)
            self._effects(effects, out)
            return
        self.positions[(topic, partition)] = offset
        source_topic, source_partition, source_offset = topic, partition, offset
        if base == T.REKEYED and headers:
            source_topic = headers.get(T.H_TOPIC, topic.encode()).decode()
            source_partition = int(headers.get(T.H_PARTITION, b"-1"))
            source_offset = int(headers.get(T.H_OFFSET, b"-1"))
        label = self._base(source_topic)
        tally = self._events_tally
        if label in tally:
            tally[label] += 1
        else:
            tally[label] = 1
            EVENTS.labels(label)  # the series exists (and its _created time) from the first record
        source = (source_topic, source_partition, source_offset)
        try:
            name, record = self.codec.decode(value)
        except DecodeError as exc:
            self._dead(out, label, source, key, value, exc.reason, str(exc))
            return
        expected = T.INPUT_TOPICS.get(label)
        if expected is not None and name != expected:
            self._dead(out, label, source, key, value, "wrong_record_type",
                              f"{label} carries {expected}, not {name}")
            return
        try:
            validate(name, record, self.wall_clock(), self.max_future_ms)
        except FieldRuleViolation as exc:
            self._dead(out, label, source, key, value, exc.reason, str(exc))
            return
        seller = record["seller_id"]
        out.record_name, out.seller_id = name, seller
        if base != T.REKEYED:
            seller_key = seller.encode()
            target = self.partition_of(seller)
            if key != seller_key or partition != target:
                # Unkeyed or mis-keyed: move it to the seller's partition, where its state is.
                out.outputs.append(Outgoing(T.REKEYED, seller_key, value or b"", (
                    (T.H_TOPIC, topic.encode()),
                    (T.H_PARTITION, str(partition).encode()),
                    (T.H_OFFSET, str(offset).encode()),
                ), partition=target, timestamp=timestamp))
                return
        if self.unread is not None:
            self._hold(partition)
        effects = []
        yield from self.engine.process_steps(partition, name, record, effects)
        self._effects(effects, out)
        for effect in effects:
            if isinstance(effect, RejectInput):
                self._dead(out, label, source, key, value, effect.reason, effect.message)
                return

    def export_counts(self) -> None:
        """Add what was counted since the last call to the Prometheus counters (the driver
        calls it once per batch of records)."""
        if self._events_tally:
            tally, self._events_tally = self._events_tally, {}
            for label, n in tally.items():
                EVENTS.labels(label).inc(n)
        if self._published_tally:
            SELLER_METRICS_PUBLISHED.inc(self._published_tally)
            self._published_tally = 0
        evaluations = self.engine.evaluations
        if evaluations != self._evaluations_exported:
            RULE_EVALUATIONS.inc(evaluations - self._evaluations_exported)
            self._evaluations_exported = evaluations

    def _hold(self, partition: int) -> None:
        """Hold the partition's clock at its stream time while an input topic has unread records."""
        if self.behind.get(partition, self.guarded):  # until its first tick: all unread
            self.engine.held.add(partition)
        else:
            self.engine.held.discard(partition)

    @staticmethod
    def _dead(out: Outcome, label: str, source: tuple[str, int, int], key: bytes | None,
              value: bytes | None, reason: str, message: str) -> Outcome:
        """Route the original bytes and key to the dead-letter topic, with the reason."""
        topic, partition, offset = source
        EVENTS_INVALID.labels(label, reason).inc()
        out.dead_letter_reason = reason
        out.outputs.append(Outgoing(T.DEAD_LETTER, key, value or b"", (
            (T.H_ERROR, f"{reason}: {message}".replace("\n", " ").encode()),
            (T.H_TOPIC, topic.encode()),
            (T.H_PARTITION, str(partition).encode()),
            (T.H_OFFSET, str(offset).encode()),
        )))
        return out

    def outcome_of(self, effects: list[Effect]) -> Outcome:
        """The outputs of effects made outside an input record (e.g. published again)."""
        out = Outcome()
        self._effects(effects, out)
        return out

    def views_of(self, effects: list[Effect]) -> Outcome:
        """The Redis views of effects, nothing published or counted (a view rebuilt)."""
        out = Outcome()
        for effect in effects:
            if isinstance(effect, PublishMetrics):
                value = self.codec.encode("SellerMetrics", effect.record, self._metrics_topic)
                out.views[effect.seller_id] = (value, effect.evidence)
            elif isinstance(effect, DecideAction):
                r = effect.record
                out.actions.setdefault(r["seller_id"], {})[r["action_id"]] = compact_json.dumps(r)
                self._action_orders(r, out)
        return out

    def _action_orders(self, r: Mapping[str, Any], out: Outcome) -> None:
        """A new action's evidence orders with their facts, read while the tables hold them."""
        if r["status"] in (ISSUED, PENDING_REVIEW) and r["evidence_order_ids"]:
            facts = self.engine.facts_of(r["seller_id"], r["evidence_order_ids"])
            out.action_orders[r["action_id"]] = compact_json.dumps(facts)

    def _effects(self, effects: list[Effect], out: Outcome) -> None:
        messages = {e.key[len("message:"):]: e.value for e in effects
                    if isinstance(e, SetFlag) and e.key.startswith("message:")}
        for effect in effects:
            if isinstance(effect, PublishMetrics):
                value = self.codec.encode("SellerMetrics", effect.record, self._metrics_topic)
                out.outputs.append(Outgoing(T.SELLER_METRICS, effect.seller_id.encode(), value))
                out.views[effect.seller_id] = (value, effect.evidence)
                self._published_tally += 1
            elif isinstance(effect, DecideAction):
                r = effect.record
                value = self.codec.encode("EnforcementAction", r, self.prefix + T.ENFORCEMENTS)
                out.outputs.append(Outgoing(T.ENFORCEMENTS, r["seller_id"].encode(), value))
                out.actions.setdefault(r["seller_id"], {})[r["action_id"]] = compact_json.dumps(r)
                self._action_orders(r, out)
                if r["status"] == APPEALED and r["action_id"] in messages:
                    out.appeals.setdefault(r["seller_id"], {})[r["action_id"]] = compact_json.dumps(
                        {"message": messages[r["action_id"]], "filed_at": r["decided_at"], "event_id": r["caused_by"]})
                out.decisions += 1
                ENFORCEMENTS.labels(r["action"], r["status"], r["metric"]).inc()
            elif isinstance(effect, Notify):
                r = effect.record
                value = self.codec.encode("Notification", r, self.prefix + T.NOTIFICATIONS)
                out.outputs.append(Outgoing(T.NOTIFICATIONS, r["seller_id"].encode(), value))
                out.decisions += 1
                NOTIFICATIONS.labels(r["template"]).inc()

