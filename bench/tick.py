"""`python -m bench.tick QUEUES`: tick time and memory of an engine full of QUEUES queues."""

from __future__ import annotations

import sys

import orjson

from bench.engine import filled_engine, rss_mb, tick_ms
from shared.runtime import tune_gc

PER_QUEUE = 300  # 100 calls per queue over the 3,900 s that every window and baseline span


def main() -> None:
    queues = int(sys.argv[1])
    tune_gc()
    engine = filled_engine(queues, PER_QUEUE)
    out = {
        "queues": queues,
        "events": len(engine.log),
        "tick_ms": [tick_ms(engine) for _ in range(3)],
        "rss_mb": rss_mb(),
    }
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
