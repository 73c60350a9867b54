"""`make bench`: every benchmark, three runs each; JSON in bench/results/, a table on stdout."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import engine, scale, stack

RUNS = 3
RESULTS = Path(__file__).parent / "results"


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def machine() -> dict[str, Any]:
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()  # noqa: S607
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "commit": commit,
    }


def timed(label: str, fn: Callable[[], Any]) -> Any:
    started = time.monotonic()
    print(f"  {label} ...", file=sys.stderr, flush=True)
    out = fn()
    print(f"  {label}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return out


def tick_curve() -> dict[str, Any]:
    out: dict[str, Any] = {}
    rss = None
    for queues in (10, 100, 1000, 10000):
        proc = subprocess.run(
            [sys.executable, "-m", "bench.tick", str(queues)], capture_output=True, check=True
        )  # noqa: S603
        result = orjson.loads(proc.stdout)
        out[str(queues)] = summary(result["tick_ms"])
        if queues == 1000:
            rss = result["rss_mb"]
    return {"tick_ms": out, "rss_mb": rss}


def live_ticks() -> dict[str, Any]:
    """Ticks as the services tick them (2 s apart, the events between added first), at
    1,000 and 10,000 queues: the engine alone, with every breakdown read and the tier
    machines stepped, and the whole monitor tick (`bench.tick N --live`, CPU time)."""
    out: dict[str, Any] = {}
    for queues in (1000, 10000):
        proc = subprocess.run(
            [sys.executable, "-m", "bench.tick", str(queues), "--live"],
            capture_output=True,
            check=True,
        )  # noqa: S603
        result = orjson.loads(proc.stdout)
        out[str(queues)] = {
            key: result[f"live_{key}"] for key in ("tick_ms", "tiers_ms", "monitor_tick_ms")
        }
    return out


def main() -> None:
    results: dict[str, Any] = {
        "machine": machine(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print("engine", file=sys.stderr)
    results["engine.events_per_s"] = summary(
        [timed("engine events/s, batch path", engine.events_per_s) for _ in range(RUNS)]
    )
    results["engine.single_events_per_s"] = summary(
        [timed("engine events/s, one at a time", engine.single_events_per_s) for _ in range(RUNS)]
    )
    results["engine.bytes_per_event"] = timed("engine bytes/event", engine.bytes_per_event)
    curve = timed("engine tick curve", tick_curve)
    results["engine.tick_ms"] = curve["tick_ms"]
    results["engine.rss_mb"] = curve["rss_mb"]
    results["engine.live_tick_ms"] = timed("live ticks, 1,000 and 10,000 queues", live_ticks)
    print("stack", file=sys.stderr)
    ingest_runs = [
        timed("ingest", lambda: asyncio.run(stack.ingest_events_per_s())) for _ in range(RUNS)
    ]
    for key in ("events_per_s", "raw_producer_events_per_s", "ratio"):
        results[f"ingest.{key}"] = summary([r[key] for r in ingest_runs])
    results["monitor.events_per_s"] = summary(
        [timed("monitor", lambda: asyncio.run(stack.monitor_events_per_s())) for _ in range(RUNS)]
    )
    results["monitor.scale_events_per_s"] = timed("1, 2, 3 monitors", scale.curve)
    e2e_runs = [timed("e2e", lambda: asyncio.run(stack.e2e_latency_ms())) for _ in range(RUNS)]
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        results[f"e2e.{key}"] = summary([r[key] for r in e2e_runs])
    results["e2e.samples"] = [r["samples"] for r in e2e_runs]
    results["scenario.promo_night_s"] = summary(
        [timed("scenario", stack.scenario_s) for _ in range(RUNS)]
    )
    RESULTS.mkdir(exist_ok=True)
    body = orjson.dumps(results, option=orjson.OPT_INDENT_2)
    (RESULTS / "latest.json").write_bytes(body)
    (RESULTS / f"{datetime.now(UTC):%Y-%m-%dT%H%M%S}.json").write_bytes(body)
    print(table(results))


def table(results: dict[str, Any]) -> str:
    rows = [f"{'figure':32} {'median':>12} {'min':>12} {'max':>12}"]
    for key, value in results.items():
        if isinstance(value, dict) and "median" in value:
            rows.append(
                f"{key:32} {value['median']:12.1f} {value['min']:12.1f} {value['max']:12.1f}"
            )
        elif key == "engine.tick_ms":
            for queues, v in value.items():
                rows.append(
                    f"{'engine.tick_ms @' + queues:32} {v['median']:12.2f} {v['min']:12.2f} {v['max']:12.2f}"
                )
    for queues, v in results.get("engine.live_tick_ms", {}).items():
        rows.append(
            f"{'live tick @' + queues:32} engine {v['tick_ms']:.1f} ms, with breakdowns and "
            f"tiers {v['tiers_ms']:.1f} ms, monitor {v['monitor_tick_ms']:.1f} ms"
        )
    rows.append(f"engine.rss_mb @1000 {results['engine.rss_mb']:.0f}; machine {results['machine']}")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
