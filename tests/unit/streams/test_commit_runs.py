"""The commit's scan of acknowledged offsets (`consecutive_runs`) finds the runs Faust's
own `consecutive_numbers` finds, whatever the list holds, and Faust's commit uses it."""

from __future__ import annotations

import random

import pytest
from faust.transport import consumer as faust_consumer
from faust.utils.functional import consecutive_numbers

from streams.faust_internals.consumer import consecutive_runs, use_quick_commit_offsets


@pytest.mark.parametrize("numbers", [
    [], [7], [1, 2, 3], [1, 2, 4, 5], [34, 35, 36, 40, 41, 42, 43, 44],
    [5, 6, 6, 7], [5, 6, 6, 8], [5, 5, 5], [0, 2, 4, 6], [*range(100_000), 100_002],
])
def test_the_runs_are_faust_s(numbers: list[int]) -> None:
    assert list(consecutive_runs(numbers)) == list(consecutive_numbers(numbers))


def test_random_sorted_lists_with_gaps_and_duplicates() -> None:
    rng = random.Random(20)
    for _ in range(2_000):
        numbers = sorted(rng.choice((0, 1, 1, 1, 2, 5)) for _ in range(rng.randrange(0, 40)))
        numbers = [sum(numbers[:i + 1]) for i in range(len(numbers))]  # running sums: runs, gaps, repeats
        assert list(consecutive_runs(numbers)) == list(consecutive_numbers(numbers)), numbers


def test_anything_but_a_list_goes_faust_s_way() -> None:
    assert list(consecutive_runs(iter([3, 4, 9]))) == [[3, 4], [9]]
    assert list(consecutive_runs((3, 4, 9))) == [[3, 4], [9]]


def test_faust_s_commit_finds_its_offset_with_it() -> None:
    previous = faust_consumer.consecutive_numbers
    try:
        use_quick_commit_offsets()
        assert faust_consumer.consecutive_numbers is consecutive_runs
    finally:
        faust_consumer.consecutive_numbers = previous
