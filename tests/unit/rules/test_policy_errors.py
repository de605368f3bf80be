"""A bad policy is refused with a message naming the field (CONTRACT §5)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.policy import PolicyError, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[3]
GOOD = yaml.safe_load((ROOT / "rules" / "policy.yaml").read_text())


def changed(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    change(doc)
    return doc


CASES = [
    ("policy_version", lambda d: d.update(policy_version="")),
    ("window_days", lambda d: d.update(window_days="thirty")),
    ("ladder.escalate_after_days", lambda d: d["ladder"].update(escalate_after_days=-1)),
    ("ladder.warning_ttl_day", lambda d: d["ladder"].update(warning_ttl_day=30)),
    ("metrics.late_dropoff_rate.threshold_exceeds",
     lambda d: d["metrics"]["late_dropoff_rate"].update(threshold_exceeds=0.5)),
    ("metrics.unfulfilled_rate.enforced", lambda d: d["metrics"]["unfulfilled_rate"].update(enforced="yes")),
    ("metrics.speed_rate", lambda d: d["metrics"].update(speed_rate={})),
    ("metrics.low_rating_rate", lambda d: d["metrics"].pop("low_rating_rate")),
    ("absolute_rules[0].refund_reason", lambda d: d["absolute_rules"][0].update(refund_reason="ANGRY")),
    ("absolute_rules[0].action", lambda d: d["absolute_rules"][0].update(action="WARNING")),
]


def test_the_shipped_policy_loads() -> None:
    assert load_policy(str(ROOT / "rules" / "policy.yaml")).version == GOOD["policy_version"]


@pytest.mark.parametrize("field, change", CASES, ids=[c[0] for c in CASES])
def test_each_bad_field_is_named(field: str, change: Callable[[dict[str, Any]], None]) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(changed(change))
    assert str(caught.value).startswith(field), str(caught.value)


def test_a_missing_file_is_a_policy_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nowhere\.yaml"):
        load_policy(str(tmp_path / "nowhere.yaml"))
