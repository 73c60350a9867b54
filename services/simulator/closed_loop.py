"""`floorwatch scenario`: simulator, monitor engine and planner on simulated time, one process.

The output is contract 8's (v2): per queue the `surge`, `run` and `after` spans with the
window figures of contract 4 over each (answer rates with the queue's own settings, so
flow-outs are misses by default) and `min_answer_rate_15m`; the tiers raised; every
action with its commands; and a per-minute timeline. The run lasts at least until an
hour after the surge (the profile's last rate carries on), so `after` is a whole hour.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from services.simulator.scenario import Scenario
from services.simulator.sim import Simulator
from shared.core.monitor import Monitor
from shared.core.planner import Planner
from shared.core.sizing import Floor, TimeShares
from shared.events import parse_event
from shared.forecast import Forecast
from shared.messages.actions import Action
from shared.messages.commands import ActivateAgent
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings

T0 = datetime(2026, 11, 11, 19, 0, tzinfo=UTC)  # simulated runs start here, whatever the day
AFTER_S = 3600.0  # the `after` span: the hour after the surge
ROLLING_S = 900.0  # `min_answer_rate_15m`


def forecasts_for(scenario: Scenario, start: datetime) -> dict[str, Forecast]:
    """The normal rate of each queue as a forecast, from an hour before the run to its end."""
    interval = scenario.forecast_interval_s
    count = math.ceil((scenario.duration_s + AFTER_S + 3600) / interval) + 1
    return {
        q.queue_id: Forecast(
            queue_id=q.queue_id,
            start=start - timedelta(hours=1),
            interval_s=interval,
            arrivals=[q.calls_per_min * interval / 60.0] * count,
        )
        for q in scenario.queues
        if q.forecast
    }


def settings_of(scenario: Scenario) -> dict[str, QueueSettings]:
    """Each queue's settings: the defaults with what the scenario file names."""
    return {q.queue_id: DEFAULT_QUEUE_SETTINGS.updated(dict(q.settings)) for q in scenario.queues}


def span_metrics(
    events: list[dict[str, Any]], s: QueueSettings, start: float, end: float
) -> dict[str, float | int | None]:
    """contract 4's window figures over (start, end] for one queue's events (seconds)."""
    n: Counter[str] = Counter()
    waits: list[float] = []
    handles: list[float] = []
    for e in events:
        if not start < e["_t"] <= end:
            continue
        kind, wait = e["type"], e.get("wait_s")
        if kind == "call.queued":
            n["arrivals"] += 1
        elif kind == "call.answered":
            n["answered"] += 1
            if wait is not None:
                waits.append(wait)
                n["answered_within_target"] += wait <= s.sl_threshold_s
        elif kind == "call.abandoned":
            short = wait is not None and wait <= s.short_abandon_s
            n["short_abandoned" if short else "abandoned"] += 1
        elif kind == "call.callback_requested":
            n["callbacks"] += 1
        elif kind == "call.overflowed":
            n["overflowed"] += 1
        elif kind == "call.callback_completed":
            n["callbacks_done"] += 1
            if e["outcome"] == "connected":
                n["callbacks_completed"] += 1
                n["callbacks_in_target"] += wait is not None and wait <= s.callback_target_s
        elif kind == "call.ended":
            handles.append(e["talk_s"] + e.get("hold_s", 0.0) + e.get("wrap_s", 0.0))
    flowouts = n["callbacks"] + n["overflowed"]
    offered = n["answered"] + n["abandoned"] + (flowouts if s.sl_flowouts == "miss" else 0)
    return {
        "arrivals": n["arrivals"],
        "answered": n["answered"],
        "answered_within_target": n["answered_within_target"],
        "short_abandoned": n["short_abandoned"],
        "abandoned": n["abandoned"],
        "callbacks": n["callbacks"],
        "overflowed": n["overflowed"],
        "flowouts": flowouts,
        "offered": offered,
        "answer_rate": _ratio(n["answered_within_target"], offered),
        "abandon_rate": _ratio(n["abandoned"], offered),
        "callbacks_completed": n["callbacks_completed"],
        "callback_rate": _ratio(n["callbacks_in_target"], n["callbacks_done"]),
        "asa_s": sum(waits) / len(waits) if waits else None,
        "aht_s": sum(handles) / len(handles) if handles else None,
    }


