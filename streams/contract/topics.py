"""Every topic name of CONTRACT §2, in one place; the Faust topic objects are made by streams.app.declare_topics."""

from __future__ import annotations

# input topic -> the record it carries
INPUT_TOPICS: dict[str, str] = {
    "marketplace.orders": "OrderPlaced",
    "marketplace.shipment-scans": "ShipmentScan",
    "marketplace.cancellations": "OrderCancelled",
    "marketplace.refunds": "RefundIssued",
    "marketplace.ratings": "RatingSubmitted",
    "trust-safety.review-decisions": "ReviewDecision",
    "trust-safety.appeals": "AppealFiled",
}
RECORD_TOPIC: dict[str, str] = {record: topic for topic, record in INPUT_TOPICS.items()}

ENFORCEMENTS = "trust-safety.enforcements"
NOTIFICATIONS = "trust-safety.notifications"
SELLER_METRICS = "trust-safety.seller-metrics"
DEAD_LETTER = "trust-safety.dead-letter"
# The review console's audit log (written by the web service, not by the workers)
REVIEW_AUDIT = "trust-safety.review-audit"
OUTPUT_TOPICS: dict[str, str | None] = {
    ENFORCEMENTS: "EnforcementAction",
    NOTIFICATIONS: "Notification",
    SELLER_METRICS: "SellerMetrics",
    DEAD_LETTER: None,
    REVIEW_AUDIT: "ReviewAudit",
}
COMPACTED = frozenset({SELLER_METRICS})

# Internal: records whose key or partition did not match their seller, re-keyed by seller;
# and the wall-clock ticks that drive deadline sweeps inside each partition's stream.
REKEYED = "warden.rekeyed"
TICKS = "warden.ticks"

# Dead-letter headers (CONTRACT §2).
H_ERROR = "warden.error"
H_TOPIC = "warden.source.topic"
H_PARTITION = "warden.source.partition"
H_OFFSET = "warden.source.offset"


# The tables' names: each has a compacted changelog topic `<group>-<table>-changelog`
# (streams.table_setup declares them in this order).
TABLES = ("orders", "sellers", "defect-buyers", "evidence", "clocks", "enforcement")

DAY_S = 86_400
# Retention of each kind of topic (ms), for `warden topics` and the deployments. Inputs are
# kept well past the 30-day window, so a replay or a new worker can rebuild from them; the
# review and audit topics are records of what people decided.
RETENTION_MS = {
    "input": 90 * DAY_S * 1000,
    "output": 400 * DAY_S * 1000,
    "dead-letter": 30 * DAY_S * 1000,
    "internal": 7 * DAY_S * 1000,
}
