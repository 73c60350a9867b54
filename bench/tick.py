"""`python -m bench.tick QUEUES [--v2]`: tick time and memory of an engine full of QUEUES
queues.

`tick_ms` is the engine's `compute` with every call of priority 2, voice, no site (one
key per breakdown). With `--v2` also: `tick_ms_mixed`, the same with priorities 0-3,
three channels and two sites (nine breakdown keys per queue), and `monitor_tick_ms` /
`monitor_tick_ms_mixed`, the whole monitor tick (engine, tier machine, every snapshot
with its breakdowns as JSON-ready values).

With `--live`, ticks as the services tick: 2 s apart, the events of those 2 s (calls of
priorities 0-3, three channels, two sites) added in time order between ticks, CPU time
(`time.process_time`), the cyclic collector held off during each tick as the monitor
service holds it (`collector_paused`), median of 15 ticks: `live_tick_ms` (`Engine.compute`),
`live_tiers_ms` (the same, every queue's breakdowns read and its tier machine stepped)
and `live_monitor_tick_ms` (`Monitor.tick`).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bench.engine import NOW, SPAN_S, filled_engine, rss_mb, tick_ms
from shared.core.monitor import Monitor
from shared.core.tiers import QueueAlertState, step_many
from shared.events import CallAnswered, CallEnded, CallEvent, CallQueued
from shared.runtime import collector_paused, tune_gc

PER_QUEUE = 300  # 100 calls per queue over the 3,900 s that every window and baseline span


def monitor_tick_ms(queues: int, mixed: bool, repeats: int = 5) -> float:
    """The median time of `Monitor.tick` at one `now`, in milliseconds."""
    monitor = Monitor()
    monitor.engine = filled_engine(queues, PER_QUEUE, mixed)
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        monitor.tick(NOW.timestamp() + i * 1e-3)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2]


def live_events(queues: int, extra_s: float) -> list[tuple[float, CallEvent]]:
    """Calls of every queue over SPAN_S seconds up to NOW and `extra_s` beyond, at the
    density of `filled_engine`'s (mixed), as (time, event) in time order."""
    rng = random.Random(queues)
    start = NOW.timestamp() - SPAN_S
    out: list[tuple[float, CallEvent]] = []
    n = 0
    for q in range(queues):
        for _ in range(round(PER_QUEUE // 3 * (SPAN_S + extra_s) / SPAN_S)):
            t = start + rng.uniform(0, SPAN_S + extra_s)
            wait = rng.expovariate(1 / 20)
            ts = datetime.fromtimestamp(t, UTC)
            base: dict[str, Any] = {"call_id": f"c{n}", "queue_id": f"q{q}", "source": None}
            n += 1
            queued = CallQueued.model_construct(
                event_id=f"e{n}a", type="call.queued", ts=ts, priority=rng.randrange(4),
                channel=rng.choice(("voice", "voice", "chat", "email")),
                site=rng.choice(("north", "south")), **base,
            )  # fmt: skip
            answered = CallAnswered.model_construct(
                event_id=f"e{n}b", type="call.answered", ts=ts + timedelta(seconds=wait),
                agent_id="a", wait_s=None, **base,
            )  # fmt: skip
            ended = CallEnded.model_construct(
                event_id=f"e{n}c", type="call.ended", ts=ts + timedelta(seconds=wait + 200),
                agent_id="a", talk_s=180.0, hold_s=0.0, wrap_s=20.0, **base,
            )  # fmt: skip
            out += [(t, queued), (t + wait, answered), (t + wait + 200, ended)]
    out.sort(key=lambda e: e[0])
    return out


def live_tick_ms(queues: int, what: str, gap_s: float = 2.0, ticks: int = 15) -> float:
    """The median CPU time of one tick, ticks `gap_s` apart with the events in between
    added first: `what` is "compute", "tiers" (compute, breakdowns, tier machine) or
    "monitor" (`Monitor.tick`)."""
    events = live_events(queues, gap_s * ticks)
    monitor = Monitor()
    engine = monitor.engine
    states: dict[str, QueueAlertState] = {}

    def tiers(now: float) -> None:  # as `Monitor.tick` does, without snapshots
        stats = engine.compute(now)
        ids = sorted(stats)
        for queue_id in ids:
            st = stats[queue_id]
            st.by_priority, st.by_channel, st.by_site  # noqa: B018  # the v2 breakdowns
        ticks = step_many(
            [states.get(q) or QueueAlertState() for q in ids],
            [stats[q] for q in ids],
            [None] * len(ids),
        )
        states.update(zip(ids, ticks.states, strict=True))

    runs: dict[str, Callable[[float], object]] = {
        "compute": engine.compute, "tiers": tiers, "monitor": monitor.tick
    }  # fmt: skip
    run = runs[what]
    now = NOW.timestamp()
    at = 0
    times = []
    for k in range(ticks + 1):
        while at < len(events) and events[at][0] <= now + k * gap_s:
            engine.add(events[at][1])
            at += 1
        started = time.process_time()
        with collector_paused():  # as the monitor service ticks
            run(now + k * gap_s)
        if k:  # the first tick merges the whole hour
            times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    queues = int(sys.argv[1])
    tune_gc()
    engine = filled_engine(queues, PER_QUEUE)
    out: dict[str, object] = {
        "queues": queues,
        "events": len(engine.log),
        "tick_ms": [tick_ms(engine) for _ in range(3)],
        "rss_mb": rss_mb(),
    }
    if "--v2" in sys.argv[2:]:
        mixed = filled_engine(queues, PER_QUEUE, mixed=True)
        out["tick_ms_mixed"] = [tick_ms(mixed) for _ in range(3)]
        out["monitor_tick_ms"] = [monitor_tick_ms(queues, False) for _ in range(3)]
        out["monitor_tick_ms_mixed"] = [monitor_tick_ms(queues, True) for _ in range(3)]
    if "--live" in sys.argv[2:]:
        for name, what in (("live_tick_ms", "compute"), ("live_tiers_ms", "tiers"),
                           ("live_monitor_tick_ms", "monitor")):  # fmt: skip
            out[name] = live_tick_ms(queues, what)
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
