"""The Redis keys of the sellers' views (agents.views writes them, the web service reads
them): one place, so the writer and the readers always agree."""

from __future__ import annotations


class ViewKeys:
    """Keys under `<topic prefix>warden:`, per seller."""

    def __init__(self, topic_prefix: str) -> None:
        self.prefix = f"{topic_prefix}warden"

    def metrics(self, seller_id: str) -> str:
        """Hash: `record` (the latest SellerMetrics, wire bytes) and `detail` (JSON)."""
        return f"{self.prefix}:seller:{seller_id}:view"

    def daily(self, seller_id: str) -> str:
        """Hash: day (YYYY-MM-DD) -> JSON [numerator, denominator] per metric, 90 days."""
        return f"{self.prefix}:seller:{seller_id}:daily"

    def actions(self, seller_id: str) -> str:
        """Hash: action id -> the action's latest EnforcementAction record as JSON."""
        return f"{self.prefix}:seller:{seller_id}:actions"

    def appeal_filed(self, appeal_id: str) -> str:
        """A marker the web service sets when it files an appeal (a second one is refused)."""
        return f"{self.prefix}:appeal:{appeal_id}"
