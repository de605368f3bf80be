"""Seller-supplied text in a notification is escaped, stripped of control characters and
bounded (CONTRACT §3)."""

from __future__ import annotations

from pathlib import Path

from rules.notifications import MAX_QUOTE, escape, notification
from rules.policy import load_policy

POLICY = load_policy(str(Path(__file__).resolve().parents[3] / "rules" / "policy.yaml"))
ACTION = {"action_id": "act_1", "seller_id": "s<1>", "action": "SUSPENSION", "status": "UPHELD",
          "rule_id": "ladder.repeat", "metric": "late_dropoff_rate", "observed_rate": 0.08, "numerator": 8,
          "denominator": 100, "threshold": 0.04, "window_days": 30, "evidence_order_ids": [],
          "policy_version": "v", "reason": "late <b>often</b>", "decided_at": 1, "caused_by": "e"}


def test_markup_quotes_and_control_characters_are_neutralised() -> None:
    assert escape('<script>alert("x")</script>') == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert escape("a\x00b\x1bc\r\nd\te") == "a b c d e"
    assert escape(None) == "" and escape("") == ""
    long = escape("x" * (MAX_QUOTE + 100))
    assert long.endswith("…") and len(long) == MAX_QUOTE + 1


def test_an_appeal_message_reaches_the_body_escaped() -> None:
    record = notification(ACTION, "appeal_denied", POLICY, 2, message='I <b>never</b> "ship" late\x07')
    body = record["body"]
    assert "&lt;b&gt;never&lt;/b&gt; &quot;ship&quot; late" in body
    assert "<b>" not in body and "\x07" not in body
    assert record["seller_id"] == "s<1>"  # the record's own field is data, not text to render
