"""The Prometheus registry and every metric Warden exports (CONTRACT §7)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter("warden_events_total", "Input records consumed, by topic.", ["topic"], registry=REGISTRY)
EVENTS_INVALID = Counter(
    "warden_events_invalid_total", "Input records sent to the dead-letter topic, by topic and reason.",
    ["topic", "reason"], registry=REGISTRY,
)
ENFORCEMENTS = Counter(
    "warden_enforcements_total", "Enforcement actions published, by action, status and metric.",
    ["action", "status", "metric"], registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "warden_notifications_total", "Seller notifications published, by template.", ["template"],
    registry=REGISTRY,
)
EVENT_TO_DECISION = Histogram(
    "warden_event_to_decision_seconds",
    "From an event's arrival at the broker to the publication of what it caused.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RULE_EVALUATIONS = Counter(
    "warden_rule_evaluations_total", "Policy evaluations of a seller's changed figures.", registry=REGISTRY,
)
PENDING_REVIEWS = Gauge("warden_pending_reviews", "Actions waiting for a human review held by this worker, by "
                        "kind (SUSPENSION, BAN, APPEAL).", ["kind"], registry=REGISTRY)
OLDEST_PENDING_REVIEW = Gauge(
    "warden_oldest_pending_review_seconds", "Age of the oldest action waiting for review here, by kind.", ["kind"],
    registry=REGISTRY,
)
REVIEW_DECISIONS = Counter(
    "warden_review_decisions_total", "Reviews decided, by kind and outcome (the status the action moved to).",
    ["kind", "outcome"], registry=REGISTRY,
)
REVIEW_SECONDS = Histogram(
    "warden_review_duration_seconds", "From a proposal or an appeal to its decision (event time), by kind.",
    ["kind"], buckets=(60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 48 * 3600, 72 * 3600, 7 * 86400),
    registry=REGISTRY,
)
REVIEW_SLA_BREACHES = Counter(
    "warden_review_sla_breaches_total", "Reviews decided after their kind's SLA (policy review.sla_hours).",
    ["kind"], registry=REGISTRY,
)
REVIEW_KINDS = ("SUSPENSION", "BAN", "APPEAL")
for _kind in REVIEW_KINDS:  # every kind exported from the start, zero until a case comes
    PENDING_REVIEWS.labels(_kind).set(0)
    OLDEST_PENDING_REVIEW.labels(_kind).set(0)
SELLER_METRICS_PUBLISHED = Counter(
    "warden_seller_metrics_published_total", "SellerMetrics records published (figures changed).",
    registry=REGISTRY,
)
PENDING_DEADLINES = Gauge(
    "warden_pending_deadlines", "Deadline and window-exit timers held by this worker.", registry=REGISTRY,
)
TABLE_READS = Counter(
    "warden_table_reads_total", "Values a table read from its local database, not held in its bounded cache "
    "(the rocksdb store; WARDEN_TABLE_CACHE_ENTRIES).", ["table"], registry=REGISTRY,
)
DEADLINE_REFILLS = Counter(
    "warden_deadline_refills_total", "Scans of a partition's tables for its next deadlines: the bounded deadline "
    "heaps reached their horizon.", registry=REGISTRY,
)
INPUT_POSITION = Gauge(
    "warden_input_position",
    "The offset after the last input record handled, by topic and partition (assigned here).",
    ["topic", "partition"], registry=REGISTRY,
)

VIEW_WRITE_FAILURES = Counter(
    "warden_view_write_failures_total", "Flushes of the Redis views that failed (retried, then caught up).",
    registry=REGISTRY,
)

OUTPUT_DELIVERY_FAILURES = Counter(
    "warden_output_delivery_failures_total", "Records the broker did not take within the delivery timeout, by "
    "producer (outputs, changelogs); the worker stops at the first, and is replaced.", ["producer"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "warden_consumer_lag", "Records on an input partition not yet handled: log end minus the position handled.",
    ["topic", "partition"], registry=REGISTRY,
)
CONSUMER_COMMITTED_LAG = Gauge(
    "warden_consumer_committed_lag", "Log end minus the committed offset of an input partition: what a "
    "replacement would read again.", ["topic", "partition"], registry=REGISTRY,
)
TABLE_RESTORE_REMAINING = Gauge(
    "warden_table_restore_remaining", "Changelog records still to read before this worker's tables are restored.",
    registry=REGISTRY,
)
READY = Gauge("warden_ready", "1 when the worker is ready: assigned, restored, not rebalancing, brokers answering.",
              registry=REGISTRY)
LIVE = Gauge("warden_live", "1 while the worker's event loop runs its timers.", registry=REGISTRY)
REBALANCES = Counter("warden_rebalances_total", "Partition assignments this worker took (one per generation).",
                     registry=REGISTRY)
EVENT_LOOP_LAG = Histogram(
    "warden_event_loop_lag_seconds", "How late the event loop woke a 50 ms sleep: time it was blocked.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY,
)
STARTUP_PHASE = Gauge(
    "warden_startup_phase_seconds",
    "Where this worker's start went, in seconds: join (process start to partitions assigned, the broker's holds "
    "included), open (a restart's local databases opened, within join), restore (assigned to the tables' "
    "changelogs read), tables (the stores bound), "
    "timers (the deadline heaps rebuilt).",
    ["phase"], registry=REGISTRY,
)
EVENT_LOOP_LAG_MAX = Gauge(
    "warden_event_loop_lag_max_seconds",
    "The longest the event loop was blocked in the last 10 to 20 s (each window's peak is held for the next).",
    registry=REGISTRY,
)
# the process's CPU, memory and file descriptors, Python's version and collector, on Warden's registry
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
