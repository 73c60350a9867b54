"""Surge tiers (contract 5) measured: false pages, speed to each tier, a long surge
without a forecast, a new line with a declared rate, and the tier machine's cost.

    python -m bench.tiers [--seeds 20] [--out bench/results/tiers.json]

Arrivals are drawn as the simulator draws them (Poisson, thinned to the scenario's
profile); per queue and tick the counts the engine would give (`surge_counts`) are
taken from the arrival times, and the real tier machine (`shared.core.tiers.step`) is
stepped tick by tick. A tick where the machine is at tier 0 and no window comes near
a tier (ratio under tier 1, fewer than `min_arrivals`, or p above 10x `surge_p_value`)
cannot change anything, so `step` is skipped there. `monitor_check` runs one instant
step through the whole pure Monitor (events, engine, tiers) and compares.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from services.simulator.closed_loop import T0, forecasts_for
from services.simulator.scenario import Scenario, load_scenario
from shared.core.figures import AgentCounts, QueueStats, WindowMetrics
from shared.core.monitor import Monitor
from shared.core.tiers import QueueAlertState, poisson_tails, step
from shared.events import parse_event
from shared.forecast import Forecast
from shared.queue_settings import QueueSettings
from shared.timefmt import iso_ms

HOUR_S = 3600.0
CONTRACT = 1e-4  # contract 5's surge_p_value, measured beside floorwatch's default
ZERO = WindowMetrics(
    arrivals=0, answered=0, answered_within_target=0, short_abandoned=0, abandoned=0,
    callbacks=0, overflowed=0, offered=0, answer_rate=None, answer_rate_live=None,
    abandon_rate=None, asa_s=None, aht_s=None,
)  # fmt: skip


def arrivals(scenario: Scenario, queue_id: str, seed: int, until: float) -> np.ndarray:
    """Arrival times (s after the run's start) of one queue, thinned to the profile."""
    spec = next(q for q in scenario.queues if q.queue_id == queue_id)
    rng = np.random.default_rng([seed, sum(queue_id.encode())])
    peak = spec.calls_per_min / 60.0 * scenario.max_multiplier(queue_id)
    candidates = np.sort(rng.uniform(0.0, until, rng.poisson(peak * until)))
    keep = np.array([scenario.multiplier(queue_id, t) for t in candidates]) * (
        spec.calls_per_min / 60.0
    )
    return candidates[rng.uniform(0.0, peak, len(candidates)) <= keep]


def _cumulative(forecast: Forecast, t0: float) -> tuple[np.ndarray, np.ndarray]:
    knots = forecast.start_s - t0 + forecast.interval_s * np.arange(len(forecast.arrivals) + 1)
    return knots, np.concatenate([[0.0], np.cumsum(forecast.arrivals)])


def drive(
    times: np.ndarray,
    ticks: np.ndarray,
    settings: QueueSettings,
    forecast: Forecast | None,
    first_seen: float = 0.0,
) -> list[tuple[float, str, int, int]]:
    """Step one queue's tier machine at every tick; its surge transitions (t, what, from, to)."""
    t0 = T0.timestamp()
    windows = list(dict.fromkeys([*settings.surge_windows_s, settings.surge_window_s]))
    counts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    near = np.zeros(len(ticks), bool)
    for w in windows:
        n = np.searchsorted(times, ticks, "right") - np.searchsorted(times, ticks - w, "right")
        b = np.searchsorted(times, ticks - w, "right") - np.searchsorted(
            times, ticks - w - HOUR_S, "right"
        )
        seen = ticks - w - HOUR_S >= first_seen
        counts[w] = (n, b, seen)
        e = np.full(len(ticks), np.nan)
        if forecast is not None:
            knots, cum = _cumulative(forecast, t0)
            covered = (ticks - w >= knots[0]) & (ticks <= knots[-1])
            e[covered] = (np.interp(ticks, knots, cum) - np.interp(ticks - w, knots, cum))[covered]
        if settings.expected_per_hour is not None:
            e[np.isnan(e)] = settings.expected_per_hour * w / HOUR_S
        base = np.isnan(e) & seen
        e[base] = b[base] * w / HOUR_S
        ok = ~np.isnan(e) & (e > 0)
        p = np.ones(len(ticks))
        p[ok] = poisson_tails(n[ok], e[ok])
        high = n >= settings.tier_thresholds[0] * np.where(ok, e, np.inf)
        near |= ok & high & (n >= settings.min_arrivals) & (p <= 10 * settings.surge_p_value)
    state = QueueAlertState()
    out: list[tuple[float, str, int, int]] = []
    for k, t in enumerate(ticks):
        if state.tier == 0 and not near[k]:
            continue
        surge = {
            w: (int(n[k]), int(b[k]) if seen[k] else None) for w, (n, b, seen) in counts.items()
        }
        primary = surge[settings.surge_window_s]
        stats = QueueStats(
            queue_id="q", now=t0 + float(t), windows=dict.fromkeys(settings.windows_s, ZERO),
            waiting=0, waiting_over_target=0, longest_wait_s=0.0, agents=AgentCounts(),
            surge_arrivals=primary[0], baseline_arrivals=primary[1], settings=settings,
            surge_counts=surge,
        )  # fmt: skip
        result = step(state, stats, forecast)
        out.extend((float(t), c.transition, c.from_tier, c.tier) for c in result.changes)
        state = result.state
    return out


def _entries(transitions: list[tuple[float, str, int, int]]) -> dict[int, int]:
    """How many times each tier (or above) was entered."""
    got = {1: 0, 2: 0, 3: 0}
    for _t, what, before, after in transitions:
        if what in ("raised", "escalated"):
            for tier in range(before + 1, after + 1):
                got[tier] += 1
    return got


def false_pages(name: str, seeds: int, p_value: float) -> dict[str, Any]:
    """A day without any surge, against its exact forecast: every tier raised is false."""
    scenario = load_scenario(name)
    forecasts = forecasts_for(scenario, T0)
    settings = QueueSettings(surge_p_value=p_value)
    ticks = np.arange(0.0, scenario.duration_s + 1e-9, scenario.tick_s)
    per_queue: dict[str, dict[str, int]] = {}
    most_tier1 = 0
    for q in scenario.queues:
        totals = {1: 0, 2: 0, 3: 0}
        for seed in range(1, seeds + 1):
            times = arrivals(scenario, q.queue_id, seed, scenario.duration_s)
            got = _entries(drive(times, ticks, settings, forecasts[q.queue_id]))
            most_tier1 = max(most_tier1, got[1])
            totals = {k: totals[k] + got[k] for k in totals}
        per_queue[q.queue_id] = {
            "calls_per_min": int(q.calls_per_min),
            **{f"tier{k}": v for k, v in totals.items()},
        }
    return {
        "scenario": name, "seeds": seeds, "hours_per_run": scenario.duration_s / HOUR_S,
        "surge_p_value": p_value, "queues": per_queue,
        "tier2_or_3": sum(v["tier2"] for v in per_queue.values()),
        "tier1": sum(v["tier1"] for v in per_queue.values()),
        "most_tier1_in_one_run_of_one_queue": most_tier1,
    }  # fmt: skip


def _first(transitions: list[tuple[float, str, int, int]], tier: int, after: float) -> float | None:
    """Seconds from `after` to the first tick at `tier` or above (0 when already there)."""
    current = 0
    for t, _what, _before, now in transitions:
        if t > after and current >= tier:
            return 0.0
        if t > after and now >= tier:
            return t - after
        current = now
    return 0.0 if current >= tier else None


def _summary(values: list[float | None]) -> dict[str, float | int | None]:
    known = sorted(v for v in values if v is not None)
    return {
        "median_s": float(np.median(known)) if known else None,
        "max_s": known[-1] if known else None,
        "never": len(values) - len(known),
    }


def instant_steps(seeds: int, p_value: float) -> dict[str, Any]:
    """Seconds from an instant step (against an exact forecast) to each tier."""
    scenario = load_scenario("instant-step")
    forecasts = forecasts_for(scenario, T0)
    settings = QueueSettings(surge_p_value=p_value)
    start = scenario.surge.start_s
    ticks = np.arange(start - 600.0, scenario.surge.end_s + 1e-9, scenario.tick_s)
    out: dict[str, Any] = {"surge_p_value": p_value, "seeds": seeds}
    for q in scenario.queues:
        rows: dict[int, list[float | None]] = {1: [], 2: [], 3: []}
        early = 0
        for seed in range(1, seeds + 1):
            times = arrivals(scenario, q.queue_id, seed, scenario.duration_s)
            moves = drive(times, ticks, settings, forecasts[q.queue_id])
            early += any(t <= start for t, *_ in moves)
            for tier in rows:
                rows[tier].append(_first(moves, tier, start))
        out[q.queue_id] = {
            "calls_per_min": q.calls_per_min,
            "step": scenario.max_multiplier(q.queue_id),
            **{f"tier{k}": _summary(v) for k, v in rows.items()},
            "runs_with_a_tier_before_the_step": early,
        }
    return out


def _one_queue(
    calls_per_min: float, profile: list[tuple[float, float]], duration: float
) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "bench", "duration_s": duration, "surge": {"start_s": 0, "end_s": duration},
            "queues": [{"queue_id": "line", "calls_per_min": calls_per_min, "forecast": False}],
            "profile": [{"at_s": t, "multiplier": {"line": m}} for t, m in profile],
            "agents": [{"count": 1, "prefix": "a", "skills": {"line": 5}}],
        }
    )  # fmt: skip


