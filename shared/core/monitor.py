"""The monitor's pure core: engine, tier machine and forecasts, ticked with `now`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from shared.core.engine import Engine
from shared.core.figures import AgentCounts, Breakdown, CentreStats, QueueStats, WindowMetrics
from shared.core.intervals import Intervals
from shared.core.tiers import QueueAlertState, SurgeView, step_many
from shared.events import AGENT_EVENTS, AnyEvent
from shared.forecast import Forecast
from shared.messages.alerts import AlertChange
from shared.messages.intervals import Interval, Today
from shared.messages.snapshots import Centre, Snapshot
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings
from shared.timefmt import iso_ms

T = TypeVar("T")
R = TypeVar("R")


class JsonMemo:
    """JSON-ready values of the figures ticks hand out, by identity: figures the engine
    hands out again (it keeps them while their sums are the same) are not converted
    again. The values are shared between snapshots and ticks: read them, never change
    them."""

    def __init__(self) -> None:
        # Any: the values of several converters, each returned to its own caller
        self._last: dict[int, tuple[object, Any]] = {}
        self._now: dict[int, tuple[object, Any]] = {}
        self._as_of: tuple[float, str] = (math.nan, "")

    def iso(self, now: float) -> str:
        """`iso_ms(now)`, made once for every snapshot of a tick."""
        if self._as_of[0] != now:
            self._as_of = (now, iso_ms(now))
        return self._as_of[1]

    def of(self, obj: T, convert: Callable[[T], R]) -> R:
        """`convert(obj)`, or its value for the same object at this tick or the last."""
        key = id(obj)
        hit = self._now.get(key) or self._last.get(key)
        if hit is None or hit[0] is not obj:
            hit = (obj, convert(obj))
        self._now[key] = hit  # holds `obj`: its id is not reused while kept
        value: R = hit[1]  # the value `convert` returned for this very object
        return value

    def turn(self) -> None:
        """A tick is done: keep what it converted, forget the rest."""
        self._last, self._now = self._now, {}


def _windows(windows: dict[int, WindowMetrics], memo: JsonMemo | None = None) -> dict[str, object]:
    if memo is None:
        return {str(w): m.as_json() for w, m in windows.items()}
    return memo.of(
        windows, lambda ws: {str(w): memo.of(m, WindowMetrics.as_json) for w, m in ws.items()}
    )


def _keys(breakdowns: dict[str, Breakdown]) -> dict[str, object]:
    """A breakdown's keys as JSON-ready values."""
    return {k: b.as_json() for k, b in breakdowns.items()}


def snapshot(
    stats: QueueStats, surge: SurgeView, state: QueueAlertState, today: Today | None = None
) -> Snapshot:
    """One queue's snapshot in the shape of `GET /v1/queues/{queue_id}` (contract 7)."""
    return _validated(snapshot_fields(stats, surge, state, today))


def _validated(fields: dict[str, object]) -> Snapshot:
    # from JSON: twice as fast as from Python objects for this nested shape
    return Snapshot.model_validate_json(orjson.dumps(fields))


def snapshot_json(
    stats: QueueStats, surge: SurgeView, state: QueueAlertState, today: Today | None = None
) -> dict[str, object]:
    """The same snapshot as JSON-ready values (`Snapshot(...).model_dump(mode="json")`)."""
    fields = snapshot_fields(stats, surge, state, today)
    _validated(fields)
    return fields


def snapshot_fields(
    stats: QueueStats,
    surge: SurgeView,
    state: QueueAlertState,
    today: Today | dict[str, object] | None = None,
    memo: JsonMemo | None = None,
) -> dict[str, object]:
    """The values of a `Snapshot`, from the engine's and the tier machine's figures (with
    `memo`, figures handed out again since the last tick are not converted again)."""
    agents = stats.agents
    if memo is None:
        keys = [_keys(b) for b in (stats.by_site, stats.by_priority, stats.by_channel)]
        as_of = iso_ms(stats.now)
    else:  # converted where they changed (contract 4 breakdowns)
        by_priority, by_channel, by_site = stats.breakdowns_json()
        keys = [by_site, by_priority, by_channel]
        as_of = memo.iso(stats.now)
    fields = {
        "queue_id": stats.queue_id,
        "as_of": as_of,
        "windows": _windows(stats.windows, memo),
        "waiting": stats.waiting,
        "waiting_over_target": stats.waiting_over_target,
        "longest_wait_s": stats.longest_wait_s,
        "callbacks_pending": stats.callbacks_pending,
        "oldest_callback_s": stats.oldest_callback_s,
        "callbacks_expired": stats.callbacks_expired,
        "agents": agents.as_json() if memo is None else memo.of(agents, AgentCounts.as_json),
        "by_site": keys[0],
        "by_priority": keys[1],
        "by_channel": keys[2],
        "surge": {
            "ratio": surge.ratio,
            "expected": surge.expected,
            "arrivals": surge.arrivals,
            "window_s": surge.window_s,
            "p": surge.p,
            "basis": surge.basis,
            "tier": state.tier,
            "since": iso_ms(state.since) if state.since is not None else None,
        },
        "sl_breach": state.breach,
    }
    # contract 4: from local midnight to now (null where intervals are not kept)
    fields["today"] = today.model_dump(mode="json") if isinstance(today, Today) else today
    fields["staffing"] = None  # the leading dispatcher's, set by the monitor service
    return fields


