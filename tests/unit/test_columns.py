"""The columnar event log: capacity, dropping by time and by count (pure numpy)."""

from __future__ import annotations

import math

import pytest

from shared.core.columns import ANSWERED, QUEUED, EventLog


def filled(ts: list[float]) -> EventLog:
    log = EventLog(capacity=4)
    for t in ts:
        log.append(t, 0, QUEUED, math.nan, math.nan)
    log.flush()
    return log


# keep: the latest ts dropped (None: nothing to drop); events of one ts go together
CUTS = [
    (6, None),
    (5, 0.5),
    (4, 1.0),
    (3, 2.0),  # the two events at 2.0 go together: two are held, not three
    (2, 2.0),
    (1, 3.0),
    (0, 4.0),
]


@pytest.mark.parametrize(("keep", "cut"), CUTS)
def test_cutoff_keeping_counts_from_the_oldest(keep: int, cut: float | None) -> None:
    log = filled([4.0, 1.0, 2.0, 2.0, 3.0, 0.5])  # sorted on flush: 0.5, 1, 2, 2, 3, 4
    assert log.cutoff_keeping(keep) == cut


def test_drop_before_says_how_many_went() -> None:
    log = filled([0.5, 1.0, 2.0, 2.0, 3.0, 4.0])
    assert log.drop_before(2.0) == 4
    assert log.drop_before(2.0) == 0
    assert (len(log), log.ts[log.start : log.end].tolist()) == (2, [3.0, 4.0])


def test_capacity_stays_under_one_and_a_half_times_what_is_held() -> None:
    log = EventLog(capacity=1024)
    for i in range(3000):  # grows 1024 -> 1537 (need 1025) -> 2307 (1538) -> 3462 (2308)
        log.append(float(i), 0, ANSWERED, 1.0, math.nan)
        log.flush()
    assert log._cap == 3462
    log.drop_before(2499.0)  # 500 held, at 2500..2999 of the columns
    for i in range(3000, 5000):  # full at 3462 with 962 held: they move to the front
        log.append(float(i), 0, ANSWERED, 1.0, math.nan)
        log.flush()
    assert (log._cap, len(log), log.start) == (3462, 2500, 0)
    assert log.ts[log.start : log.end].tolist() == [float(i) for i in range(2500, 5000)]