def no_forecast_surge(seeds: int, p_value: float) -> dict[str, Any]:
    """No forecast: 75 min of normal traffic, a 6x surge for an hour, 30 min of normal."""
    start, end, duration = 4500.0, 8100.0, 9900.0
    scenario = _one_queue(10, [(0, 1), (start, 1), (start, 6), (end, 6), (end, 1)], duration)
    settings = QueueSettings(surge_p_value=p_value)
    ticks = np.arange(0.0, duration + 1e-9, 2.0)
    raised: list[float | None] = []
    lowest: list[int] = []
    cleared: list[float | None] = []
    for seed in range(1, seeds + 1):
        times = arrivals(scenario, "line", seed, duration)
        moves = drive(times, ticks, settings, None, first_seen=float(times[0]))
        timeline = [(t, now) for t, _what, _before, now in moves]
        at2 = _first(moves, 2, start)
        raised.append(at2)
        # the lowest tier held from reaching tier 2 until the surge ends
        low = 3
        for t, now in timeline:
            if at2 is not None and start + at2 < t <= end:
                low = min(low, now)
        lowest.append(low if at2 is not None else 0)
        gone = [t - end for t, now in timeline if now == 0 and t > end]
        cleared.append(gone[0] if gone else None)
    return {
        "surge_p_value": p_value, "seeds": seeds, "calls_per_min": 10, "step": 6,
        "surge_s": end - start, "tier2_after_s": _summary(raised),
        "lowest_tier_until_the_end": min(lowest), "tier0_after_the_end": _summary(cleared),
    }  # fmt: skip


