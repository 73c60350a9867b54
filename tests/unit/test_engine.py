"""The metric engine against hand-worked traces (contract 4)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from services.monitor.replay import replay
from shared.core.engine import Engine
from shared.core.figures import AgentCounts, QueueStats, WindowMetrics
from shared.core.monitor import Monitor
from shared.events import AgentEvent, CallEvent, parse_event
from shared.messages.snapshots import AgentCounts as SnapshotAgents
from shared.messages.snapshots import Snapshot
from shared.queue_settings import QueueSettings
from tests.conftest import T0, iso

NOW = T0.timestamp()
_n = 0


def ev(kind: str, at: float, **fields: object) -> CallEvent | AgentEvent:
    """An event `at` seconds relative to NOW (20:00:00Z), with a fresh event_id."""
    global _n
    _n += 1
    return parse_event({"event_id": f"h{_n}", "type": kind, "ts": iso(at), **fields})


def call(
    kind: str, at: float, cid: str, queue: str = "q", **fields: object
) -> CallEvent | AgentEvent:
    return ev(f"call.{kind}", at, call_id=cid, queue_id=queue, **fields)


def hand_trace() -> list[CallEvent | AgentEvent]:
    answered_c2 = call("answered", -150, "c2", agent_id="a1", wait_s=50)
    return [
        call("queued", -400, "c1"),
        call("answered", -380, "c1", agent_id="a1"),  # derived wait 20: within target
        call("queued", -200, "c2"),
        answered_c2,
        answered_c2,  # delivered twice, counted once
        call("queued", -100, "c3"),
        call("abandoned", -97, "c3"),  # derived wait 3: a short abandon
        call("queued", -90, "c4"),
        call("abandoned", -30, "c4"),  # wait 60: abandoned
        call("answered", -20, "c5", agent_id="a2"),  # no call.queued: unknown wait
        call("queued", -60, "c6"),  # still waiting, over target
        call("queued", -10, "c7"),  # still waiting
        call("queued", -50, "c8"),
        call("callback_requested", -40, "c8"),
        call("queued", -45, "c9"),
        call("overflowed", -35, "c9", to_queue_id="q2"),
        call("queued", -300, "c10"),  # exactly at now - 300: outside the 300 s window
        call("answered", -299, "c10", agent_id="a1", wait_s=1),
        call("queued", 0, "c11"),  # exactly at now: inside, waiting 0 s
        call("answered", -5, "c12", agent_id="a2"),  # arrives before its call.queued
        call("queued", -25, "c12"),  # so its wait (20 s) is derived late
        call("ended", -100, "e1", agent_id="a1", talk_s=100, hold_s=10, wrap_s=20),
        call("ended", -1000, "e2", agent_id="a1", talk_s=200),
        ev(
            "agent.skills",
            -3000,
            agent_id="a1",
            skills=[{"queue_id": "q", "level": 5}, {"queue_id": "q2", "level": 3}],
        ),
        ev("agent.skills", -3000, agent_id="a2", skills=[{"queue_id": "q", "level": 5}]),
        ev("agent.skills", -3000, agent_id="a3", skills=[{"queue_id": "q", "level": 5}]),
        ev(
            "agent.skills",
            -3000,
            agent_id="a4",
            skills=[{"queue_id": "q2", "level": 5}],
            serving=["q"],
        ),
        ev(
            "agent.skills",
            -3000,
            agent_id="a5",
            skills=[{"queue_id": "q", "level": 5}],
            serving=["q2"],
        ),
        ev("agent.state", -10, agent_id="a1", state="available"),
        ev("agent.state", -50, agent_id="a1", state="busy"),  # older, arrives later: ignored
        ev("agent.state", -10, agent_id="a2", state="busy"),
        ev("agent.state", -10, agent_id="a3", state="offline"),
        ev("agent.state", -10, agent_id="a4", state="not_ready", reason="standby"),
        ev("agent.state", -10, agent_id="a5", state="wrap_up"),
    ]


@pytest.fixture(scope="module")
def stats() -> dict[str, QueueStats]:
    engine = Engine()
    engine.add_many(hand_trace())
    return engine.compute(NOW)


WINDOWS = {
    # window: arrivals, answered, within, short, abandoned, callbacks, overflowed, offered,
    #         answer_rate, answer_rate_live, abandon_rate, asa_s, aht_s
    # offered = answered + abandoned + the callback c8 and the overflow c9 (sl_flowouts miss)
    300: (9, 4, 2, 1, 1, 1, 1, 7, 2 / 7, 2 / 8, 1 / 7, (50 + 1 + 20) / 3, 130.0),
    900: (11, 5, 3, 1, 1, 1, 1, 8, 3 / 8, 3 / 9, 1 / 8, (20 + 50 + 1 + 20) / 4, 130.0),
    3600: (11, 5, 3, 1, 1, 1, 1, 8, 3 / 8, 3 / 9, 1 / 8, (20 + 50 + 1 + 20) / 4, (130 + 200) / 2),
}


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_window_metrics_by_hand(stats: dict[str, QueueStats], window: int) -> None:
    m = stats["q"].windows[window]
    got = (
        m.arrivals, m.answered, m.answered_within_target, m.short_abandoned, m.abandoned,
        m.callbacks, m.overflowed, m.offered, m.answer_rate, m.answer_rate_live,
        m.abandon_rate, m.asa_s, m.aht_s,
    )  # fmt: skip
    assert got[:8] == WINDOWS[window][:8]
    assert got[8:] == pytest.approx(WINDOWS[window][8:], rel=1e-12)


def test_point_in_time_numbers_by_hand(stats: dict[str, QueueStats]) -> None:
    q = stats["q"]
    assert (q.waiting, q.waiting_over_target) == (3, 1)
    assert q.longest_wait_s == pytest.approx(60.0)
    assert q.agents.as_json() == {
        "available": 1,
        "busy": 1,
        "wrap_up": 0,
        "not_ready": 1,
        "staffed": 3,
    }
    assert stats["q2"].agents.as_json() == {
        "available": 1, "busy": 0, "wrap_up": 1, "not_ready": 0, "staffed": 2,
    }  # fmt: skip
    assert q.surge_arrivals == 9  # the surge window is 300 s by default


def test_an_empty_queue_has_null_rates() -> None:
    exclude = QueueSettings(sl_flowouts="exclude")
    for settings, want in [
        (exclude, (0, None, None, None, None, None)),
        (QueueSettings(), (1, 0.0, 0.0, 0.0, None, None)),  # the overflow is a miss
    ]:
        engine = Engine(lambda _q, s=settings: s)  # type: ignore[misc]
        engine.add(call("overflowed", -10, "x", queue="quiet", to_queue_id="q"))
        m = engine.compute(NOW)["quiet"].windows[300]
        got = (m.offered, m.answer_rate, m.answer_rate_live, m.abandon_rate, m.asa_s, m.aht_s)
        assert got == want


def test_answered_call_stops_waiting_and_later_tick_moves_windows() -> None:
    engine = Engine()
    engine.add_many([call("queued", -40, "a"), call("queued", -20, "b")])
    first = engine.compute(NOW)["q"]
    assert (first.waiting, first.waiting_over_target, first.longest_wait_s) == (2, 1, 40.0)
    engine.add(call("answered", 5, "a", agent_id="x"))
    later = engine.compute(NOW + 10)["q"]
    assert (later.waiting, later.waiting_over_target, later.longest_wait_s) == (1, 0, 30.0)
    assert later.windows[300].answered == 1
    assert later.windows[300].asa_s == 45.0
    assert engine.compute(NOW + 300)["q"].windows[300].arrivals == 0  # both left the window


def test_events_older_than_retention_are_skipped_after_a_tick() -> None:
    engine = Engine(grace_s=60)
    engine.compute(NOW)
    retention = 3600 + 900 + 60  # the baseline hour before the longest surge window, + grace
    assert not engine.add(call("queued", -retention, "old"))
    assert engine.add(call("queued", -retention + 1, "kept"))
    assert engine.skipped_old == 1


def test_pruning_keeps_every_number_the_same() -> None:
    pruned, full = Engine(grace_s=0), Engine(grace_s=10**6)
    for engine in (pruned, full):
        engine.add_many(hand_trace())
        engine.add(call("queued", -5000, "ancient"))
    pruned.compute(NOW)
    pruned.prune(NOW)
    assert len(pruned.log) < len(full.log)
    a, b = pruned.compute(NOW)["q"], full.compute(NOW)["q"]

    # the lost call counts as waiting over target only where it is still remembered
    def same(m: WindowMetrics) -> WindowMetrics:
        return replace(m, answer_rate_live=None, over_target=0)

    assert {w: same(m) for w, m in a.windows.items()} == {w: same(m) for w, m in b.windows.items()}
    assert (a.waiting, a.longest_wait_s) == (3, 60.0)  # the lost call is forgotten
    assert (b.waiting, b.longest_wait_s) == (4, 5000.0)


def v2_trace() -> list[CallEvent | AgentEvent]:
    """Five calls: a P0 chat call from site north answered at 20 s, a callback kept at
    50 s, an overflow, an abandon at 30 s and a callback still owed after 30 s."""
    return [
        call("queued", -100, "c1", priority=0, channel="chat", site="north"),
        call("answered", -80, "c1", agent_id="a1"),  # wait 20
        call("queued", -90, "c2"),
        call("callback_requested", -60, "c2"),
        call("callback_completed", -10, "c2", outcome="connected"),  # 50 s after the request
        call("queued", -70, "c3"),
        call("overflowed", -40, "c3", to_queue_id="q2"),
        call("queued", -50, "c4"),
        call("abandoned", -20, "c4"),  # wait 30: not a short abandon
        call("queued", -45, "c5"),
        call("callback_requested", -30, "c5"),  # owed for 30 s
    ]


V2 = [
    # sl_flowouts, priority targets: offered, within, answer_rate, abandon_rate,
    #   by_priority "0" (offered, within), by_priority "2" (offered, within)
    ("miss", {}, 5, 1, 1 / 5, 1 / 5, (1, 1), (4, 0)),  # callback, overflow: misses
    ("exclude", {}, 2, 1, 1 / 2, 1 / 2, (1, 1), (1, 0)),  # they leave the denominator
    ("miss", {"0": 15}, 5, 0, 0.0, 1 / 5, (1, 0), (4, 0)),  # P0 at 20 s: a miss at 15 s
    ("exclude", {"0": 15}, 2, 0, 0.0, 1 / 2, (1, 0), (1, 0)),
]


@pytest.mark.parametrize(
    ("flowouts", "targets", "offered", "within", "rate", "abandon", "p0", "p2"), V2
)
def test_flowouts_and_priority_targets_by_hand(
    flowouts: str,
    targets: dict[str, float],
    offered: int,
    within: int,
    rate: float,
    abandon: float,
    p0: tuple[int, int],
    p2: tuple[int, int],
) -> None:
    settings = QueueSettings(sl_flowouts=flowouts, priority_sl_threshold_s=targets)  # type: ignore[arg-type]
    engine = Engine(lambda _q: settings)
    engine.add_many(v2_trace())
    q = engine.compute(NOW)["q"]
    m = q.windows[300]
    assert (m.arrivals, m.answered, m.abandoned, m.callbacks, m.overflowed, m.flowouts) == (
        5, 1, 1, 2, 1, 3,
    )  # fmt: skip
    assert (m.offered, m.answered_within_target) == (offered, within)
    assert m.answer_rate == pytest.approx(rate)
    assert m.abandon_rate == pytest.approx(abandon)
    assert (m.callbacks_completed, m.callback_rate) == (1, 1.0)  # kept at 50 s <= 1800 s
    assert (q.callbacks_pending, q.oldest_callback_s, q.callbacks_expired) == (1, 30.0, 0)
    got = {k: (b.window.offered, b.window.answered_within_target) for k, b in q.by_priority.items()}
    assert got == {"0": p0, "2": p2}
    assert q.by_priority["2"].callbacks_pending == 1
    assert sorted(q.by_site) == ["north", "unknown"]
    assert sorted(q.by_channel) == ["chat", "voice"]
    assert (q.by_channel["chat"].window.arrivals, q.by_channel["voice"].window.arrivals) == (1, 4)


def test_callback_target_and_expiry_by_hand() -> None:
    settings = QueueSettings(callback_target_s=40, callback_expiry_s=20)
    engine = Engine(lambda _q: settings)
    engine.add_many(v2_trace())
    q = engine.compute(NOW)["q"]
    assert (q.windows[300].callbacks_completed, q.windows[300].callback_rate) == (1, 0.0)  # 50 > 40
    assert (q.callbacks_pending, q.oldest_callback_s, q.callbacks_expired) == (0, 0.0, 1)


def test_a_callback_owed_for_hours_outlives_the_event_log() -> None:
    """Events are kept about 80 minutes; a callback is owed until `callback_expiry_s`."""
    engine = Engine(grace_s=0)
    engine.add_many(
        [
            call("queued", -7300, "old", priority=1, site="north"),
            call("callback_requested", -7200, "old"),  # two hours ago, never completed
        ]
    )
    engine.compute(NOW)
    engine.prune(NOW)
    assert len(engine.log) == 0  # both events are gone from the log
    q = engine.compute(NOW)["q"]
    assert (q.callbacks_pending, q.oldest_callback_s, q.callbacks_expired) == (1, 7200.0, 0)
    # still by its call's priority and site, though its call.queued was forgotten
    assert (q.by_priority["1"].callbacks_pending, q.by_site["north"].callbacks_pending) == (1, 1)
    assert sorted(q.by_priority) == ["1"]
    engine.add(call("callback_completed", -60, "old", outcome="no_answer"))  # 7140 s on
    done = engine.compute(NOW)["q"]
    assert (done.callbacks_pending, done.windows[300].callback_rate) == (0, 0.0)
    assert done.windows[300].callbacks_completed == 0  # no_answer is not a kept callback
    assert sorted(done.by_priority) == ["1"]  # the completion is counted as its call's
    assert done.by_priority["1"].window.callback_rate == 0.0


def test_centre_sums_queues_and_counts_an_agent_once() -> None:
    engine = Engine()
    engine.add_many(v2_trace())
    engine.add_many(
        [
            call("queued", -30, "d1", queue="q2", site="north"),
            call("answered", -25, "d1", queue="q2", agent_id="a1"),  # wait 5
            ev("agent.skills", -3000, agent_id="a1", site="north",
               skills=[{"queue_id": "q", "level": 5}, {"queue_id": "q2", "level": 5}]),
            ev("agent.state", -10, agent_id="a1", state="busy"),
        ]
    )  # fmt: skip
    stats = engine.compute(NOW)
    assert stats["q"].agents.staffed == stats["q2"].agents.staffed == 1
    c = engine.centre(stats)
    m = c.windows[300]
    # q: offered 5, within 1; q2: offered 1, within 1 (miss: q's flow-outs count)
    assert (c.queues, m.arrivals, m.offered, m.answered_within_target) == (2, 6, 6, 2)
    assert m.answer_rate == pytest.approx(2 / 6)
    assert m.asa_s == pytest.approx((20 + 5) / 2)
    assert (c.totals.agents, c.totals.callbacks_pending) == (AgentCounts(busy=1, staffed=1), 1)
    north = c.by_site["north"]
    assert (north.window.arrivals, north.window.offered, north.agents) == (
        2, 2, AgentCounts(busy=1, staffed=1),
    )  # fmt: skip
    assert c.by_site["unknown"].agents == AgentCounts()


EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "contract-v2"


def same(got: object, want: object, where: tuple[str, ...]) -> int:
    """Compare every value `want` gives (counts exactly, other numbers within 1e-6);
    returns how many values were compared."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        return sum(same(got.get(k), v, (*where, k)) for k, v in want.items())
    if want is None or isinstance(want, int):
        assert got == want, where
    else:
        assert isinstance(want, float), where
        assert got == pytest.approx(want, abs=1e-6), where
    return 1


