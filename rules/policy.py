"""The enforcement policy as validated, immutable data (CONTRACT §5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from rules.metrics import FLAWED_REASONS, METRICS
from rules.units import DAY_MS

HOUR_MS = 3_600_000
MAX_MIN_DEFECT_BUYERS = 50


class PolicyError(ValueError):
    """A policy that cannot be used; the message names the offending field."""


@dataclass(frozen=True)
class MetricPolicy:
    """The bands and enforcement switches of one metric."""

    name: str
    threshold_exceeds: float
    threshold_below: float
    min_volume: int
    min_defect_buyers: int = 1
    min_confidence: float | None = None
    enforced: bool = True
    at_risk: float = 0.8  # a fraction of threshold_below: at or above it (not yet BELOW) the seller is at risk
    notify_at_risk: bool = False  # one `at_risk` Notification per episode

    def is_at_risk(self, num: int, den: int) -> bool:
        """Measured, not BELOW, and at or above `at_risk` x threshold_below: warn before punishing."""
        if den < self.min_volume or den == 0:
            return False
        rate = num / den
        return self.at_risk * self.threshold_below <= rate <= self.threshold_below and rate > 0


@dataclass(frozen=True)
class Ladder:
    """Timing of the warning -> suspension -> ban ladder."""

    warning_ttl_ms: int = 30 * DAY_MS
    escalate_after_ms: int = 14 * DAY_MS
    repeat_window_ms: int = 90 * DAY_MS


REVIEW_KINDS = ("SUSPENSION", "BAN", "APPEAL")


@dataclass(frozen=True)
class Review:
    """How long a human review may take (CONTRACT §9): an SLA per kind of case, and how
    long a reviewer's claim on a case lasts."""

    sla_hours: Mapping[str, float] = field(default_factory=lambda: {"SUSPENSION": 24.0, "BAN": 24.0,
                                                                    "APPEAL": 72.0})
    claim_minutes: float = 30.0


@dataclass(frozen=True)
class AbsoluteRule:
    """Act on a count of refunds of one reason in the window, whatever the volume."""

    id: str
    refund_reason: str
    min_count: int
    action: str  # SUSPENSION or BAN, always PENDING_REVIEW


@dataclass(frozen=True)
class Policy:
    """Everything the metrics and rules need to know, validated."""

    version: str
    window_ms: int
    scan_grace_ms: int
    unfulfilled_grace_ms: int
    metrics: Mapping[str, MetricPolicy]
    ladder: Ladder
    absolute_rules: tuple[AbsoluteRule, ...]
    review: Review = field(default_factory=Review)

    @property
    def window_days(self) -> int:
        return self.window_ms // DAY_MS

    @property
    def longest_grace_ms(self) -> int:
        return max(self.scan_grace_ms, self.unfulfilled_grace_ms)

    @cached_property
    def memo(self) -> dict[Any, Any]:
        """Values derived from this policy alone, memoized by their users (bounded by them)."""
        return {}

    @cached_property
    def notified_at_risk(self) -> tuple[tuple[int, MetricPolicy], ...]:
        """(metric index, its policy) of every metric whose at-risk episodes are notified."""
        return tuple((i, self.metrics[name]) for i, name in enumerate(METRICS) if self.metrics[name].notify_at_risk)

    @cached_property
    def enforced_metrics(self) -> tuple[tuple[int, MetricPolicy], ...]:
        """(metric index, its policy) of every enforced metric, in METRICS order."""
        return tuple((i, self.metrics[name]) for i, name in enumerate(METRICS) if self.metrics[name].enforced)


