"""The monitor's watchdog rule: stalled means no position moved while records wait."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from services.monitor.service import stalled

A, B = TopicPartition("e", 0), TopicPartition("e", 1)


@pytest.mark.parametrize(
    ("before", "positions", "ends", "expected"),
    [
        (None, {A: 5}, {A: 9}, False),  # first look: nothing to compare
        ({A: 5}, {A: 7}, {A: 9}, False),  # moving
        ({A: 9}, {A: 9}, {A: 9}, False),  # idle, nothing waiting
        ({A: 5}, {A: 5}, {A: 9}, True),  # stuck with 4 waiting
        ({A: 5, B: 2}, {A: 5, B: 2}, {A: 5, B: 3}, True),  # one partition behind
        ({A: 5, B: 2}, {A: 5, B: 3}, {A: 5, B: 9}, False),
    ],
)
def test_stalled(
    before: dict[TopicPartition, int] | None,
    positions: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    expected: bool,
) -> None:
    assert stalled(before, positions, ends) is expected