def test_worked_example_of_the_contract() -> None:
    """`floorwatch replay trace-42.jsonl` gives every number of expected-42.json."""
    with (EXAMPLES / "trace-42.jsonl").open("rb") as f:
        body, bad = replay(f, T0.timestamp())
    expected = json.loads((EXAMPLES / "expected-42.json").read_text())
    assert bad == []
    queues = {q["queue_id"]: q for q in body["queues"]}  # type: ignore[attr-defined]
    assert sorted(queues) == sorted(expected) == ["billing", "sales", "support"]
    compared = 0
    for queue_id, want in expected.items():
        got = queues[queue_id]
        for name in ("by_site", "by_priority", "by_channel"):
            assert sorted(got[name]) == sorted(want[name]), (queue_id, name)  # keys left out
        compared += same(got, want, (queue_id,))
    assert compared == 603  # every number the file gives


def test_snapshots_are_the_typed_model_and_decode() -> None:
    """The JSON a tick hands out is its `Snapshot` models' own, and a reader decodes it."""
    monitor = Monitor()
    for line in (EXAMPLES / "trace-42.jsonl").read_bytes().splitlines():
        monitor.engine.add(parse_event(orjson.loads(line)))
    monitor.engine.add_many(v2_trace())  # queue q: a chat call, a P0 call, a site
    out = monitor.tick(NOW)
    assert [s["queue_id"] for s in out.snapshots] == ["billing", "q", "sales", "support"]
    assert out.snapshots == [m.model_dump(mode="json") for m in out.models]
    for body, model in zip(out.snapshots, out.models, strict=True):
        assert Snapshot.model_validate_json(orjson.dumps(body)) == model
    q = out.models[1]
    assert (q.as_of, q.callbacks_pending, sorted(q.by_channel)) == (NOW, 1, ["chat", "voice"])
    assert q.by_site["north"].agents == SnapshotAgents()  # no agent at north serves q