def min_rolling_answer_rate(
    events: list[dict[str, Any]], s: QueueSettings, end: float, step_s: float = 60.0
) -> float | None:
    """The lowest answer rate over any `ROLLING_S` ending on a whole minute of the run."""
    flowout = 1 if s.sl_flowouts == "miss" else 0
    rows: list[tuple[float, int, int]] = []  # (time, offered, answered within target)
    for e in events:
        kind, wait = e["type"], e.get("wait_s")
        if kind == "call.answered":
            rows.append((e["_t"], 1, int(wait is not None and wait <= s.sl_threshold_s)))
        elif kind == "call.abandoned" and not (wait is not None and wait <= s.short_abandon_s):
            rows.append((e["_t"], 1, 0))
        elif kind in ("call.callback_requested", "call.overflowed"):
            rows.append((e["_t"], flowout, 0))
    times = [r[0] for r in rows]
    offered = [r[1] for r in rows]
    within = [r[2] for r in rows]
    order = np.argsort(np.asarray(times, dtype=float), kind="stable")
    t_sorted = np.asarray(times, dtype=float)[order]
    cum_off = np.concatenate([[0], np.cumsum(np.asarray(offered, dtype=np.int64)[order])])
    cum_in = np.concatenate([[0], np.cumsum(np.asarray(within, dtype=np.int64)[order])])
    ends = np.arange(ROLLING_S, end + 1e-9, step_s)
    hi = np.searchsorted(t_sorted, ends, side="right")  # events with t <= end
    lo = np.searchsorted(t_sorted, ends - ROLLING_S, side="right")  # t <= start: outside
    off = cum_off[hi] - cum_off[lo]
    hits = cum_in[hi] - cum_in[lo]
    rates = hits[off > 0] / off[off > 0]
    return float(rates.min()) if rates.size else None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def run_scenario(scenario: Scenario, seed: int, dispatch: bool) -> dict[str, Any]:
    """Run a whole scenario; the same seed gives the same result."""
    horizon = max(scenario.duration_s, scenario.surge.end_s + AFTER_S)
    scenario = scenario.model_copy(update={"duration_s": horizon})
    t0 = T0.timestamp()
    settings = settings_of(scenario)
    sim = Simulator(scenario, seed, t0)
    monitor = Monitor(settings=dict(settings), forecasts=forecasts_for(scenario, T0))
    planner = Planner()
    shares = TimeShares(DEFAULT_QUEUE_SETTINGS.primary_window_s)
    by_queue: dict[str, list[dict[str, Any]]] = {q: [] for q in settings}
    tiers: dict[tuple[str, int], dict[str, Any]] = {}
    alerts: dict[str, dict[str, Any]] = {}
    actions: dict[str, Action] = {}
    timeline: dict[str, list[dict[str, Any]]] = {q: [] for q in settings}
    arrived: Counter[str] = Counter()  # calls queued since the last timeline row
    expected = {q.queue_id: q.calls_per_min for q in scenario.queues}
    surge_start = scenario.surge.start_s

    def feed(t: float) -> None:
        for raw in sim.advance(t):
            event = parse_event(raw)
            monitor.engine.add(event)
            raw["_t"] = event.ts.timestamp() - t0
            queue_id = raw.get("queue_id")
            if queue_id in by_queue:
                by_queue[queue_id].append(raw)
                arrived[queue_id] += raw["type"] == "call.queued"
            if raw["type"] == "call.ended":
                handle = raw["talk_s"] + raw.get("hold_s", 0.0) + raw.get("wrap_s", 0.0)
                shares.add(raw["_t"], raw["agent_id"], raw["queue_id"], handle)

    steps = int(horizon / scenario.tick_s)
    for k in range(steps + 1):
        t = k * scenario.tick_s
        feed(t)
        out = monitor.tick(t0 + t)
        for change in out.changes:
            if change.transition == "raised":
                alerts[change.alert_id] = {
                    "alert_id": change.alert_id, "queue_id": change.queue_id,
                    "kind": change.kind, "raised_at_s": t, "first_command_after_s": None,
                }  # fmt: skip
            if change.kind != "surge":
                continue
            if change.transition in ("raised", "escalated"):
                for tier in range(change.from_tier + 1, change.tier + 1):
                    tiers.setdefault(
                        (change.queue_id, tier),
                        {"queue_id": change.queue_id, "tier": tier,
                         "raised_after_s": t - surge_start, "cleared_after_s": None},
                    )  # fmt: skip
            elif change.transition in ("deescalated", "cleared"):
                for tier in range(change.tier + 1, change.from_tier + 1):
                    entry = tiers.get((change.queue_id, tier))
                    if entry is not None and entry["cleared_after_s"] is None:
                        entry["cleared_after_s"] = t - surge_start
        if dispatch:
            ratios = {
                q: (float(r) if (r := snap["surge"]["ratio"]) is not None else None)  # type: ignore[index]
                for q, snap in ((str(s["queue_id"]), s) for s in out.snapshots)
            }
            floor = Floor(t0 + t, out.stats, monitor.states, monitor.engine.agents,
                          shares.shares(t), ratios)  # fmt: skip
            for step in planner.step(floor, lambda _q: "auto"):
                actions[step.action.action_id] = step.action
                for command in step.commands:
                    sim.apply(command)
                alert_id = step.action.reason.alert_id
                if step.commands and alert_id in alerts:
                    if alerts[alert_id]["first_command_after_s"] is None:
                        alerts[alert_id]["first_command_after_s"] = (
                            t - alerts[alert_id]["raised_at_s"]
                        )
            feed(t)  # what the commands changed at once
        if k % max(1, round(60 / scenario.tick_s)) == 0:
            for queue_id, stats in out.stats.items():
                if queue_id not in timeline:
                    continue
                s = settings[queue_id]
                state = monitor.states.get(queue_id)
                timeline[queue_id].append({
                    "t_s": t,
                    "answer_rate_live": stats.windows[s.primary_window_s].answer_rate_live,
                    "waiting": stats.waiting,
                    "staffed": stats.agents.staffed,
                    "lent": planner.lent(queue_id),
                    "borrowed": planner.borrowed(queue_id),
                    "callbacks_pending": stats.callbacks_pending,
                    "tier": state.tier if state is not None else 0,
                    "arrivals": arrived.pop(queue_id, 0),
                    "expected": expected[queue_id],
                })  # fmt: skip
    start, end = float(scenario.surge.start_s), float(scenario.surge.end_s)
    return {
        "scenario": scenario.name,
        "seed": seed,
        "dispatch": "on" if dispatch else "off",
        "surge": {"start_s": start, "end_s": end},
        "duration_s": horizon,
        "queues": {
            q: {
                "surge": span_metrics(by_queue[q], s, start, end),
                "run": span_metrics(by_queue[q], s, -1.0, horizon),
                "after": span_metrics(by_queue[q], s, end, end + AFTER_S),
                "min_answer_rate_15m": min_rolling_answer_rate(by_queue[q], s, horizon),
            }
            for q, s in settings.items()
        },
        "tiers": sorted(tiers.values(), key=lambda e: (e["raised_after_s"], e["queue_id"])),
        "alerts": sorted(alerts.values(), key=lambda e: (e["raised_at_s"], e["alert_id"])),
        "actions": [_action_json(a, t0) for a in actions.values()],
        "timeline": timeline,
        "summary": _summary(list(actions.values()), t0, start, end),
    }


