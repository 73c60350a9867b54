"""`python -m bench.tick QUEUES [--v2]`: tick time and memory of an engine full of QUEUES
queues.

`tick_ms` is the engine's `compute` with every call of priority 2, voice, no site (one
key per breakdown). With `--v2` also: `tick_ms_mixed`, the same with priorities 0-3,
three channels and two sites (nine breakdown keys per queue), and `monitor_tick_ms` /
`monitor_tick_ms_mixed`, the whole monitor tick (engine, tier machine, every snapshot
with its breakdowns as JSON-ready values).
"""

from __future__ import annotations

import sys
import time

import orjson

from bench.engine import NOW, filled_engine, rss_mb, tick_ms
from shared.core.monitor import Monitor
from shared.runtime import tune_gc

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
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
