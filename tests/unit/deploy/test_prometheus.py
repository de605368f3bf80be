"""Warden's Prometheus config and alert rules, checked with the real promtool (Debian's
`prometheus` package, installed by .ci/run): the config and rules are valid, and the unit
tests cover every alert with a case that fires and one that does not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: install Debian's prometheus package (make test-tools does)"
    return subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def alerts() -> dict[str, dict]:
    rules = yaml.safe_load((PROMETHEUS / "warden.rules.yml").read_text())
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def test_promtool_checks_the_config_and_the_rules() -> None:
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "warden.rules.yml")):
        done = promtool(*args)
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", "warden.rules.test.yml")
    assert done.returncode == 0 and "SUCCESS" in done.stdout + done.stderr, done.stdout + done.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    tests = yaml.safe_load((PROMETHEUS / "warden.rules.test.yml").read_text())["tests"]
    fires, quiet = set(), set()
    for test in tests:
        for case in test["alert_rule_test"]:
            (fires if case["exp_alerts"] else quiet).add(case["alertname"])
    assert set(alerts()) == fires == quiet


def test_every_alert_says_what_and_points_to_its_runbook_line() -> None:
    readme = (ROOT / "README.md").read_text()
    operations = readme[readme.index("## Operations"):]
    for name, rule in alerts().items():
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook"] == f"README.md#operations: {name}", name
        assert f"`{name}`" in operations, f"no runbook line for {name} in the README's Operations section"
