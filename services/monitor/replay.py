"""`floorwatch replay`: a file of events through the monitor's own engine (contract 8)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from shared.core.intervals import Intervals
from shared.core.monitor import Monitor
from shared.events import AgentEvent, CallEvent, InvalidEvent, parse_event
from shared.forecast import Forecast
from shared.messages.alerts import AlertChange, AlertRecord, apply_change
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings


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
    monitor = Monitor(settings=settings or {}, forecasts=forecasts or {}, intervals=Intervals())
    events, bad = parse_lines(lines)
    for event in events:
        monitor.add(event)
    return monitor.tick(at).queues_json(), bad


# ---- tiers tick by tick (contract 5: `--forecast`, `--settings`) ---------------------


@dataclass(frozen=True)
class Replayed:
    body: dict[str, object]  # what `GET /v1/queues` shows at `at`
    bad: list[BadLine]
    changes: list[AlertChange]  # every alert transition, tick by tick
    alerts: list[AlertRecord]  # the alert records at `at`, as `GET /v1/alerts?state=all`


def parse_lines(lines: Iterable[bytes]) -> tuple[list[CallEvent | AgentEvent], list[BadLine]]:
    """The valid events in file order, and the lines that are not."""
    events: list[CallEvent | AgentEvent] = []
    bad: list[BadLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(parse_event(orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            bad.append(BadLine(number, [f"not JSON: {exc}"]))
        except InvalidEvent as exc:
            bad.append(BadLine(number, exc.errors))
    return events, bad


def replay_ticks(
    lines: Iterable[bytes],
    at: float,
    tick_s: float,
    settings: dict[str, QueueSettings] | None = None,
    forecasts: dict[str, Forecast] | None = None,
) -> Replayed:
    """Run the monitor tick by tick, every `tick_s` up to `at`, from the first event.

    The ticks fall on `at - k * tick_s`; before each, the events stamped at or before it
    (and not fed yet) are fed in file order; the last tick, at `at`, gets every event
    left, as `replay` does. Tiers, `since` and alerts then follow the live monitor's.
    """
    monitor = Monitor(settings=settings or {}, forecasts=forecasts or {}, intervals=Intervals())
    events, bad = parse_lines(lines)
    first = min((e.epoch for e in events), default=at)
    count = max(0, math.floor((at - first) / tick_s))
    # each event goes to the first tick at or after its time
    batches: list[list[CallEvent | AgentEvent]] = [[] for _ in range(count + 1)]
    for event in events:
        k = math.ceil((event.epoch - (at - count * tick_s)) / tick_s - 1e-9)
        batches[min(max(k, 0), count)].append(event)
    changes: list[AlertChange] = []
    records: dict[str, AlertRecord] = {}
    body: dict[str, object] = {}
    for k, batch in enumerate(batches):
        for event in batch:
            monitor.add(event)
        out = monitor.tick(at - (count - k) * tick_s)
        changes.extend(out.changes)
        for change in [*out.changes, *out.updates]:
            records[change.alert_id] = apply_change(records.get(change.alert_id), change)
        body = out.queues_json()
    return Replayed(body, bad, changes, sorted(records.values(), key=lambda r: r.raised_at))


def queue_settings_from(data: object) -> dict[str, QueueSettings]:
    """`--settings`: `PUT /v1/settings/queues/{id}` bodies keyed by queue id."""
    if not isinstance(data, dict):
        raise ValueError("settings: a JSON object of queue id -> settings")
    out: dict[str, QueueSettings] = {}
    for q, patch in data.items():
        if not isinstance(patch, dict):
            raise ValueError(f"settings of {str(q)[:100]!r}: a JSON object")
        out[str(q)] = DEFAULT_QUEUE_SETTINGS.updated(patch)
    return out


def forecasts_from(data: object) -> dict[str, Forecast]:
    """`--forecast`: `PUT /v1/forecast` bodies keyed by queue id."""
    if not isinstance(data, dict):
        raise ValueError("forecast: a JSON object of queue id -> forecast")
    out: dict[str, Forecast] = {}
    for q, body in data.items():
        if not isinstance(body, dict):
            raise ValueError(f"forecast of {str(q)[:100]!r}: a JSON object")
        forecast = Forecast.model_validate({"queue_id": q, **body})
        if forecast.queue_id != q:
            raise ValueError(f"forecast keyed {str(q)[:100]!r} names {forecast.queue_id[:100]!r}")
        out[str(q)] = forecast
    return out