def centre_snapshot(c: CentreStats) -> Centre:
    """Centre totals in the shape of `GET /v1/centre` (contract 4 and 7)."""
    return Centre.model_validate(
        {
            "as_of": c.now,
            "queues": c.queues,
            "windows": _windows(c.windows),
            "primary": c.totals.window.as_json(),
            "waiting": c.totals.waiting,
            "waiting_over_target": c.totals.waiting_over_target,
            "longest_wait_s": c.totals.longest_wait_s,
            "callbacks_pending": c.totals.callbacks_pending,
            "oldest_callback_s": c.totals.oldest_callback_s,
            "callbacks_expired": c.callbacks_expired,
            "agents": (c.totals.agents or AgentCounts()).as_json(),
            "by_site": {k: b.as_json() for k, b in c.by_site.items()},
        }
    )


@dataclass
class TickOutput:
    as_of: float
    snapshots: list[dict[str, object]]  # JSON-ready: exactly each model's JSON (tested)
    changes: list[AlertChange]
    stats: dict[str, QueueStats]
    updates: list[AlertChange] = field(default_factory=list)  # contract 5: the numbers now
    intervals: list[Interval] = field(default_factory=list)  # contract 4: closed at this tick
    _models: list[Snapshot] | None = None

    @property
    def models(self) -> list[Snapshot]:
        """The snapshots as typed models, validated when first asked for (validating every
        snapshot of every tick would cost more than computing them)."""
        if self._models is None:
            self._models = [_validated(s) for s in self.snapshots]
        return self._models

    def queues_json(self) -> dict[str, object]:
        """The body of `GET /v1/queues`."""
        return {"as_of": iso_ms(self.as_of), "queues": self.snapshots}


@dataclass
class Monitor:
    """Everything the monitor computes, without I/O."""

    settings: dict[str, QueueSettings] = field(default_factory=dict)
    forecasts: dict[str, Forecast] = field(default_factory=dict)
    states: dict[str, QueueAlertState] = field(default_factory=dict)
    grace_s: float = 300.0
    # contract 4: intervals and today; None where no one reads them (the simulator)
    intervals: Intervals | None = None
    engine: Engine = field(init=False)
    _json: JsonMemo = field(init=False, default_factory=JsonMemo)

    def __post_init__(self) -> None:
        self.engine = Engine(self.settings_for, self.grace_s)

    def settings_for(self, queue_id: str) -> QueueSettings:
        return self.settings.get(queue_id, DEFAULT_QUEUE_SETTINGS)

    def add(self, event: AnyEvent) -> bool:
        """Count one event (False when seen before); a late one reopens its interval."""
        return not math.isnan(self.add_many((event,))[0])

    def add_many(self, events: Sequence[AnyEvent], times: list[float] | None = None) -> list[float]:
        """Count these events in order (`Engine.add_many`: per event its time, or NaN when
        not counted, appended to `times` when given); a late call event reopens its
        interval, those counted before a failure part way included."""
        times = [] if times is None else times
        try:
            self.engine.add_many(events, times)
        finally:
            if self.intervals is not None:
                note = self.intervals.note
                # `times` is shorter than `events` when counting failed part way
                for event, ts in zip(events, times, strict=False):
                    if ts == ts and event.__class__ not in AGENT_EVENTS:  # counted: not NaN
                        note(event.queue_id, ts)  # type: ignore[union-attr]
        return times

    def centre(self, stats: dict[str, QueueStats]) -> Centre:
        """contract 4: the centre totals of these queues (a tick's `stats`)."""
        return centre_snapshot(self.engine.centre(stats))

    def tick(self, now: float, owns: Callable[[str], bool] | None = None) -> TickOutput:
        """Compute every queue at `now`, advance the tier machines, prune old state.

        With `owns`, only the queues this instance owns (by partition) are reported and
        have their tiers advanced: another monitor speaks for the others.
        """
        stats = self.engine.compute(now)
        if owns is not None:
            stats = {q: s for q, s in stats.items() if owns(q)}
        days = (
            self.intervals.tick(now, self.engine, stats, self.forecasts)
            if self.intervals is not None
            else None
        )
        ids = sorted(stats)
        known, forecasts = self.states, self.forecasts
        ticks = step_many(
            [known.get(q) or QueueAlertState() for q in ids],
            [stats[q] for q in ids],
            [forecasts.get(q) for q in ids],
        )
        today = days.today if days is not None else {}
        snapshots: list[dict[str, object]] = []
        for queue_id, state, surge in zip(ids, ticks.states, ticks.surges, strict=True):
            known[queue_id] = state
            snapshots.append(
                snapshot_fields(stats[queue_id], surge, state, today.get(queue_id), self._json)
            )
        self._json.turn()
        self.engine.prune(now)
        closed = days.closed if days is not None else []
        return TickOutput(now, snapshots, ticks.changes, stats, ticks.updates, closed)
