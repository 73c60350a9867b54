"""`floorwatch replay`: a file of events through the monitor's own engine (contract 8)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from shared.core.monitor import Monitor
from shared.events import InvalidEvent, parse_event
from shared.forecast import Forecast
from shared.queue_settings import QueueSettings


@dataclass(frozen=True)
class BadLine:
    line: int
    errors: list[str]


def replay(
    lines: Iterable[bytes],
    at: float,
    settings: dict[str, QueueSettings] | None = None,
    forecasts: dict[str, Forecast] | None = None,
) -> tuple[dict[str, object], list[BadLine]]:
    """Feed JSON lines in file order, then compute at `at`; returns the body and bad lines."""
    monitor = Monitor(settings=settings or {}, forecasts=forecasts or {})
    bad: list[BadLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            bad.append(BadLine(number, [f"not JSON: {exc}"]))
            continue
        try:
            monitor.engine.add(parse_event(raw))
        except InvalidEvent as exc:
            bad.append(BadLine(number, exc.errors))
    return monitor.tick(at).queues_json(), bad
