"""`step_many`: every queue's tier machine at once, the same results as `step` queue by
queue: from a hand-worked table, and tick by tick over a randomised scenario of many
queues (surges, forecasts, declared rates, breaches, clears)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy.special import gammainc  # type: ignore[import-untyped]  # scipy ships no stubs

from shared.core.engine import Engine
from shared.core.tiers import QueueAlertState, SurgeView, TickResult, step, step_many
from shared.events import AnyEvent, CallAbandoned, CallAnswered, CallQueued
from shared.forecast import Forecast
from shared.queue_settings import QueueSettings
from tests.conftest import T0
from tests.unit.test_tiers import NOW, ONE, stats


def test_the_same_p_as_the_scalar_call() -> None:
    """One `gammainc` call over many windows gives each the value of its own call."""
    rng = np.random.default_rng(7)
    n = rng.integers(1, 5000, 2000).astype(np.float64)
    mean = rng.uniform(0.01, 5000.0, 2000)
    together = gammainc(n, mean).tolist()
    assert together == [
        float(gammainc(a, b)) for a, b in zip(n.tolist(), mean.tolist(), strict=True)
    ]


def test_a_calm_queue_a_surge_and_a_breach_at_once() -> None:
    # q1: 50 in 300 s against 600 in the hour before (E = 50): ratio 1, p about 0.52
    # q2: 120 in 300 s against the same E = 50: ratio 2.4, tier 3 at once
    # q3: calm arrivals, 7 of 12 answered within target: 0.583 < 0.85 with 12 >= 10
    ticks = step_many(
        [QueueAlertState(), QueueAlertState(), QueueAlertState()],
        [
            stats(0, {300: (50, 600)}, queue_id="q1"),
            stats(0, {300: (120, 600)}, queue_id="q2"),
            stats(0, {300: (50, 600)}, within=7, offered=12, queue_id="q3"),
        ],
        [None, None, None],
    )
    calm, surge, breach = ticks.states
    assert calm == QueueAlertState()
    assert (surge.tier, surge.since, surge.surge_id) == (3, NOW, f"surge:q2:{int(NOW * 1000)}")
    assert surge.frozen_per_hour == {300: 600.0}
    assert (breach.breach, breach.breach_id) == (True, f"sl_breach:q3:{int(NOW * 1000)}")
    assert ticks.surges[1] == SurgeView(2.4, 50.0, 120, 300, ticks.surges[1].p, "baseline")
    assert ticks.surges[1].p is not None and ticks.surges[1].p < 1e-4
    assert [(c.queue_id, c.kind, c.transition, c.tier) for c in ticks.changes] == [
        ("q2", "surge", "raised", 3),
        ("q3", "sl_breach", "raised", 0),
    ]
    assert ticks.updates == []
    assert [(r.window_s, r.arrivals, r.expected, r.ratio, r.tier) for r in ticks.evidence(0)] == [
        (300, 50, 50.0, 1.0, 0)
    ]


def test_no_queue() -> None:
    ticks = step_many([], [], [])
    assert (ticks.states, ticks.surges, ticks.changes, ticks.updates) == ([], [], [], [])


def _settings() -> list[QueueSettings]:
    return [
        QueueSettings(surge_p_value=1e-4),  # the default windows 30, 60, 300, 900
        ONE,
        QueueSettings(surge_p_value=1e-4, expected_per_hour=900.0),
        QueueSettings(surge_windows_s=[30, 60], surge_window_s=300, clear_after_s=30),
        QueueSettings(min_arrivals=0, tier_hysteresis=0.3, surge_p_value=0.01),
        QueueSettings(),  # the default significance, 1e-7
    ]


def _forecast(rng: random.Random, queue_id: str) -> Forecast | None:
    kind = rng.randrange(8)
    if kind == 0:  # covering every window, at the queue's rate or far below it
        per = rng.choice([0.0, 5.0, 40.0, 200.0])
        start = T0 - timedelta(hours=2)
        return Forecast(queue_id=queue_id, start=start, interval_s=300, arrivals=[per] * 48)
    if kind == 1:  # starting 100 s before the first tick: covers the short windows first
        start = T0 - timedelta(seconds=100)
        arrivals = [rng.uniform(0, 100) for _ in range(20)]
        return Forecast(queue_id=queue_id, start=start, interval_s=60, arrivals=arrivals)
    return None


def _counts(
    rng: random.Random, s: QueueSettings, per_hour: float, surge: float, seen: bool
) -> dict[int, tuple[int, int | None]]:
    windows = sorted({*s.surge_windows_s, s.surge_window_s})
    out: dict[int, tuple[int, int | None]] = {}
    for w in windows:
        if s.min_arrivals == 0 and rng.random() < 0.05:  # one settings object only
            continue  # not counted: the primary one from `surge_arrivals` (0 here)
        mean = per_hour * surge * w / 3600
        n = max(0, round(rng.gauss(mean, mean**0.5 + 0.5)))
        out[w] = (n, round(rng.gauss(per_hour, per_hour**0.5)) if seen else None)
    return out


@pytest.mark.parametrize("shared", [False, True])
def test_many_queues_tick_by_tick_as_one_by_one(shared: bool) -> None:
    """Six settings objects among 90 queues, or one shared by all (one group)."""
    rng = random.Random(2026)
    settings = _settings()[:1] if shared else _settings()
    queues = [f"q{k:02}" for k in range(90)]
    setting = {q: rng.choice(settings) for q in queues}
    forecast = {q: _forecast(rng, q) for q in queues}
    rate = {q: rng.choice([0.0, 30.0, 300.0, 1200.0, 6000.0]) for q in queues}
    old: dict[str, QueueAlertState] = {q: QueueAlertState() for q in queues}
    new = dict(old)
    surge = dict.fromkeys(queues, 1.0)
    service = dict.fromkeys(queues, 1.0)
    seen: dict[str, bool] = {q: rng.random() < 0.7 for q in queues}
    tiers: set[int] = set()
    transitions: set[tuple[str, str]] = set()
    for tick in range(160):
        at = tick * 7.0
        for q in queues:  # surges and service levels come and go
            if rng.random() < 0.06:
                surge[q] = rng.choice([0.5, 1.0, 1.0, 1.0, 1.0, 1.3, 1.7, 2.5, 8.0])
            if rng.random() < 0.03:
                service[q] = rng.choice([0.5, 0.84, 0.86, 0.9, 1.0, 1.0, 1.0])
            seen[q] = seen[q] or rng.random() < 0.02
        all_stats = []
        for q in queues:
            s = setting[q]
            offered = rng.randrange(0, 40)
            within = min(offered, round(offered * service[q]))
            over = rng.choice([0] * 8 + [1, 2])
            counts = _counts(rng, s, rate[q], surge[q], seen[q])
            all_stats.append(stats(at, counts, s, within, offered, over, queue_id=q))
        forecasts = [forecast[q] for q in queues]
        ticks = step_many([new[q] for q in queues], all_stats, forecasts)
        results: list[TickResult] = []
        for q, st, f in zip(queues, all_stats, forecasts, strict=True):
            results.append(step(old[q], st, f))
            old[q] = results[-1].state
        for k, (q, want) in enumerate(zip(queues, results, strict=True)):
            got = ticks.result(k)
            assert repr(got) == repr(want), (tick, q)  # repr: every float to the last bit
            assert repr(ticks.evidence(k)) == repr(want.evidence)
            assert (ticks.states[k], ticks.surges[k]) == (want.state, want.surge)
            new[q] = ticks.states[k]
            tiers.add(want.state.tier)
            transitions.update((c.kind, c.transition) for c in want.changes)
        assert repr(ticks.changes) == repr([c for r in results for c in r.changes])
        assert repr(ticks.updates) == repr([c for r in results for c in r.updates])
    # the scenario went through every tier and every kind of transition
    assert tiers == {0, 1, 2, 3}
    assert transitions == {
        ("surge", "raised"), ("surge", "escalated"), ("surge", "deescalated"),
        ("surge", "cleared"), ("sl_breach", "raised"), ("sl_breach", "cleared"),
    }  # fmt: skip


def test_the_engines_arrays_step_as_its_figures_do() -> None:
    """From an engine's tick `step_many` reads every queue's arrivals and breach figures
    as arrays (`TickArrays`); stepped from each queue's own figures instead (the arrays
    taken away), every state, surge, change, update and evidence is the same, bit for
    bit, through surges and breaches, six settings objects, flow-outs counted as misses
    and a second primary window."""
    rng = random.Random(21)
    settings = [*_settings(), QueueSettings(sl_flowouts="miss", windows_s=[900, 300])]
    queues = [f"q{k:02}" for k in range(40)]
    setting = {q: settings[k % len(settings)] for k, q in enumerate(queues)}
    forecast = {q: _forecast(rng, q) for q in queues}
    engine = Engine(lambda q: setting.get(q, QueueSettings()))
    start = NOW - 3900.0  # the baseline hour observed before the first tick
    events: list[tuple[float, AnyEvent]] = []
    for k, q in enumerate(queues):
        per_s = rng.choice([0.01, 0.05, 0.2])
        t = start
        while t < NOW + 1400.0:
            surging = k % 3 == 0 and NOW + 120.0 < t < NOW + 500.0
            t += rng.expovariate(per_s * (8.0 if surging else 1.0))
            events += _call(rng, q, f"{q}-{len(events)}", t)
    events.sort(key=lambda e: e[0])
    states = {q: QueueAlertState() for q in queues}
    tiers: set[int] = set()
    kinds: set[tuple[str, str]] = set()
    at = 0
    for tick in range(140):
        now = NOW + tick * 10.0
        while at < len(events) and events[at][0] <= now:
            engine.add(events[at][1])
            at += 1
        stats = engine.compute(now)
        ids = sorted(stats)
        mine = [stats[q] for q in ids]
        assert all(st.arrays is mine[0].arrays is not None for st in mine)
        before = [states[q] for q in ids]
        forecasts = [forecast.get(q) for q in ids]
        got = step_many(before, mine, forecasts)
        want = step_many(before, [replace(st, arrays=None) for st in mine], forecasts)
        for k in range(len(ids)):
            assert repr(got.result(k)) == repr(want.result(k)), (tick, ids[k])
        assert repr(got.changes) == repr(want.changes)
        assert repr(got.updates) == repr(want.updates)
        assert got.surges == want.surges
        states.update(zip(ids, got.states, strict=True))
        tiers.update(s.tier for s in got.states)
        kinds.update((c.kind, c.transition) for c in got.changes)
    assert tiers == {0, 1, 2, 3}  # the surges were seen
    assert {("surge", "raised"), ("sl_breach", "raised"), ("sl_breach", "cleared")} <= kinds


def _call(rng: random.Random, queue: str, call: str, t: float) -> list[tuple[float, AnyEvent]]:
    """One call: queued at `t`, answered after a wait around the 20 s target (well within
    it from 600 s after NOW: breaches clear), or abandoned."""
    wait = rng.expovariate(1 / (25 if t < NOW + 600.0 else 4))
    base = {"call_id": call, "queue_id": queue}
    queued = CallQueued(event_id=f"{call}a", type="call.queued", ts=at_s(t), **base)
    if rng.random() < 0.15:
        left: AnyEvent = CallAbandoned(
            event_id=f"{call}b", type="call.abandoned", ts=at_s(t + wait), **base
        )
    else:
        left = CallAnswered(
            event_id=f"{call}b", type="call.answered", ts=at_s(t + wait), agent_id="a", **base
        )
    return [(t, queued), (t + wait, left)]


def at_s(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
