"""Breakdowns kept from tick to tick: every queue's by_priority, by_channel and by_site,
tick after tick of a random centre (surges, forecasts, declared rates, calls waiting past
their targets, agents moving between sites), equal float for float those built afresh
for one queue at a time from the same sums, and those of an engine that sees the same
events for the first time."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from shared.core.breakdowns import NO_SPOT, BreakdownTable, breakdown
from shared.core.engine import Engine
from shared.core.figures import (
    EMPTY_WINDOW,
    AgentCounts,
    Breakdown,
    QueueStats,
    WindowMetrics,
    window_of,
)
from shared.core.monitor import Monitor
from shared.events import parse_event
from shared.forecast import Forecast
from shared.queue_settings import QueueSettings
from tests.conftest import T0, iso

NOW = T0.timestamp()
QUEUES = [f"q{i}" for i in range(8)]
SETTINGS = {
    "q0": QueueSettings(),
    "q1": QueueSettings(sl_flowouts="exclude"),
    "q2": QueueSettings(priority_sl_threshold_s={"0": 15, "1": 20, "3": 60}),
    "q3": QueueSettings(expected_per_hour=40.0),  # declared: a surge against it
    "q4": QueueSettings(sl_threshold_s=10, min_arrivals=3),  # breaches
    "q5": QueueSettings(windows_s=[60, 900]),  # another primary window
    "q6": QueueSettings(callback_expiry_s=120),
    "q7": QueueSettings(expected_per_hour=400.0, sl_flowouts="exclude"),
}
NAMES = ("by_priority", "by_channel", "by_site")


def reference(table: BreakdownTable, q: int) -> tuple[dict[str, Breakdown], ...]:
    """Queue `q`'s breakdowns built from the table's sums alone, key by key, as one
    queue at a time was built before any was kept from tick to tick."""
    out = []
    total, keys, _expired = table.spots[q]
    at_site = table.site_agents.get(table.queue_ids[q], {})
    for dim, d in enumerate(table.dims_of[q]):
        names, by_key = table.names[dim], keys[dim]
        lo, hi = d.starts[q], d.starts[q + 1]
        found = [r - q * d.groups for r in d.active[lo:hi].tolist()]
        parts: list[tuple[str, WindowMetrics, Any, AgentCounts | None]] = []

        def agents_of(name: str, dim: int = dim) -> AgentCounts | None:
            return at_site.get(name, AgentCounts()) if dim == 2 else None

        if len(found) == 1 and (not by_key or (len(by_key) == 1 and found[0] in by_key)):
            name = names[found[0]]
            parts.append((name, table.primary[q], total, agents_of(name)))
        else:
            ints, floats = d.rows(lo, hi)
            for k, row, f in zip(found, ints, floats, strict=True):
                spot = by_key.get(k, NO_SPOT)
                window = window_of(row, f, spot.over, table.miss[q])
                parts.append((names[k], window, spot, agents_of(names[k])))
            for k, spot in by_key.items():
                if k not in found:
                    window = WindowMetrics(
                        **{
                            **{n: getattr(EMPTY_WINDOW, n) for n in WindowMetrics.__slots__},
                            "over_target": spot.over,
                            "answer_rate_live": 0.0 if spot.over else None,
                        }
                    )
                    parts.append((names[k], window, spot, agents_of(names[k])))
        out.append({name: breakdown(table.now, w, s, a) for name, w, s, a in parts})
    return tuple(out)


def exact(breakdowns: dict[str, Breakdown]) -> str:
    """Keys in order and every number as written (repr tells -0.0 from 0.0)."""
    return repr(list(breakdowns.items()))


def scenario(seed: int, ticks: int) -> list[tuple[float, list[dict[str, Any]]]]:
    """Each tick's time and the events delivered just before it: calls of every priority,
    channel and site, a surge on two queues, long waits, callbacks, agents changing."""
    rng = random.Random(seed)
    start = NOW - 2.0 * ticks
    out: list[tuple[float, list[dict[str, Any]]]] = []
    pending: list[tuple[float, dict[str, Any]]] = []  # (time, event) of calls under way
    n = 0
    for t in range(ticks):
        now = start + 2.0 * (t + 1) + (300.0 if t == ticks // 2 else 0.0)  # one long gap
        start += 300.0 if t == ticks // 2 else 0.0
        due: list[dict[str, Any]] = []
        for queue in QUEUES:
            surge = queue in ("q3", "q4") and ticks // 4 <= t < ticks // 2
            for _ in range(rng.choice([0, 0, 0, 1, 2] if not surge else [3, 5, 8])):
                n += 1
                at = now - rng.uniform(0, 2.0)
                call = {"call_id": f"c{n}", "queue_id": queue}
                queued: dict[str, Any] = {"type": "call.queued", "ts": iso(at - NOW), **call}
                queued["event_id"] = f"e{n}q"
                if rng.random() < 0.9:
                    queued["priority"] = rng.randrange(4)
                if rng.random() < 0.9:
                    queued["channel"] = rng.choice(["voice", "chat", "email", "callback"])
                if rng.random() < 0.8:
                    queued["site"] = rng.choice(["north", "south", "east"])
                due.append(queued)
                wait = rng.choice([1.0, 4.0, 12.0, 25.0, 40.0, 90.0])
                kind = rng.choice(["answered", "answered", "abandoned", "callback_requested",
                                   "overflowed", None])  # fmt: skip
                if kind is None:
                    continue  # still waiting
                extra: dict[str, Any] = {"wait_s": wait} if rng.random() < 0.8 else {}
                if kind == "answered":
                    extra["agent_id"] = "a0"
                if kind == "overflowed":
                    extra["to_queue_id"] = "q0"
                pending.append((at + wait, {"type": f"call.{kind}", **call, **extra}))
                if kind == "answered":
                    pending.append((at + wait + 30.0, {"type": "call.ended", "agent_id": "a0",
                                                       "talk_s": rng.uniform(10, 300), **call}))  # fmt: skip
                if kind == "callback_requested" and rng.random() < 0.7:
                    outcome = rng.choice(["connected", "no_answer"])
                    pending.append((at + wait + rng.uniform(5, 200),
                                    {"type": "call.callback_completed", "outcome": outcome,
                                     "wait_s": rng.uniform(5, 2000), **call}))  # fmt: skip
        if rng.random() < 0.3:  # an agent changes state or site
            a = rng.randrange(6)
            due.append({"type": "agent.state", "agent_id": f"a{a}", "ts": iso(now - NOW - 0.5),
                        "state": rng.choice(["available", "busy", "wrap_up", "not_ready", "offline"]),
                        "site": rng.choice(["north", "south"]),
                        "event_id": f"s{t}"})  # fmt: skip
            if t < 3:
                due.append({"type": "agent.skills", "agent_id": f"a{a}",
                            "ts": iso(now - NOW - 0.5), "event_id": f"k{t}",
                            "skills": [{"queue_id": q, "level": 1} for q in rng.sample(QUEUES, 4)]})  # fmt: skip
        for at, e in sorted((p for p in pending if p[0] <= now), key=lambda p: p[0]):
            n += 1
            due.append({**e, "ts": iso(at - NOW), "event_id": f"e{n}"})
        pending[:] = [p for p in pending if p[0] > now]
        out.append((now, due))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_breakdowns_equal_those_built_afresh(seed: int) -> None:
    monitor = Monitor(settings=dict(SETTINGS))
    start = datetime.fromtimestamp(NOW - 4000, UTC)
    monitor.forecasts["q0"] = Forecast(
        queue_id="q0", start=start, interval_s=900, arrivals=[20.0, 30.0, 25.0, 40.0, 35.0, 30.0]
    )
    delivered: list[dict[str, Any]] = []
    checked = 0
    for tick, (now, due) in enumerate(scenario(seed, 120)):
        for e in due:
            monitor.add(parse_event(e))
        delivered += due
        out = monitor.tick(now)
        for snap in out.snapshots:
            stats = out.stats[str(snap["queue_id"])]
            table = stats.breakdowns
            assert table is not None
            want = reference(table, stats.index)
            values = stats.breakdowns_json()
            for name, got, expected, json in zip(
                NAMES, table.queue(stats.index), want, values, strict=True
            ):
                assert exact(got) == exact(expected), (tick, stats.queue_id, name)
                assert got == getattr(stats, name)
                converted = {k: b.as_json() for k, b in expected.items()}
                assert snap[name] == converted
                assert orjson.dumps(json) == orjson.dumps(converted), (tick, stats.queue_id, name)
                checked += len(got)
            assert stats.breakdowns_json() is values  # converted once a tick
        if tick % 15 == 14:  # an engine that sees every event for the first time
            fresh = Engine(monitor.settings_for)
            for e in delivered:
                fresh.add(parse_event(e))
            again = fresh.compute(now)
            for queue_id, stats in out.stats.items():
                for name in NAMES:
                    assert exact(getattr(stats, name)) == exact(getattr(again[queue_id], name))
    assert checked > 1000
    assert any(s.tier for s in monitor.states.values())  # a surge was seen
    assert any(s.breach for s in monitor.states.values())  # and a breach


def test_a_stats_without_a_table_has_empty_breakdowns() -> None:
    stats = QueueStats("q", NOW, {}, 0, 0, 0.0, AgentCounts(), 0, None, QueueSettings())
    assert (stats.by_priority, stats.by_channel, stats.by_site) == ({}, {}, {})
    assert stats.breakdowns_json() == ({}, {}, {})


def test_a_table_read_after_a_newer_tick_is_built_afresh() -> None:
    """Only the newest table keeps figures for the next tick: an older one read late
    builds its own, the numbers of its `now`."""
    engine = Engine(SETTINGS.__getitem__)
    ticks = scenario(4, 30)
    for now, due in ticks[:20]:
        for e in due:
            engine.add(parse_event(e))
        engine.compute(now)  # read by no one
    older = engine.compute(ticks[20][0])
    for now, due in ticks[21:]:
        for e in due:
            engine.add(parse_event(e))
        newer = engine.compute(now)
        for stats in newer.values():
            stats.breakdowns_json()
    for stats in older.values():
        table = stats.breakdowns
        assert table is not None
        want = reference(table, stats.index)
        for got, expected, json in zip(
            table.queue(stats.index), want, stats.breakdowns_json(), strict=True
        ):
            assert exact(got) == exact(expected)
            assert orjson.dumps(json) == orjson.dumps({k: b.as_json() for k, b in expected.items()})
