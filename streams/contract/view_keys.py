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

    def orders(self, seller_id: str) -> str:
        """Hash: order id -> JSON of its facts, for the orders behind the seller's figures."""
        return f"{self.prefix}:seller:{seller_id}:orders"

    def daily(self, seller_id: str) -> str:
        """Hash: day (YYYY-MM-DD) -> JSON [numerator, denominator] per metric, 90 days."""
        return f"{self.prefix}:seller:{seller_id}:daily"

    def actions(self, seller_id: str) -> str:
        """Hash: action id -> the action's latest EnforcementAction record as JSON."""
        return f"{self.prefix}:seller:{seller_id}:actions"

    def timeline(self, seller_id: str) -> str:
        """List: every action record published for the seller, oldest first (the last 500)."""
        return f"{self.prefix}:seller:{seller_id}:timeline"

    def appeals(self, seller_id: str) -> str:
        """Hash: action id -> the seller's appeal of it (JSON: message, filed_at, event_id)."""
        return f"{self.prefix}:seller:{seller_id}:appeals"

    def appeal_filed(self, appeal_id: str) -> str:
        """A marker the web service sets when it files an appeal (a second one is refused)."""
        return f"{self.prefix}:appeal:{appeal_id}"

    def review_queue(self) -> str:
        """Hash: action id -> the action's record, for every action waiting for a human."""
        return f"{self.prefix}:review:queue"

    def action_sellers(self) -> str:
        """Hash: action id -> its seller (a case's page finds the seller's view by it)."""
        return f"{self.prefix}:action-sellers"

    def action_orders(self, action_id: str) -> str:
        """String: JSON of the facts of an action's evidence orders when it was made."""
        return f"{self.prefix}:action:{action_id}:orders"

    def claim(self, action_id: str) -> str:
        """String: who holds a case (JSON), expiring after the policy's claim_minutes."""
        return f"{self.prefix}:review:claim:{action_id}"

    def decision_sent(self, action_id: str) -> str:
        """Hash: the status a decision was sent for -> who sent which decision (JSON)."""
        return f"{self.prefix}:review:decision:{action_id}"

    def decision_events(self) -> str:
        """Hash: ReviewDecision event id -> the reviewer who sent it from the console."""
        return f"{self.prefix}:review:decision-events"

    def audit(self, action_id: str | None = None) -> str:
        """List: the review audit entries of one case, or of all cases (newest first)."""
        return f"{self.prefix}:review:audit" + (f":{action_id}" if action_id else "")
