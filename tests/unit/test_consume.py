"""A recreated log is told by its end going backwards, not by a reader being past the
end a broker reports (which may be the first offset of the last batch)."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from shared.consume import shrunk

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


@pytest.mark.parametrize(
    ("ends", "before", "recreated"),
    [
        ({A0: 1884, A1: 13}, {}, []),  # the first look: nothing to compare with
        ({A0: 1884, A1: 13}, {A0: 1884, A1: 13}, []),  # a quiet log
        ({A0: 2127, A1: 14}, {A0: 1884, A1: 13}, []),  # records came in
        ({A0: 3, A1: 14}, {A0: 1884, A1: 14}, [A0]),  # a0 made anew, 3 records so far
        ({A0: 0, A1: 0, B0: 5}, {A0: 7, A1: 0, B0: 5}, [A0]),  # an empty log stays empty
        ({B0: 1, A1: 2}, {B0: 9, A1: 14, A0: 3}, [A1, B0]),  # a0 no longer ours: not looked at
    ],
)
def test_a_log_whose_end_went_back_was_recreated(
    ends: dict[TopicPartition, int],
    before: dict[TopicPartition, int],
    recreated: list[TopicPartition],
) -> None:
    assert shrunk(ends, before) == recreated