def new_line(seeds: int, p_value: float) -> dict[str, Any]:
    """A line opened at t=0 with 600 calls an hour declared; a 6x step two minutes in."""
    step_at, duration = 120.0, 1800.0
    scenario = _one_queue(10, [(0, 1), (step_at, 1), (step_at, 6)], duration)
    ticks = np.arange(0.0, duration + 1e-9, 2.0)
    out: dict[str, Any] = {"surge_p_value": p_value, "seeds": seeds, "step_at_s": step_at}
    for label, declared in (("declared_600_per_hour", 600.0), ("nothing_declared", None)):
        settings = QueueSettings(surge_p_value=p_value, expected_per_hour=declared)
        rows: dict[int, list[float | None]] = {1: [], 2: [], 3: []}
        false_before = 0
        for seed in range(1, seeds + 1):
            times = arrivals(scenario, "line", seed, duration)
            moves = drive(times, ticks, settings, None, first_seen=float(times[0]))
            false_before += sum(1 for t, w, _b, _a in moves if w == "raised" and t <= step_at)
            for tier in rows:
                rows[tier].append(_first(moves, tier, step_at))
        out[label] = {
            **{f"tier{k}": _summary(v) for k, v in rows.items()},
            "raised_before_the_step": false_before,
        }
    return out