def test_a_monitor_reports_only_the_queues_it_owns() -> None:
    monitor = Monitor()
    monitor.engine.add_many(hand_trace())
    out = monitor.tick(NOW, owns=lambda q: q == "q2")
    assert [s["queue_id"] for s in out.snapshots] == ["q2"]
    assert sorted(monitor.tick(NOW + 1).stats) == ["q", "q2"]


def capped_trace() -> list[CallEvent | AgentEvent]:
    return [
        call("queued", -4000, "c1"),  # 1
        call("answered", -3990, "c1", agent_id="a1"),  # 2
        call("queued", -3000, "c2"),  # 3
        call("abandoned", -2990, "c2"),  # 4
        call("queued", -200, "c3"),  # 5
        call("answered", -180, "c3", agent_id="a1"),  # 6: wait 20
    ]


# max_events: events forgotten, the cut, events held, per window (arrivals, answered,
# abandoned), baseline_arrivals of the 300 s surge window (the span (-3900, -300])
CAPS = [
    (None, 0, -math.inf, 6, {300: (1, 1, 0), 900: (1, 1, 0), 3600: (2, 1, 1)}, 1),
    (6, 0, -math.inf, 6, {300: (1, 1, 0), 900: (1, 1, 0), 3600: (2, 1, 1)}, 1),
    # events 1 and 2 go: every window and the baseline span start after the cut
    (4, 2, -3990.0, 4, {300: (1, 1, 0), 900: (1, 1, 0), 3600: (2, 1, 1)}, 1),
    (5, 1, -4000.0, 5, {300: (1, 1, 0), 900: (1, 1, 0), 3600: (2, 1, 1)}, 1),
    # event 3 goes too: the hour loses c2's arrival, the baseline span reaches past the cut
    (3, 3, -3000.0, 3, {300: (1, 1, 0), 900: (1, 1, 0), 3600: (1, 1, 1)}, None),
    (2, 4, -2990.0, 2, {300: (1, 1, 0), 900: (1, 1, 0), 3600: (1, 1, 0)}, None),
]


