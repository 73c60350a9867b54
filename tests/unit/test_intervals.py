"""15-minute intervals and "today" (contract 4) against a hand-worked trace.

The trace, queue `billing`, default settings (target 30 s, short abandon 5 s, flow-outs
count as misses), times from 10:00:00Z on 2026-11-11:

| call | queued (site)   | then                                  | interval of each event |
|------|-----------------|---------------------------------------|------------------------|
| c1   | 01:00 north     | answered 01:20 (20 s), ended 05:00, 240 s handled | A A A |
| c2   | 02:00 north     | answered 03:00 (60 s), ended 08:00, 260 s | A A A |
| c3   | 04:00 south     | abandoned 04:03 (3 s: short)          | A A |
| c4   | 05:00 south     | abandoned 06:40 (100 s)               | A A |
| c5   | 07:00 north     | callback requested 08:00 (60 s)       | A A |
| c6   | 14:50 north     | answered 15:20 (30 s), ended 25:00, 120 s | A B B |
| c7   | 15:00 north     | answered 15:10 (10 s)                 | A (ts = the end) B |
| c8   | 20:00 south     | overflowed 21:00 (60 s)               | B B |

A is (10:00, 10:15], B is (10:15, 10:30]: each event counts in the interval of its own
`ts`, as a window does, so c6 is an arrival of A and an answered call of B.

A: arrivals 7; answered c1 c2, within target c1; short abandon c3 (not offered);
abandoned c4; callback c5; offered 2 + 1 + 1 = 4; answer rate 1/4, abandon rate 1/4;
ASA (20 + 60) / 2 = 40; AHT (240 + 260) / 2 = 250; patience: waits of calls that left
(20 + 60 + 3 + 100 + 60 = 243) over abandons (2) = 121.5 s.
B: arrivals 1; answered c6 c7, both within; overflow c8; offered 3; answer rate 2/3;
abandon rate 0; ASA 20; AHT 120; nobody gave up: Erlang C. At 1/900 calls/s and 120 s,
load 2/15: one agent answers 1 - (2/15) e^(-(13/15)(30/120)) = 0.8927 < 0.9 within
30 s, two agents more: 2 agents required.

Agents (all serving billing): a1 north available from 09:59; a2 south busy from 10:00,
offline 10:06, available 10:22; a3 north available 10:16. Ticks at 10:00, :05, :10, :15,
:20, :25, :30 see 2, 2, 1, 1, 2, 3, 3 staffed. A: 2*300 + 2*300 + 1*300 = 1500
agent-seconds over 900 s = 5/3 (north 900/900 = 1, south 600/900 = 2/3). B: 1*300 +
2*300 + 3*300 = 1800 over 900 s = 2 (north 300 + 2*600 = 1500/900, south 300/900).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.monitor.rebuild import recompute
from shared.core.erlang import agents_for_target
from shared.core.intervals import Intervals, local_midnight
from shared.core.monitor import Monitor
from shared.events import AgentEvent, CallEvent, parse_event
from shared.forecast import Forecast
from shared.messages.intervals import Interval
from shared.messages.snapshots import Snapshot
from shared.queue_settings import QueueSettings

BASE = datetime(2026, 11, 11, 10, 0, 0, tzinfo=UTC)
B0 = BASE.timestamp()
Event = CallEvent | AgentEvent
_n = 0


def at(mm_ss: str, base: datetime = BASE) -> str:
    minutes, seconds = (int(x) for x in mm_ss.split(":"))
    return (base + timedelta(minutes=minutes, seconds=seconds)).isoformat()


def call(kind: str, when: str, cid: str, queue: str = "billing", **fields: object) -> Event:
    global _n
    _n += 1
    raw = {"event_id": f"e{_n}", "type": f"call.{kind}", "ts": at(when), "call_id": cid}
    return parse_event({**raw, "queue_id": queue, **fields})


def agent(when: str, agent_id: str, state: str, site: str) -> list[Event]:
    global _n
    _n += 2
    common = {"ts": at(when), "agent_id": agent_id, "site": site}
    skills = {"event_id": f"s{_n}", "type": "agent.skills", **common}
    return [
        parse_event({**skills, "skills": [{"queue_id": "billing", "level": 5}]}),
        parse_event({"event_id": f"a{_n}", "type": "agent.state", "state": state, **common}),
    ]


def trace() -> list[Event]:
    return [
        *agent("-01:00", "a1", "available", "north"),
        *agent("00:00", "a2", "busy", "south"),
        call("queued", "01:00", "c1", site="north"),
        call("answered", "01:20", "c1", agent_id="a1"),
        call("ended", "05:00", "c1", agent_id="a1", talk_s=180, hold_s=20, wrap_s=40),
        call("queued", "02:00", "c2", site="north"),
        call("answered", "03:00", "c2", agent_id="a1"),
        call("ended", "08:00", "c2", agent_id="a1", talk_s=200, wrap_s=60),
        call("queued", "04:00", "c3", site="south"),
        call("abandoned", "04:03", "c3"),
        call("queued", "05:00", "c4", site="south"),
        call("abandoned", "06:40", "c4"),
        *agent("06:00", "a2", "offline", "south"),
        call("queued", "07:00", "c5", site="north"),
        call("callback_requested", "08:00", "c5"),
        call("queued", "14:50", "c6", site="north"),
        call("queued", "15:00", "c7", site="north"),
        call("answered", "15:10", "c7", agent_id="a1"),
        *agent("16:00", "a3", "available", "north"),
        call("answered", "15:20", "c6", agent_id="a1"),
        call("queued", "20:00", "c8", site="south"),
        call("overflowed", "21:00", "c8", to_queue_id="other"),
        *agent("22:00", "a2", "available", "south"),
        call("ended", "25:00", "c6", agent_id="a1", talk_s=100, wrap_s=20),
    ]


TICKS = ["00:00", "05:00", "10:00", "15:00", "20:00", "25:00", "30:00"]


def run(
    events: list[Event],
    ticks: list[str],
    settings: dict[str, QueueSettings] | None = None,
    forecasts: dict[str, Forecast] | None = None,
    base: datetime = BASE,
) -> tuple[Monitor, list[Interval], dict[str, object]]:
    """Feed the events up to each tick, tick; the intervals closed and the last snapshot."""
    monitor = Monitor(settings=settings or {}, forecasts=forecasts or {})
    monitor.intervals = Intervals(max_gap_s=3600)
    pending = sorted(events, key=lambda e: e.ts)
    closed: list[Interval] = []
    snapshot: dict[str, object] = {}
    for tick in ticks:
        now = datetime.fromisoformat(at(tick, base)).timestamp()
        while pending and pending[0].ts.timestamp() <= now:
            monitor.add(pending.pop(0))
        out = monitor.tick(now)
        closed.extend(out.intervals)
        snapshot = {str(s["queue_id"]): s for s in out.snapshots}.get("billing", snapshot)
    return monitor, closed, snapshot


FIGURES = (
    "arrivals", "forecast", "offered", "answered_within_target", "answer_rate",
    "abandon_rate", "aht_s", "asa_s", "agents_staffed_avg", "agents_required",
)  # fmt: skip
REQUIRED_A = agents_for_target(7 / 900, 250, 30, 0.9, patience_s=243 / 2)
REQUIRED_NORTH_A = agents_for_target(5 / 900, 250, 30, 0.9, patience_s=243 / 2)

# site, start, then FIGURES in order
EXPECTED = [
    (None, "10:00", 7, 6.0, 4, 1, 1 / 4, 1 / 4, 250.0, 40.0, 5 / 3, REQUIRED_A),
    ("north", "10:00", 5, None, 3, 1, 1 / 3, 0.0, 250.0, 40.0, 1.0, REQUIRED_NORTH_A),
    ("south", "10:00", 2, None, 1, 0, 0.0, 1.0, None, None, 2 / 3, None),
    (None, "10:15", 1, 4.0, 3, 2, 2 / 3, 0.0, 120.0, 20.0, 2.0, 2),
    ("north", "10:15", 0, None, 2, 2, 1.0, 0.0, 120.0, 20.0, 5 / 3, 0),
    ("south", "10:15", 1, None, 1, 0, 0.0, 0.0, None, None, 1 / 3, None),
]
FORECAST = Forecast(queue_id="billing", start=BASE, interval_s=900, arrivals=[6, 4])


def figures(record: Interval | dict[str, object]) -> tuple[object, ...]:
    values = record.public() if isinstance(record, Interval) else record
    return tuple(
        pytest.approx(values[k]) if isinstance(values[k], float) else values[k] for k in FIGURES
    )


def test_intervals_close_on_the_clock_per_queue_and_site() -> None:
    _, closed, _ = run(trace(), TICKS, forecasts={"billing": FORECAST})
    got = {(r.site, r.public()["start"]): r for r in closed}
    assert sorted(got, key=lambda k: (k[1], k[0] or "")) == [
        (site, f"2026-11-11T{start}:00.000Z") for site, start, *_ in EXPECTED
    ]
    for site, start, *values in EXPECTED:
        record = got[(site, f"2026-11-11T{start}:00.000Z")]
        assert figures(record) == tuple(values), (site, start)
        assert record.end - record.start == 900


def test_agents_required_for_b_is_erlang_c_worked_by_hand() -> None:
    # one agent: 1 - (2/15) * exp(-(13/15) * 30 / 120) = 0.8927 < 0.9; two reach it
    assert agents_for_target(1 / 900, 120, 30, 0.9) == 2


def test_an_interval_equals_the_window_that_ends_with_it() -> None:
    monitor, closed, _ = run(trace(), TICKS[:4])  # the last tick is 10:15, A's end
    [a] = [r for r in closed if r.site is None and r.start == B0]
    window = monitor.engine.compute(B0 + 900)["billing"].windows[900]
    assert (a.arrivals, a.offered, a.answered_within_target, a.answer_rate) == (
        window.arrivals, window.offered, window.answered_within_target, window.answer_rate,
    )  # fmt: skip
    assert (a.abandon_rate, a.asa_s, a.aht_s) == (window.abandon_rate, window.asa_s, window.aht_s)


def test_an_interval_with_nothing_in_it_is_closed_but_not_kept() -> None:
    # a1's first event at 09:59 opens the queue's log at 09:45: no call, no tick saw an
    # agent staffed before 10:00
    monitor, closed, _ = run(trace(), TICKS[:1])
    assert closed == []
    assert (
        monitor.intervals is not None and monitor.intervals.queues["billing"].closed_through == B0
    )


def test_today_sums_the_closed_intervals_and_the_open_part() -> None:
    # at 10:20: A, and of B so far c6 and c7 answered within target (c8 comes at 10:20)
    _, _, snap = run(trace(), TICKS[:5], forecasts={"billing": FORECAST})
    today = snap["today"]
    assert isinstance(today, dict)
    assert (today["start"], today["timezone"]) == ("2026-11-11T00:00:00.000Z", "UTC")
    typed = Snapshot.model_validate(snap).today  # the snapshot's own model reads it
    assert typed is not None and (typed.start, typed.arrivals) == (B0 - 36000, 8)
    # forecast: 6 for A, 4 * 5/15 of B; staffed (1500 + 1 * 300) / 1200 s seen; agents
    # required over the day's kept intervals (A): 7 calls in 900 s
    required = REQUIRED_A
    assert figures(today) == (
        8, pytest.approx(6 + 4 / 3), 6, 3, 3 / 6, 1 / 6, 250.0, 30.0, 1.5, required,
    )  # fmt: skip


def test_today_at_the_end_of_b() -> None:
    _, _, snap = run(trace(), TICKS)
    today = snap["today"]
    assert isinstance(today, dict)
    # 8 arrivals, offered 4 + 3, within 1 + 2, ASA (20 + 60 + 30 + 10) / 4, AHT 620 / 3,
    # staffed (1500 + 1800) / 1800 s seen; required over A and B: 8 calls in 1800 s
    required = agents_for_target(8 / 1800, 620 / 3, 30, 0.9, patience_s=243 / 2)
    assert figures(today) == (
        8, None, 7, 3, pytest.approx(3 / 7), pytest.approx(1 / 7),
        pytest.approx(620 / 3), 30.0, pytest.approx(3300 / 1800), required,
    )  # fmt: skip


def test_a_duplicate_counts_once_and_a_late_event_closes_its_interval_again() -> None:
    events = trace()
    monitor, closed, _ = run(events + [events[5]], TICKS[:4])  # c1's answer twice
    [a] = [r for r in closed if r.site is None and r.start == B0]
    assert (a.arrivals, a.offered, a.answered_within_target) == (7, 4, 1)
    late = call("queued", "12:00", "c9", site="north")  # arrives after A closed
    monitor.add(late)
    out = monitor.tick(B0 + 902)
    again = {r.site: r for r in out.intervals}
    assert sorted(again, key=str) == [None, "north", "south"]
    assert again[None].arrivals == 8 and again["north"].arrivals == 6
    assert again[None].start == B0 and again[None].agents_staffed_avg == pytest.approx(5 / 3)


def test_today_starts_at_local_midnight() -> None:
    # New York in November is UTC-5: local midnight is 05:00Z; a call at 04:50Z is
    # yesterday's, one at 05:10Z today's
    base = datetime(2026, 11, 11, 4, 45, tzinfo=UTC)
    settings = {"billing": QueueSettings(timezone="America/New_York")}
    events = [
        call("queued", "05:00", "y1"),  # 04:50Z, relative to 10:00Z shifted below
        call("answered", "05:10", "y1", agent_id="a1"),
        call("queued", "25:00", "t1"),
        call("answered", "25:20", "t1", agent_id="a1"),
    ]
    shifted = [
        e.model_copy(update={"ts": e.ts - (BASE - base)}) for e in events
    ]  # 04:50, 04:50:10, 05:10, 05:10:20 UTC
    _, closed, snap = run(shifted, ["00:00", "15:00", "30:00", "35:00"], settings, base=base)
    today = snap["today"]
    assert isinstance(today, dict)
    assert (today["start"], today["timezone"]) == ("2026-11-11T05:00:00.000Z", "America/New_York")
    assert (today["arrivals"], today["offered"], today["answered_within_target"]) == (1, 1, 1)
    starts = [r.public()["start"] for r in closed if r.site is None]
    assert starts == ["2026-11-11T04:45:00.000Z", "2026-11-11T05:00:00.000Z"]


@pytest.mark.parametrize(
    ("when", "zone", "midnight"),
    [
        ("2026-11-11T04:59:59+00:00", "America/New_York", "2026-11-10T05:00:00+00:00"),
        ("2026-11-11T05:00:00+00:00", "America/New_York", "2026-11-11T05:00:00+00:00"),
        ("2026-11-11T18:29:00+00:00", "Asia/Kolkata", "2026-11-10T18:30:00+00:00"),
        ("2026-03-29T12:00:00+00:00", "Europe/Paris", "2026-03-28T23:00:00+00:00"),
        ("2026-11-11T23:59:59+00:00", "UTC", "2026-11-11T00:00:00+00:00"),
    ],
)
def test_local_midnight(when: str, zone: str, midnight: str) -> None:
    now = datetime.fromisoformat(when).timestamp()
    assert local_midnight(now, zone) == datetime.fromisoformat(midnight).timestamp()


def test_a_rebuild_from_the_events_gives_the_same_intervals() -> None:
    # ticks every 300 s of event time: 09:55, 10:00, ... as the live ticks above
    rebuilt = recompute(trace(), B0, B0 + 1800, tick_s=300, forecasts={"billing": FORECAST})
    got = {(r.site, r.public()["start"]): figures(r) for r in rebuilt}
    assert got == {
        (site, f"2026-11-11T{start}:00.000Z"): tuple(values) for site, start, *values in EXPECTED
    }


def test_a_restart_goes_on_from_the_stored_intervals() -> None:
    """A new monitor at 10:20 reads every event back (its rewind reaches 09:00), then is
    told that intervals were closed up to 10:15 and given A as stored: it closes nothing,
    and its today is the old one's (A's staffed time from the stored sums; no tick of the
    new one has seen the open interval yet)."""
    _, closed, before = run(trace(), TICKS[:5], forecasts={"billing": FORECAST})
    [a] = [r for r in closed if r.site is None and r.start == B0]
    stored = Interval.model_validate_json(a.model_dump_json())
    restarted = Monitor(forecasts={"billing": FORECAST})
    core = restarted.intervals = Intervals(complete_from=B0 + 1200 - 4800, require_seed=True)
    for event in trace():  # read back before the queue is taken over, as live
        if event.ts.timestamp() <= B0 + 1200:
            restarted.add(event)
    assert core.seed("billing", B0 + 900, [stored]) is None
    out = restarted.tick(B0 + 1200)
    assert out.intervals == []
    today = out.snapshots[0]["today"]
    assert isinstance(today, dict) and isinstance(before["today"], dict)
    assert today == {**before["today"], "agents_staffed_avg": pytest.approx(1500 / 900)}


def test_a_late_event_read_back_by_a_new_monitor_closes_its_stored_interval_again() -> None:
    """The old monitor closed A at 10:15 and stored it; a call queued at 10:12 reached the
    log after that (the sender was late, or the old monitor died first). A new monitor
    reads it back before it takes the queue over: A is closed again with it (8 arrivals,
    6 from north), keeping the staffed time the old one stored, and today counts it."""
    _, closed, before = run(trace(), TICKS[:5], forecasts={"billing": FORECAST})
    stored = [Interval.model_validate_json(r.model_dump_json()) for r in closed if r.start == B0]
    late = call("queued", "12:00", "c9", site="north")
    restarted = Monitor(forecasts={"billing": FORECAST})
    core = restarted.intervals = Intervals(complete_from=B0 + 1200 - 4800, require_seed=True)
    for event in [*trace(), late]:
        if event.ts.timestamp() <= B0 + 1200:
            restarted.add(event)
    assert core.seed("billing", B0 + 900, stored) is None
    out = restarted.tick(B0 + 1200)
    again = {r.site: r for r in out.intervals}
    assert sorted(again, key=str) == [None, "north", "south"]
    assert (again[None].start, again[None].arrivals, again["north"].arrivals) == (B0, 8, 6)
    assert again[None].agents_staffed_avg == pytest.approx(5 / 3)
    assert again["north"].agents_staffed_avg == pytest.approx(1.0)
    today = out.snapshots[0]["today"]
    assert isinstance(today, dict) and isinstance(before["today"], dict)
    assert today["arrivals"] == before["today"]["arrivals"] + 1


def test_a_monitor_away_longer_than_its_rewind_names_the_missing_span() -> None:
    core = Intervals(complete_from=B0 + 10 * 3600 + 1)
    assert core.seed("billing", B0 + 900, []) == (B0 + 900, B0 + 10 * 3600 + 900)
    assert core.queues["billing"].closed_through == B0 + 10 * 3600 + 900
