"""The columnar event log: capacity, dropping by time and by count (pure numpy)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from shared.core.columns import (
    ABANDONED,
    ANSWERED,
    CALLBACK,
    ENDED,
    KINDS,
    OVERFLOWED,
    QUEUED,
    EventLog,
    Params,
    pack,
    unpack,
)


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


def test_totals_by_key_equal_a_count_by_hand() -> None:
    """`totals_by` finds which events count as what once for every key; each key's sums
    are those counted event by event, and the sums per queue carry the patience's."""
    rng = random.Random(7)
    log = EventLog()
    events = []
    for i in range(400):
        queue, kind = rng.randrange(3), rng.randrange(KINDS)
        wait = rng.choice([math.nan, 5.0, 12.5, 31.0, 70.0])
        attrs = pack(rng.randrange(4), rng.randrange(3), rng.randrange(3))
        events.append((float(i), queue, kind, wait, rng.choice([0.0, 180.5]), attrs))
        log.append(float(i), queue, kind, wait, events[-1][4], attrs)
    log.flush()
    # a target per queue and priority, each row its own (a swapped index reads another)
    thresholds = np.array(
        [[10.0, 20.0, 30.0, 40.0], [40.0, 30.0, 20.0, 10.0], [5.0, 12.5, 31.0, 70.0]]
    )
    p = Params(thresholds, np.array([6.0, 13.0, 100.0]), np.array([30.0, 60.0, 5.0]))
    keys = [(None, 1), ("prio", 4), ("chan", 3), ("site", 3)]
    got = log.totals_by(0, len(events), 3, p, keys)
    for (key, groups), t in zip(keys, got, strict=True):
        counts = np.zeros((3 * groups, KINDS), np.int64)
        within = np.zeros(3 * groups, np.int64)
        waits, handles, exposure = np.zeros(3 * groups), np.zeros(3 * groups), np.zeros(3)
        for _ts, queue, kind, wait, handle, attrs in events:
            prio, chan, site = unpack(attrs)
            row = queue * groups + {None: 0, "prio": prio, "chan": chan, "site": site}[key]
            counts[row, kind] += 1
            known = not math.isnan(wait)
            if kind == ANSWERED and known:
                within[row] += wait <= thresholds[queue, prio]
                waits[row] += wait
            if kind == ENDED:
                handles[row] += handle
            if kind in (ANSWERED, ABANDONED, CALLBACK, OVERFLOWED) and known:
                exposure[queue] += wait
        assert np.array_equal(t.counts, counts), key
        assert np.array_equal(t.within_target, within), key
        assert t.wait_sum.tolist() == waits.tolist(), key  # sums of halves: exact
        assert t.handle_sum.tolist() == handles.tolist(), key
        assert (
            t.exposure_sum.tolist() == (exposure if key is None else np.zeros(3 * groups)).tolist()
        )
    assert got[1].counts.sum() == got[2].counts.sum() == got[3].counts.sum() == 400
    # without exposure: the same sums, and no exposure (where no patience is estimated)
    bare = log.totals(0, len(events), 3, p, exposure=False)
    assert bare.exposure_sum.tolist() == [0.0, 0.0, 0.0] != got[0].exposure_sum.tolist()
    assert np.array_equal(bare.counts, got[0].counts)
    assert bare.within_target.tolist() == got[0].within_target.tolist()
    assert bare.wait_sum.tolist() == got[0].wait_sum.tolist()
