"""The figures a tick builds by the thousand are `record`s: equal, unequal and hashed by
value as the frozen dataclasses they replaced, and written as the contract names them."""

from __future__ import annotations

from dataclasses import replace

from shared.core.engine import Engine
from shared.core.figures import WINDOW_FIELDS, AgentCounts, Breakdown, window_of
from shared.events import CallQueued
from tests.conftest import T0

# arrivals 6, answered 4, abandoned 1 (none short), callbacks 1, overflowed 0, ended 3;
# 3 answered within target, 4 waits known summing 48 s, handle times summing 540 s
INTS = [6, 4, 1, 1, 0, 3, 0, 0, 3, 0, 4, 0]
FLOATS = [48.0, 540.0]


def test_records_are_equal_and_hashed_by_value() -> None:
    a = window_of(INTS, FLOATS, 1, miss=True)
    b = window_of(list(INTS), list(FLOATS), 1, miss=True)
    assert a is not b
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b, replace(a, arrivals=7)}) == 2
    assert Breakdown(a, waiting=2) == Breakdown(b, waiting=2) != Breakdown(b, waiting=3)


def test_a_window_of_hand_counted_sums() -> None:
    w = window_of(INTS, FLOATS, 1, miss=True)
    # offered: answered 4 + abandoned 1 + flow-outs 1 (sl_flowouts "miss") = 6
    assert (w.offered, w.flowouts, w.answer_rate, w.answer_rate_live) == (6, 1, 0.5, 3 / 7)
    assert (w.abandon_rate, w.asa_s, w.aht_s) == (1 / 6, 12.0, 180.0)


def test_agent_counts_are_written_as_the_contract_names_them() -> None:
    counts = AgentCounts(available=1, busy=2, wrap_up=3, not_ready=4, staffed=10)
    assert counts.as_json() == {
        "available": 1, "busy": 2, "wrap_up": 3, "not_ready": 4, "staffed": 10
    }  # fmt: skip


def test_a_window_is_written_with_the_contract_fields_in_order() -> None:
    w = window_of(INTS, FLOATS, 1, miss=True)
    assert list(w.as_json().items()) == [(name, getattr(w, name)) for name in WINDOW_FIELDS]


def test_queue_stats_hold_the_ticks_arrays_out_of_their_repr_and_equality() -> None:
    """Each queue's figures carry the whole tick's arrays: a repr (a log line, a failed
    assertion) shows the queue's own figures only, and equality ignores them."""
    engine = Engine()
    engine.add(CallQueued(event_id="e1", type="call.queued", ts=T0, call_id="c1", queue_id="q1"))
    stats = engine.compute(T0.timestamp() + 1.0)["q1"]
    assert stats.arrays is not None and stats.arrays.arrivals[300].tolist() == [1]
    assert "arrays" not in repr(stats) and "queue_id='q1'" in repr(stats)
    assert stats == replace(stats, arrays=None)
