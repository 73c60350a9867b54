"""A tick builds again only what changed: an engine ticked many times, with events and
settings changing between ticks, gives at every tick exactly the numbers of an engine
that sees the same events for the first time at that tick."""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.engine import Engine
from shared.core.figures import QueueStats
from shared.core.monitor import Monitor
from shared.events import parse_event
from shared.queue_settings import QueueSettings
from tests.conftest import iso
from tests.unit.test_engine_property import NOW, QUEUES, agents, calls, events_of, queue_settings

FIELDS = [f for f in QueueStats.__slots__ if f not in ("breakdowns", "settings", "arrays")]


def assert_same(got: dict[str, QueueStats], want: dict[str, QueueStats], now: float) -> None:
    assert list(got) == list(want), now
    for queue, w in want.items():
        g = got[queue]
        for name in FIELDS:
            assert getattr(g, name) == getattr(w, name), (now, queue, name)
        for name in ("by_priority", "by_channel", "by_site"):
            assert getattr(g, name) == getattr(w, name), (now, queue, name)
        assert arrays_row(g) == arrays_row(w) == figures_row(w), (now, queue)


def arrays_row(st: QueueStats) -> tuple[object, ...]:
    """A queue's row of its tick's arrays (`TickArrays`), as `figures_row` reads it."""
    a, i, s = st.arrays, st.index, st.settings
    assert a is not None
    windows = sorted({*s.surge_windows_s, s.surge_window_s})
    counts = {w: (int(a.arrivals[w][i]), int(a.before[w][i])) for w in windows}
    return counts, repr(float(a.live_rate[i])), int(a.offered[i]), int(a.over[i])


def figures_row(st: QueueStats) -> tuple[object, ...]:
    """The same values from the queue's own figures: the arrays hold nothing else."""
    s = st.settings
    counts = {w: (n, -1 if h is None else h) for w, (n, h) in st.surge_counts.items()}
    hour = -1 if st.baseline_arrivals is None else st.baseline_arrivals
    assert counts.setdefault(s.surge_window_s, (st.surge_arrivals, hour)) == (
        st.surge_arrivals,
        hour,
    )
    primary = st.windows[s.primary_window_s]
    rate = primary.answer_rate_live
    live = repr(math.nan if rate is None else rate)
    return dict(sorted(counts.items())), live, primary.offered, st.waiting_over_target


def ts_of(event: dict[str, Any]) -> float:
    return parse_event(event).ts.timestamp()


@settings(max_examples=120, deadline=None)
@given(
    trace=st.lists(calls, min_size=1, max_size=60),
    staff=st.lists(agents, max_size=4),
    conf=st.fixed_dictionaries(dict.fromkeys(QUEUES, queue_settings)),
    later=queue_settings,
    gaps=st.lists(st.sampled_from([0.001, 2.0, 5.0, 17.5, 30.0, 301.0]), min_size=2, max_size=8),
    seed=st.integers(0, 2**32),
)
def test_ticked_engine_equals_a_fresh_one_at_every_tick(
    trace: list[Any],
    staff: list[Any],
    conf: dict[str, QueueSettings],
    later: QueueSettings,
    gaps: list[float],
    seed: int,
) -> None:
    rng = random.Random(seed)
    events = sorted(events_of(trace, staff), key=ts_of)
    late = [e for e in events if rng.random() < 0.2]  # delivered a tick or more late
    on_time = [e for e in events if e not in late]
    start = NOW - sum(gaps)
    ticked = Engine(conf.__getitem__)
    delivered: list[dict[str, Any]] = []
    now = start
    for n, gap in enumerate(gaps):
        now += gap
        due = [e for e in on_time if ts_of(e) <= now]
        on_time = on_time[len(due) :]
        if n % 2:
            due += late[: len(late) // 2 + 1]
            late = late[len(late) // 2 + 1 :]
        if n == len(gaps) // 2:
            conf["a"] = later  # a queue's settings change between two ticks
        for e in due:
            ticked.add(parse_event(e))
        delivered += due
        fresh = Engine(conf.__getitem__)
        for e in delivered:
            fresh.add(parse_event(e))
        assert_same(ticked.compute(now), fresh.compute(now), now)
        ticked.prune(now)


def test_waiting_calls_cross_their_target_with_no_event() -> None:
    """Between two ticks with no event, a waiting call passes its target and a callback
    owed expires: the counts change though no sum did."""
    conf = QueueSettings(sl_threshold_s=20, callback_expiry_s=60)
    engine = Engine(lambda _q: conf)
    for n, (kind, at, call) in enumerate(
        [("call.queued", -10, "w"), ("call.queued", -100, "c"),
         ("call.callback_requested", -30, "c")]
    ):  # fmt: skip
        engine.add(parse_event({"type": kind, "ts": iso(at), "call_id": call,
                                "queue_id": "q", "event_id": f"e{n}"}))  # fmt: skip
    before = engine.compute(NOW)["q"]
    assert (before.waiting, before.waiting_over_target) == (1, 0)
    assert (before.callbacks_pending, before.callbacks_expired) == (1, 0)
    assert before.windows[300].over_target == 0
    after = engine.compute(NOW + 31)["q"]
    assert (after.waiting, after.waiting_over_target) == (1, 1)
    assert (after.callbacks_pending, after.callbacks_expired) == (0, 1)
    assert after.longest_wait_s == 41.0
    assert after.windows[300].over_target == 1  # answer_rate_live counts it as a miss


@settings(max_examples=40, deadline=None)
@given(
    trace=st.lists(calls, min_size=1, max_size=40),
    staff=st.lists(agents, max_size=4),
    gaps=st.lists(st.sampled_from([0.001, 2.0, 17.5, 301.0]), min_size=2, max_size=6),
)
def test_monitor_snapshots_equal_their_figures_at_every_tick(
    trace: list[Any], staff: list[Any], gaps: list[float]
) -> None:
    """Snapshots reuse the JSON of figures handed out again: each still equals a fresh
    conversion of that tick's figures."""
    events = sorted(events_of(trace, staff), key=ts_of)
    monitor = Monitor()
    now = NOW - sum(gaps)
    for gap in gaps:
        now += gap
        due = [e for e in events if ts_of(e) <= now]
        events = events[len(due) :]
        for e in due:
            monitor.add(parse_event(e))
        out = monitor.tick(now)
        for snap in out.snapshots:
            stats = out.stats[str(snap["queue_id"])]
            assert snap["windows"] == {str(w): m.as_json() for w, m in stats.windows.items()}
            assert snap["agents"] == stats.agents.as_json()
            for name in ("by_priority", "by_channel", "by_site"):
                fresh = {k: b.as_json() for k, b in getattr(stats, name).items()}
                assert snap[name] == fresh, (now, name)
        assert len(out.models) == len(out.snapshots)  # every snapshot still validates