@pytest.mark.parametrize(("cap", "dropped", "cut", "held", "windows", "baseline"), CAPS)
def test_the_event_cap_forgets_the_oldest_first(
    cap: int | None,
    dropped: int,
    cut: float,
    held: int,
    windows: dict[int, tuple[int, int, int]],
    baseline: int | None,
) -> None:
    engine = Engine(max_events=cap)
    engine.add_many(capped_trace())
    engine.compute(NOW)
    assert engine.prune(NOW) == dropped
    assert (engine.capped_events, engine.floor - NOW, len(engine.log)) == (dropped, cut, held)
    q = engine.compute(NOW)["q"]
    got = {w: (m.arrivals, m.answered, m.abandoned) for w, m in q.windows.items()}
    assert (got, q.baseline_arrivals) == (windows, baseline)
    assert q.windows[300].asa_s == 20.0


def test_figures_within_what_the_cap_keeps_are_unchanged() -> None:
    capped, full = Engine(max_events=9), Engine()
    trace = hand_trace()
    for engine in (capped, full):
        engine.add_many(trace)
        engine.add_many(capped_trace())
        engine.compute(NOW)
        engine.prune(NOW)
    assert (capped.capped_events, len(capped.log), len(full.log)) == (
        22 + 6 - 9, 9, 22 + 6,
    )  # fmt: skip
    a, b = capped.compute(NOW)["q"], full.compute(NOW)["q"]
    # the hand trace's 22 call events and c3's two lead: the nine latest, from c11's
    # call.queued at 0 back to c9's at -45, are held; the cut falls on c8's at -50
    assert capped.floor == NOW - 50
    kept = [e for e in [*trace, *capped_trace()] if e.ts.timestamp() > NOW - 50]
    fresh = Engine()
    fresh.add_many(kept)
    assert a.windows == fresh.compute(NOW)["q"].windows
    assert a.windows != b.windows


