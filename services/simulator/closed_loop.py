"""`floorwatch scenario`: simulator, monitor engine and planner on simulated time, one process."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.simulator.scenario import Scenario
from services.simulator.sim import Simulator
from shared.core.monitor import Monitor
from shared.core.planner import Planner
from shared.events import parse_event
from shared.forecast import Forecast
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS

T0 = datetime(2026, 11, 11, 19, 0, tzinfo=UTC)  # simulated runs start here, whatever the day


def forecasts_for(scenario: Scenario, start: datetime) -> dict[str, Forecast]:
    """The normal rate of each queue as a forecast, from an hour before the run to its end."""
    interval = scenario.forecast_interval_s
    count = math.ceil((scenario.duration_s + 3600) / interval) + 1
    return {
        q.queue_id: Forecast(
            queue_id=q.queue_id,
            start=start - timedelta(hours=1),
            interval_s=interval,
            arrivals=[q.calls_per_min * interval / 60.0] * count,
        )
        for q in scenario.queues
    }


def span_metrics(
    events: Iterable[dict[str, Any]], queue_id: str, start: float, end: float
) -> dict[str, float | int | None]:
    """Answer rate, abandonment and offered over (start, end], as contract 4 counts them."""
    s = DEFAULT_QUEUE_SETTINGS
    answered = within = abandoned = 0
    for e in events:
        if e.get("queue_id") != queue_id or not start < e["_t"] <= end:
            continue
        wait = e.get("wait_s")
        if e["type"] == "call.answered":
            answered += 1
            within += wait is not None and wait <= s.sl_threshold_s
        elif e["type"] == "call.abandoned" and not (wait is not None and wait <= s.short_abandon_s):
            abandoned += 1
    offered = answered + abandoned
    return {
        "answer_rate": within / offered if offered else None,
        "abandon_rate": abandoned / offered if offered else None,
        "offered": offered,
    }


def run_scenario(scenario: Scenario, seed: int, dispatch: bool) -> dict[str, Any]:
    """Run a whole scenario; the same seed gives the same result."""
    t0 = T0.timestamp()
    sim = Simulator(scenario, seed, t0)
    monitor = Monitor(forecasts=forecasts_for(scenario, T0))
    planner = Planner()
    events: list[dict[str, Any]] = []
    tiers: dict[tuple[str, int], float] = {}
    alert_times: dict[str, float] = {}
    actions: list[dict[str, Any]] = []
    moved: set[tuple[str, str]] = set()
    steps = int(scenario.duration_s / scenario.tick_s)
    for k in range(steps + 1):
        t = k * scenario.tick_s
        for raw in sim.advance(t):
            monitor.engine.add(parse_event(raw))
            raw["_t"] = t0 + (_offset(raw, t0))
            events.append(raw)
        out = monitor.tick(t0 + t)
        for change in out.changes:
            alert_times[change.alert_id] = t
            if change.kind == "surge" and change.transition in ("raised", "escalated"):
                for tier in range(change.from_tier + 1, change.tier + 1):
                    tiers.setdefault((change.queue_id, tier), t - scenario.surge.start_s)
        if not dispatch:
            continue
        ratios = {q: _ratio(s) for q, s in _surges(out.snapshots).items()}
        for step in planner.step(
            t0 + t, out.stats, monitor.states, monitor.engine.agents, lambda _q: "auto", ratios
        ):
            for command in step.commands:
                sim.apply(command)
            action = step.action
            if action.state == "sent":
                alert_id = str(action.reason.get("alert_id", ""))
                since = alert_times.get(alert_id, t)
                actions.append(
                    {"queue_id": action.queue_id, "type": action.type, "after_alert_s": t - since}
                )
                if action.agent_id:
                    moved.add((action.queue_id, action.agent_id))
        for raw in sim.advance(t):  # what the commands changed at once
            monitor.engine.add(parse_event(raw))
            raw["_t"] = t0 + _offset(raw, t0)
            events.append(raw)
    start, end = t0 + scenario.surge.start_s, t0 + scenario.surge.end_s
    return {
        "scenario": scenario.name,
        "seed": seed,
        "dispatch": "on" if dispatch else "off",
        "surge": {"start_s": scenario.surge.start_s, "end_s": scenario.surge.end_s},
        "queues": {
            q.queue_id: {
                "surge": span_metrics(events, q.queue_id, start, end),
                "run": span_metrics(events, q.queue_id, t0 - 1, t0 + scenario.duration_s),
            }
            for q in scenario.queues
        },
        "tiers": [
            {"queue_id": q, "tier": tier, "raised_after_s": after}
            for (q, tier), after in sorted(tiers.items(), key=lambda kv: (kv[1], kv[0]))
        ],
        "actions": actions,
        "agents_moved": len(moved),
    }


def _offset(raw: dict[str, Any], t0: float) -> float:
    return datetime.fromisoformat(str(raw["ts"]).replace("Z", "+00:00")).timestamp() - t0


def _surges(snapshots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(s["queue_id"]): s["surge"] for s in snapshots}


def _ratio(surge: dict[str, Any]) -> float | None:
    value = surge.get("ratio")
    return float(value) if value is not None else None
