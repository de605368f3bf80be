"""Decisions under scale-out and faults, against real worker processes on the real broker
(reduced sizes; `make chaos` runs the full trials: python -m tests.chaos)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import harness as H

pytestmark = pytest.mark.integration
SELLERS, DAYS = 40, 10


def check(outcome: H.Outcome) -> None:
    assert outcome.expected, "the history must provoke decisions to compare"
    assert outcome.mismatches == 0, outcome.describe()
    assert not outcome.reissued, f"ids re-issued with other contents: {outcome.reissued[:5]}"
    assert not outcome.reliable_actions, f"actions against reliable sellers: {outcome.reliable_actions[:3]}"


def test_a_second_worker_joining_mid_stream_decides_what_the_core_decides(broker: str,
                                                                           tmp_path: Path) -> None:
    """The regression: the second worker joins while the first holds unacknowledged records
    and has committed nothing yet; every decision must still be the core's."""
    events = H.history(11, SELLERS, DAYS, H.end_of_history(DAYS))
    cluster = H.Cluster(broker, tmp_path)
    try:
        outcome = H.run_trial(cluster, events, seed=11, day_pause_s=1.0, faults=[(0.0, H.join("w1"))])
    finally:
        cluster.stop_all()
    assert outcome.rebalances >= 2
    check(outcome)


def test_two_workers_killed_in_turn_while_the_days_flow(broker: str, tmp_path: Path) -> None:
    """kill -9 each of two workers in turn, restarted at once, while an ordinary producer
    (librdkafka's batching) publishes the days: a restart goes on from a commit that may
    stand inside a batch, and from a checkpoint taken while records flowed."""
    seed = 12
    events = H.history(seed, SELLERS, DAYS, H.end_of_history(DAYS))
    cluster = H.Cluster(broker, tmp_path)
    alternate = H.kill_alternating(["w0", "w1"])
    faults: list[tuple[float, H.Fault]] = [(0.1 + 0.2 * i, alternate) for i in range(4)]
    try:
        outcome = H.run_trial(cluster, events, seed=seed, day_pause_s=2.5, initial=2, faults=faults)
    finally:
        cluster.stop_all()
    assert outcome.tally.kills >= 4
    check(outcome)


def test_a_worker_paused_past_its_session_is_fenced_and_decides_nothing_else(broker: str,
                                                                            tmp_path: Path) -> None:
    """A zombie: paused (SIGSTOP) while it holds partitions and no rebalance is under way,
    resumed after they moved. It drops its unflushed changes, restores from the changelogs
    when it is given partitions again, and the decisions stay the core's."""
    seed = 13
    events = H.history(seed, SELLERS, DAYS, H.end_of_history(DAYS))
    cluster = H.Cluster(broker, tmp_path)
    try:
        outcome = H.run_trial(cluster, events, seed=seed, day_pause_s=1.2, initial=2,
                              faults=[(0.2, H.pause("w0", 12.0)), (0.9, H.kill_restart(["w1"]))])
    finally:
        cluster.stop_all()
    assert cluster.logs_contain("lost its group membership") == ["w0"]
    check(outcome)