def test_after_the_cap_an_event_at_or_before_the_cut_is_skipped() -> None:
    engine = Engine(max_events=4)
    trace = capped_trace()
    engine.add_many(trace)
    engine.compute(NOW)
    engine.prune(NOW)
    assert not engine.add(trace[0])  # a re-delivery of a forgotten event: not counted twice
    assert not engine.add(call("queued", -3990, "late"))  # at the cut
    assert engine.add(call("queued", -3989, "later"))  # after it
    assert engine.skipped_old == 2


def test_the_cap_logs_a_line_when_it_bites(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(max_events=4)
    engine.add_many(capped_trace())
    engine.compute(NOW)
    with caplog.at_level("WARNING", logger="shared.core.engine"):
        engine.prune(NOW)
        engine.prune(NOW + 1)  # nothing more to forget: no second line
    assert [r.getMessage() for r in caplog.records] == [
        "event cap reached: forgot 2 events at or before 3990 s ago (2 in all); "
        "windows reaching further back count only what is held"
    ]


def test_the_cap_forgets_down_to_nine_tenths_of_itself() -> None:
    engine = Engine(max_events=20)
    engine.add_many([call("queued", -1000 + n, f"c{n}") for n in range(21)])
    engine.compute(NOW)
    assert engine.prune(NOW) == 3  # 21 held, over 20: down to 18
    assert (len(engine.log), engine.floor - NOW) == (18, -998.0)
    engine.add_many([call("queued", -500 + n, f"d{n}") for n in range(2)])
    engine.compute(NOW)
    assert (engine.prune(NOW), len(engine.log)) == (0, 20)  # at the cap: nothing forgotten