def _check_keys(node: Mapping[str, Any], where: str, allowed: set[str], required: set[str]) -> None:
    for key in node:
        if key not in allowed:
            raise PolicyError(f"{where}{key}: unknown field (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required):
        if key not in node:
            raise PolicyError(f"{where}{key}: required field is missing")


def _number(node: Mapping[str, Any], key: str, where: str, lo: float, hi: float,
            integer: bool = False, default: Any = None) -> Any:
    value = node.get(key, default)
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise PolicyError(f"{where}{key}: must be {kind}, got {value!r}")
    if not lo <= value <= hi:
        raise PolicyError(f"{where}{key}: must be within [{lo}, {hi}], got {value!r}")
    return value


def _metric(name: str, node: Any) -> MetricPolicy:
    where = f"metrics.{name}."
    if not isinstance(node, Mapping):
        raise PolicyError(f"metrics.{name}: must be a mapping")
    _check_keys(node, where,
                {"threshold_exceeds", "threshold_below", "min_volume", "min_defect_buyers",
                 "min_confidence", "enforced", "at_risk", "notify_at_risk"},
                {"threshold_exceeds", "threshold_below", "min_volume"})
    exceeds = float(_number(node, "threshold_exceeds", where, 0.0, 1.0))
    below = float(_number(node, "threshold_below", where, 0.0, 1.0))
    if exceeds > below:
        raise PolicyError(f"{where}threshold_exceeds: {exceeds} is above threshold_below {below}")
    min_volume = _number(node, "min_volume", where, 1, 10**9, integer=True)
    buyers = _number(node, "min_defect_buyers", where, 1, MAX_MIN_DEFECT_BUYERS, integer=True, default=1)
    confidence = node.get("min_confidence")
    if confidence is not None:
        confidence = float(_number(node, "min_confidence", where, 0.5, 0.9999))
    enforced = node.get("enforced", True)
    if not isinstance(enforced, bool):
        raise PolicyError(f"{where}enforced: must be true or false, got {enforced!r}")
    at_risk = float(_number(node, "at_risk", where, 0.0, 1.0, default=0.8))
    notify = node.get("notify_at_risk", False)
    if not isinstance(notify, bool):
        raise PolicyError(f"{where}notify_at_risk: must be true or false, got {notify!r}")
    return MetricPolicy(name, exceeds, below, min_volume, buyers, confidence, enforced, at_risk, notify)


def _review(doc: Any) -> Review:
    if doc is None:
        return Review()
    if not isinstance(doc, Mapping):
        raise PolicyError("review: must be a mapping")
    _check_keys(doc, "review.", {"sla_hours", "claim_minutes"}, set())
    sla_doc = doc.get("sla_hours") or {}
    if not isinstance(sla_doc, Mapping):
        raise PolicyError("review.sla_hours: must be a mapping of SUSPENSION, BAN and APPEAL to hours")
    _check_keys(sla_doc, "review.sla_hours.", set(REVIEW_KINDS), set())
    defaults = Review().sla_hours
    sla = {kind: float(_number(sla_doc, kind, "review.sla_hours.", 0.01, 24 * 365, default=defaults[kind]))
           for kind in REVIEW_KINDS}
    claim = float(_number(doc, "claim_minutes", "review.", 0.05, 24 * 60, default=30))
    return Review(sla, claim)


def parse_policy(doc: Any) -> Policy:
    """Validate a policy document (already parsed from YAML) into a `Policy`."""
    if not isinstance(doc, Mapping):
        raise PolicyError("policy: the document must be a mapping")
    _check_keys(doc, "",
                {"policy_version", "window_days", "scan_grace_hours", "unfulfilled_grace_days",
                 "ladder", "metrics", "absolute_rules", "review"},
                {"policy_version", "metrics"})
    version = doc["policy_version"]
    if not isinstance(version, str) or not version.strip():
        raise PolicyError(f"policy_version: must be a non-empty string, got {version!r}")
    window_days = _number(doc, "window_days", "", 30, 30, integer=True, default=30)
    scan_grace = _number(doc, "scan_grace_hours", "", 0, 24 * 30, default=24)
    unfulfilled = _number(doc, "unfulfilled_grace_days", "", 0, 30, default=3)

    ladder_doc = doc.get("ladder") or {}
    if not isinstance(ladder_doc, Mapping):
        raise PolicyError("ladder: must be a mapping")
    _check_keys(ladder_doc, "ladder.", {"warning_ttl_days", "escalate_after_days", "repeat_window_days"}, set())
    ladder = Ladder(
        warning_ttl_ms=int(_number(ladder_doc, "warning_ttl_days", "ladder.", 1, 365, default=30) * DAY_MS),
        escalate_after_ms=int(_number(ladder_doc, "escalate_after_days", "ladder.", 1, 365, default=14) * DAY_MS),
        repeat_window_ms=int(_number(ladder_doc, "repeat_window_days", "ladder.", 1, 3650, default=90) * DAY_MS),
    )

    metrics_doc = doc["metrics"]
    if not isinstance(metrics_doc, Mapping):
        raise PolicyError("metrics: must be a mapping of metric name to bands")
    for name in metrics_doc:
        if name not in METRICS:
            raise PolicyError(f"metrics.{name}: unknown metric (known: {', '.join(METRICS)})")
    for name in METRICS:
        if name not in metrics_doc:
            raise PolicyError(f"metrics.{name}: required metric is missing")
    metrics = {name: _metric(name, metrics_doc[name]) for name in METRICS}

    rules: list[AbsoluteRule] = []
    seen: set[str] = set()
    rules_doc = doc.get("absolute_rules") or []
    if not isinstance(rules_doc, list):
        raise PolicyError("absolute_rules: must be a list")
    for i, rule in enumerate(rules_doc):
        where = f"absolute_rules[{i}]."
        if not isinstance(rule, Mapping):
            raise PolicyError(f"absolute_rules[{i}]: must be a mapping")
        _check_keys(rule, where, {"id", "refund_reason", "min_count", "action"},
                    {"id", "refund_reason", "min_count", "action"})
        rule_id = rule["id"]
        if not isinstance(rule_id, str) or not rule_id or rule_id in seen:
            raise PolicyError(f"{where}id: must be a unique non-empty string, got {rule_id!r}")
        seen.add(rule_id)
        if rule["refund_reason"] not in FLAWED_REASONS:
            raise PolicyError(f"{where}refund_reason: must be one of {', '.join(FLAWED_REASONS)}")
        if rule["action"] not in ("SUSPENSION", "BAN"):
            raise PolicyError(f"{where}action: must be SUSPENSION or BAN")
        count = _number(rule, "min_count", where, 1, 10**6, integer=True)
        rules.append(AbsoluteRule(rule_id, rule["refund_reason"], count, rule["action"]))

    return Policy(
        version=version.strip(),
        window_ms=window_days * DAY_MS,
        scan_grace_ms=int(scan_grace * HOUR_MS),
        unfulfilled_grace_ms=int(unfulfilled * DAY_MS),
        metrics=metrics,
        ladder=ladder,
        absolute_rules=tuple(rules),
        review=_review(doc.get("review")),
    )


def load_policy(path: str | Path) -> Policy:
    """Read and validate the policy file; raise PolicyError naming the bad field."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise PolicyError(f"WARDEN_POLICY={str(path)!r}: cannot read: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse_policy(doc)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