def monitor_check(seed: int = 1) -> dict[str, Any]:
    """The 8x step of `instant-step` through the whole pure Monitor, against `drive`."""
    scenario = load_scenario("instant-step")
    forecast = forecasts_for(scenario, T0)["x8"]
    times = arrivals(scenario, "x8", seed, scenario.duration_s)
    times = times[(times > 600) & (times <= 1000)]
    ticks = np.arange(600.0, 1000.0 + 1e-9, 2.0)
    t0 = T0.timestamp()
    monitor = Monitor(forecasts={"x8": forecast})
    seen: list[tuple[float, str, int, int]] = []
    i = 0
    for t in ticks:
        while i < len(times) and times[i] <= t:
            raw = {"event_id": f"e{i}", "type": "call.queued", "ts": iso_ms(t0 + times[i]),
                   "call_id": f"c{i}", "queue_id": "x8"}  # fmt: skip
            monitor.engine.add(parse_event(raw))
            i += 1
        out = monitor.tick(t0 + float(t))
        seen.extend((float(t), c.transition, c.from_tier, c.tier) for c in out.changes if c.kind == "surge")  # fmt: skip
    direct = drive(times, ticks, QueueSettings(), forecast)
    return {"monitor": seen, "drive": direct, "same": seen == direct}


def _old_step() -> Callable[..., Any]:
    """The tier machine before contract v2 section 5, from git."""
    code = subprocess.run(
        ["git", "show", "3617457:shared/core/tiers.py"], capture_output=True, check=True, text=True
    ).stdout  # noqa: S603, S607  # a fixed git command on this repository
    spec = importlib.util.spec_from_loader("tiers_v1", loader=None)
    assert spec is not None  # noqa: S101
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiers_v1"] = module
    exec(compile(code, "tiers_v1", "exec"), module.__dict__)  # noqa: S102  # our own history
    return module.step  # type: ignore[no-any-return]


def cost(queues: int = 1000, runs: int = 5) -> dict[str, Any]:
    """Milliseconds to step every queue's tier machine once, before and after v2."""
    t0 = T0.timestamp()
    settings = QueueSettings()
    forecast = Forecast(
        queue_id="q", start=T0 - timedelta(hours=2), interval_s=900, arrivals=[150.0] * 16
    )
    rng = np.random.default_rng(1)
    stats = []
    for _ in range(queues):
        n = {w: int(rng.poisson(w / 6)) for w in settings.surge_windows_s}
        stats.append(
            QueueStats(
                queue_id="q",
                now=t0,
                windows=dict.fromkeys(settings.windows_s, ZERO),
                waiting=0,
                waiting_over_target=0,
                longest_wait_s=0.0,
                agents=AgentCounts(),
                surge_arrivals=n[300],
                baseline_arrivals=600,
                settings=settings,
                surge_counts={w: (c, 600) for w, c in n.items()},
            )  # fmt: skip
        )
    out: dict[str, Any] = {"queues": queues}
    for label, fn in (("before_ms", _old_step()), ("after_ms", step)):
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            for s in stats:
                fn(QueueAlertState(), s, forecast)
            times.append((time.perf_counter() - began) * 1000)
        out[label] = round(float(np.median(times)), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tiers")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default="bench/results/tiers.json")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    result: dict[str, Any] = {"false_pages": [], "instant_steps": [], "no_forecast": [], "new_line": []}  # fmt: skip
    for p_value in (CONTRACT, QueueSettings().surge_p_value):
        for name in ("steady", "quiet-day"):
            result["false_pages"].append(false_pages(name, args.seeds, p_value))
        result["instant_steps"].append(instant_steps(args.seeds, p_value))
        result["no_forecast"].append(no_forecast_surge(args.seeds, p_value))
        result["new_line"].append(new_line(args.seeds, p_value))
    check = monitor_check()
    result["monitor_check"] = {"same": check["same"], "transitions": check["monitor"]}
    result["cost"] = cost()
    result["wall_s"] = round(time.perf_counter() - began, 1)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    Path(args.out).write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
