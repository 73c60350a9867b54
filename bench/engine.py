"""Benchmarks of the monitor's pure engine: throughput, tick time by queue count, memory."""

from __future__ import annotations

import gc
import math
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shared.core.engine import Engine
from shared.events import (
    CallAnswered,
    CallEnded,
    CallQueued,
    InvalidEvent,
    decode_event,
    decode_events,
)
from shared.runtime import tune_gc

NOW = datetime(2026, 11, 11, 20, 0, tzinfo=UTC)
SPAN_S = 3900  # the longest window plus the 300 s surge window: every window full


def call_events(queues: int, per_queue: int, seed: int = 1) -> list[bytes]:
    """JSON call events (queued, answered, ended) spread over the last SPAN_S seconds."""
    rng = random.Random(seed)
    out: list[bytes] = []
    n = 0
    for q in range(queues):
        for _ in range(per_queue // 3):
            t = NOW - timedelta(seconds=rng.uniform(0, SPAN_S))
            base = {"call_id": f"c{n}", "queue_id": f"q{q}"}
            wait = rng.expovariate(1 / 20)
            out.append(
                orjson.dumps(
                    {"event_id": f"e{n}a", "type": "call.queued", "ts": t.isoformat(), **base}
                )
            )
            out.append(
                orjson.dumps(
                    {
                        "event_id": f"e{n}b",
                        "type": "call.answered",
                        "ts": (t + timedelta(seconds=wait)).isoformat(),
                        "agent_id": "a",
                        **base,
                    }
                )
            )
            out.append(
                orjson.dumps(
                    {
                        "event_id": f"e{n}c",
                        "type": "call.ended",
                        "ts": (t + timedelta(seconds=wait + 200)).isoformat(),
                        "agent_id": "a",
                        "talk_s": 180.0,
                        "wrap_s": 20.0,
                        **base,
                    }
                )
            )
            n += 1
    rng.shuffle(out)
    return out


def events_per_s(count: int = 150_000, poll: int = 500) -> float:
    """Events per second through decode, validation and the engine, one core, with the
    collector tuned as every floorwatch process tunes it, by the batch path a consumer
    takes per poll: `decode_events` over `poll` records at a time, then `Engine.add_many`
    of the valid ones, and one `compute` at the end."""
    data = call_events(100, count // 100)
    engine = Engine()
    gc.collect()
    tune_gc()
    started = time.perf_counter()
    for i in range(0, len(data), poll):
        decoded = decode_events(data[i : i + poll])
        engine.add_many([e for e in decoded if not isinstance(e, InvalidEvent)])
    engine.compute(NOW.timestamp())
    return len(data) / (time.perf_counter() - started)


def single_events_per_s(count: int = 150_000) -> float:
    """The same events one at a time: `decode_event` and `Engine.add` each (the way of a
    service that reads one record at a time, as the dispatcher does)."""
    data = call_events(100, count // 100)
    engine = Engine()
    gc.collect()
    tune_gc()
    started = time.perf_counter()
    for raw in data:
        engine.add(decode_event(raw))
    engine.compute(NOW.timestamp())
    return len(data) / (time.perf_counter() - started)


def filled_engine(queues: int, per_queue: int, mixed: bool = False) -> Engine:
    """An engine holding `per_queue` events for each queue, built without validation cost.

    `mixed`: calls of priorities 0-3, three channels and two sites (every breakdown key
    busy) instead of priority 2, voice, no site (one key per breakdown)."""
    rng = random.Random(queues)
    engine = Engine()
    now = NOW.timestamp()
    n = 0
    for q in range(queues):
        queue_id = f"q{q}"
        for _ in range(per_queue // 3):
            t = now - rng.uniform(0, SPAN_S)
            wait = rng.expovariate(1 / 20)
            ts = datetime.fromtimestamp(t, UTC)
            base: dict[str, Any] = {"call_id": f"c{n}", "queue_id": queue_id}
            engine.add(
                CallQueued.model_construct(
                    event_id=f"e{n}a",
                    type="call.queued",
                    ts=ts,
                    source=None,
                    priority=rng.randrange(4) if mixed else 2,
                    channel=rng.choice(("voice", "voice", "chat", "email")) if mixed else "voice",
                    site=rng.choice(("north", "south")) if mixed else None,
                    **base,
                )
            )
            engine.add(
                CallAnswered.model_construct(
                    event_id=f"e{n}b",
                    type="call.answered",
                    ts=ts + timedelta(seconds=wait),
                    source=None,
                    agent_id="a",
                    wait_s=None,
                    **base,
                )
            )
            engine.add(
                CallEnded.model_construct(
                    event_id=f"e{n}c",
                    type="call.ended",
                    ts=ts + timedelta(seconds=wait + 200),
                    source=None,
                    agent_id="a",
                    talk_s=180.0,
                    hold_s=0.0,
                    wrap_s=20.0,
                    **base,
                )
            )
            n += 1
    engine.compute(now)  # the first tick merges the buffered events
    return engine


def tick_ms(engine: Engine, repeats: int = 5) -> float:
    """The median time of `compute` at one `now`, in milliseconds."""
    now = NOW.timestamp()
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        engine.compute(now + i * 1e-3)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2]


def rss_mb() -> float:
    """This process's resident memory, from /proc."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def bytes_per_event(queues: int = 100, per_queue: int = 3000) -> float:
    """Bytes the engine holds per event (its columns with their spare capacity, the dedup
    and per-call indexes), traced by Python's allocator after one tick."""
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = filled_engine(queues, per_queue)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / len(engine.log)