def _action_json(action: Action, t0: float) -> dict[str, Any]:
    return {
        "action_id": action.action_id,
        "queue_id": action.queue_id,
        "at_s": action.created_at.timestamp() - t0,
        "kind": action.kind,
        "levers": action.levers,
        "state": action.state,
        "commands": [c.model_dump(mode="json", exclude_none=True) for c in action.commands],
        "projected": action.projected.model_dump(mode="json"),
        "measured": action.measured.model_dump(mode="json") if action.measured else None,
    }


def _summary(actions: list[Action], t0: float, start: float, end: float) -> dict[str, Any]:
    """Standby call-ins per agent, plans per surge and per minute (issue 16's measures)."""
    called: Counter[str] = Counter()
    per_minute: Counter[int] = Counter()
    plans_in_surge = 0
    for action in actions:
        at_s = action.created_at.timestamp() - t0
        per_minute[int(at_s // 60)] += 1
        if action.kind == "plan" and start <= at_s <= end + AFTER_S:
            plans_in_surge += 1
        for c in action.commands:
            if isinstance(c, ActivateAgent) and c.pool == "standby":
                called[c.agent_id] += 1
    return {
        "standby_agents_called": len(called),
        "standby_call_ins": sum(called.values()),
        "standby_call_ins_max_per_agent": max(called.values(), default=0),
        "plans_in_surge": plans_in_surge,
        "actions_max_per_minute": max(per_minute.values(), default=0),
        "actions": len(actions),
    }


def compare_table(off: dict[str, Any], on: dict[str, Any]) -> str:
    """The same scenario and seed without and with the dispatcher, as a person reads it."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    lines = [
        f"{on['scenario']}, seed {on['seed']}: dispatcher off -> on",
        "answer rate = answered within target / offered; callbacks and overflows count as"
        " not answered (sl_flowouts miss)",
        "",
        f"{'queue':<18}{'span':<16}{'answer rate':>22}{'abandoned':>22}",
    ]
    for queue_id, after in on["queues"].items():
        before = off["queues"][queue_id]
        for span in ("surge", "after", "run"):
            a, b = before[span], after[span]
            lines.append(
                f"{queue_id:<18}{span:<16}"
                f"{pct(a['answer_rate']):>10} -> {pct(b['answer_rate']):<8}"
                f"{pct(a['abandon_rate']):>12} -> {pct(b['abandon_rate']):<8}"
            )
        lines.append(
            f"{queue_id:<18}{'lowest 15 min':<16}"
            f"{pct(before['min_answer_rate_15m']):>10} -> {pct(after['min_answer_rate_15m']):<8}"
        )
    summary = on["summary"]
    firsts = [a["first_command_after_s"] for a in on["alerts"] if a["kind"] == "surge"]
    firsts = [f for f in firsts if f is not None]
    lines += [
        "",
        f"standby call-ins: {summary['standby_call_ins']} of {summary['standby_agents_called']}"
        f" agents (at most {summary['standby_call_ins_max_per_agent']} each)",
        f"plans during the surge and the hour after: {summary['plans_in_surge']};"
        f" most actions in one minute: {summary['actions_max_per_minute']}",
        "surge alert to first command: "
        + (", ".join(f"{f:g} s" for f in firsts) if firsts else "no command"),
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: str) -> None:
    """Answer rate, waiting, arrivals against expected, and agents per queue over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    start, end = result["surge"]["start_s"] / 60, result["surge"]["end_s"] / 60
    for i, (queue_id, rows) in enumerate(result["timeline"].items()):
        colour = f"C{i}"
        t = [r["t_s"] / 60 for r in rows]
        rate = [r["answer_rate_live"] if r["answer_rate_live"] is not None else float("nan")
                for r in rows]  # fmt: skip
        axes[0].plot(t, rate, color=colour, label=queue_id)
        axes[1].plot(t, [r["waiting"] for r in rows], color=colour)
        axes[2].plot(t, [r["arrivals"] for r in rows], color=colour)
        axes[2].plot(t, [r["expected"] for r in rows], color=colour, linestyle="--")
        axes[3].plot(t, [r["staffed"] for r in rows], color=colour)
        axes[3].plot(t, [r["borrowed"] for r in rows], color=colour, linestyle=":")
    titles = [
        "answer rate (live, 5 min)",
        "calls waiting",
        "arrivals a minute (dashed: expected)",
        "agents staffed (dotted: borrowed)",
    ]
    for ax, title in zip(axes, titles, strict=True):
        ax.axvspan(start, end, color="0.9", zorder=0)
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylim(0, 1.05)
    axes[0].axhline(DEFAULT_QUEUE_SETTINGS.sl_target, color="0.4", linewidth=0.8)
    axes[0].legend(loc="lower left", fontsize=8, ncol=3)
    axes[3].set_xlabel("minutes (grey: the surge)")
    fig.suptitle(f"{result['scenario']}, seed {result['seed']}, dispatcher {result['dispatch']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
