"""The metric engine (contract 4): events in, per-queue numbers out, time passed in.

Pure: no clock, no I/O. `add` takes validated events in any order and any number of
times; `compute(now)` returns every number of contract section 4 for every queue.
`now` must not go backwards between calls (it never does, live or in replay).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from shared.core.columns import (
    ABANDONED,
    ANSWERED,
    CALLBACK,
    ENDED,
    OVERFLOWED,
    QUEUED,
    EventLog,
    Totals,
    TotalsRows,
)
from shared.core.erlang import estimate_patience
from shared.events import (
    AgentEvent,
    AgentSkillsChanged,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallEvent,
    CallOverflowed,
    CallQueued,
)
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings

BASELINE_S = 3600.0  # contract 5: the baseline is the hour before the surge window
AGENT_STATES = ("available", "busy", "wrap_up", "not_ready")
# tuples, not unions: isinstance is faster with them on the hot path
_AGENT_EVENTS = (AgentStateChanged, AgentSkillsChanged)
_TERMINAL_EVENTS = (CallAnswered, CallAbandoned, CallbackRequested, CallOverflowed)
_TERMINAL = {
    "call.answered": ANSWERED,
    "call.abandoned": ABANDONED,
    "call.callback_requested": CALLBACK,
    "call.overflowed": OVERFLOWED,
}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class WindowMetrics:
    """The windowed numbers of contract 4 for one queue and one window."""

    arrivals: int
    answered: int
    answered_within_target: int
    short_abandoned: int
    abandoned: int
    callbacks: int
    overflowed: int
    offered: int
    answer_rate: float | None
    answer_rate_live: float | None
    abandon_rate: float | None
    asa_s: float | None
    aht_s: float | None

    def as_json(self) -> dict[str, int | float | None]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AgentCounts:
    available: int = 0
    busy: int = 0
    wrap_up: int = 0
    not_ready: int = 0
    staffed: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class QueueStats:
    """Everything the engine knows of one queue at `now`."""

    queue_id: str
    now: float
    windows: dict[int, WindowMetrics]
    waiting: int
    waiting_over_target: int
    longest_wait_s: float
    agents: AgentCounts
    surge_arrivals: int  # arrivals in (now - surge_window_s, now]
    baseline_arrivals: int | None  # arrivals in the hour before, None until observed
    settings: QueueSettings
    patience_s: float | None = None  # primary window: time spent waiting per abandonment
    # contract 5, per window W of `surge_windows_s`: (arrivals in (now - W, now], arrivals
    # in the hour before that window, or None while this queue has not been seen that long)
    surge_counts: dict[int, tuple[int, int | None]] = field(default_factory=dict)


@dataclass
class Agent:
    """The latest known state and skills of one agent (latest by event time)."""

    agent_id: str
    state: str | None = None
    reason: str | None = None
    state_ts: float = -math.inf
    skills: dict[str, int] = field(default_factory=dict)
    serving: frozenset[str] = frozenset()
    skills_ts: float = -math.inf
    pool: str = "regular"  # contract 1: who may call the agent in (section 6)


@dataclass
class _Open:
    queued_ts: float
    closed_ts: float = math.inf


class Engine:
    """Rolling call metrics for every queue, exact under duplicates and disorder."""

    def __init__(
        self,
        settings: Callable[[str], QueueSettings] | None = None,
        grace_s: float = 300.0,
    ) -> None:
        self.settings_for = settings or (lambda _q: DEFAULT_QUEUE_SETTINGS)
        self.grace_s = grace_s
        self.log = EventLog()
        self.queue_ids: list[str] = []
        self._qindex: dict[str, int] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self._queued_ts: dict[tuple[int, str], float] = {}
        self._unresolved: dict[tuple[int, str], list[tuple[float, int]]] = {}
        self._open: list[dict[str, _Open]] = []
        self._closed_early: list[dict[str, float]] = []
        self.agents: dict[str, Agent] = {}
        self.horizon = -math.inf  # the latest `now` computed at; older events are cut off
        self.first_ts = math.inf  # the earliest event time observed
        # per queue: the earliest call event time seen ("seen the baseline hour" is per queue)
        self._first_seen: list[float] = []
        self._last_prune = -math.inf
        self.skipped_old = 0
        self._retention = self.retention_s()

    # ---- input ---------------------------------------------------------------

    def retention_s(self) -> float:
        """How far back events matter: the longest window or baseline span, plus grace."""
        longest = max(
            max(s.windows_s + [max(s.surge_windows_s + [s.surge_window_s]) + BASELINE_S])
            for s in [DEFAULT_QUEUE_SETTINGS, *map(self.settings_for, self.queue_ids)]
        )
        return float(longest) + self.grace_s

    def queue_index(self, queue_id: str) -> int:
        index = self._qindex.get(queue_id)
        if index is None:  # a queue seen for the first time
            index = len(self.queue_ids)
            self._qindex[queue_id] = index
            self.queue_ids.append(queue_id)
            self._open.append({})
            self._closed_early.append({})
            self._first_seen.append(math.inf)
        return index

    def add(self, event: CallEvent | AgentEvent) -> bool:
        """Count one event; False when it was seen before (by source and event_id)."""
        key = (event.source or "", event.event_id)
        if key in self._seen:
            return False
        ts = event.ts.timestamp()
        if ts <= self.horizon - self._retention:
            self.skipped_old += 1
            return False
        self._seen[key] = ts
        if ts < self.first_ts:
            self.first_ts = ts
        if isinstance(event, _AGENT_EVENTS):
            self._add_agent(event, ts)
        else:
            self._add_call(event, ts)
        return True

    def add_many(self, events: Iterable[CallEvent | AgentEvent]) -> int:
        return sum(self.add(e) for e in events)

    def _add_agent(self, event: AgentStateChanged | AgentSkillsChanged, ts: float) -> None:
        agent = self.agents.get(event.agent_id)
        if agent is None:
            agent = self.agents[event.agent_id] = Agent(event.agent_id)
        if isinstance(event, AgentStateChanged):
            if ts >= agent.state_ts:
                agent.state, agent.reason, agent.state_ts = event.state, event.reason, ts
        elif ts >= agent.skills_ts:
            agent.skills = {s.queue_id: s.level for s in event.skills}
            agent.serving = event.serving_queues()
            agent.skills_ts = ts
            agent.pool = event.pool
            for queue_id in agent.serving | agent.skills.keys():
                self.queue_index(queue_id)

    def _add_call(self, event: CallEvent, ts: float) -> None:
        q = self.queue_index(event.queue_id)
        if ts < self._first_seen[q]:
            self._first_seen[q] = ts
        if isinstance(event, CallQueued):
            self._queued(q, event.call_id, ts)
            self.log.append(ts, q, QUEUED, math.nan, math.nan)
            return
        if isinstance(event, CallEnded):
            handle = event.talk_s + event.hold_s + event.wrap_s
            self.log.append(ts, q, ENDED, math.nan, handle)
            return
        if not isinstance(event, _TERMINAL_EVENTS):
            raise TypeError(f"not a call event: {event.type}")
        kind = _TERMINAL[event.type]
        wait = event.wait_s
        queued = self._queued_ts.get((q, event.call_id))
        if wait is None and queued is not None:
            wait = max(0.0, ts - queued)  # contract 1: ts minus the call's call.queued
        seq = self.log.append(ts, q, kind, math.nan if wait is None else wait, math.nan)
        if wait is None:
            self._unresolved.setdefault((q, event.call_id), []).append((ts, seq))
        self._close(q, event.call_id, ts)

    def _queued(self, q: int, call_id: str, ts: float) -> None:
        key = (q, call_id)
        if key not in self._queued_ts or ts < self._queued_ts[key]:
            self._queued_ts[key] = ts
        for event_ts, seq in self._unresolved.pop(key, []):
            self.log.set_wait(event_ts, seq, max(0.0, event_ts - ts))
        closed = self._closed_early[q].pop(call_id, math.inf)
        if closed <= self.horizon:
            return
        current = self._open[q].get(call_id)
        if current is None or ts < current.queued_ts:
            self._open[q][call_id] = _Open(ts, closed)

    def _close(self, q: int, call_id: str, ts: float) -> None:
        entry = self._open[q].get(call_id)
        if entry is None:
            previous = self._closed_early[q].get(call_id, math.inf)
            self._closed_early[q][call_id] = min(previous, ts)
            return
        entry.closed_ts = min(entry.closed_ts, ts)
        if entry.closed_ts <= self.horizon:
            del self._open[q][call_id]

    # ---- output --------------------------------------------------------------

    def compute(self, now: float) -> dict[str, QueueStats]:
        """Every number of contract 4 for every known queue at `now`."""
        self.horizon = max(self.horizon, now)
        self._retention = self.retention_s()
        self.log.flush()
        nq = len(self.queue_ids)
        settings = [self.settings_for(q) for q in self.queue_ids]
        sl = np.array([s.sl_threshold_s for s in settings], np.float64)
        short = np.array([s.short_abandon_s for s in settings], np.float64)
        spans = sorted({w for s in settings for w in s.windows_s})
        by_window = {w: t.rows() for w, t in self._window_totals(now, spans, nq, sl, short).items()}
        surge = self._arrivals_between(settings, now, lambda s: (now - s.surge_window_s, now))
        baseline = self._arrivals_between(
            settings,
            now,
            lambda s: (now - s.surge_window_s - BASELINE_S, now - s.surge_window_s),
        )
        surge_counts = self._surge_counts(settings, now)
        agents = self._agent_counts()
        out: dict[str, QueueStats] = {}
        for i, queue_id in enumerate(self.queue_ids):
            s = settings[i]
            waiting, over, longest = self._waiting(i, now, s.sl_threshold_s)
            covered = self._first_seen[i] <= now - s.surge_window_s - BASELINE_S
            out[queue_id] = QueueStats(
                queue_id=queue_id,
                now=now,
                windows={w: _metrics(by_window[w], i, over) for w in s.windows_s},
                waiting=waiting,
                waiting_over_target=over,
                longest_wait_s=longest,
                agents=agents.get(queue_id, AgentCounts()),
                surge_arrivals=surge[i],
                baseline_arrivals=baseline[i] if covered else None,
                settings=s,
                patience_s=_patience(by_window[s.primary_window_s], i),
                surge_counts=surge_counts[i],
            )
        return out

    def _surge_counts(
        self, settings: list[QueueSettings], now: float
    ) -> list[dict[int, tuple[int, int | None]]]:
        """contract 5: arrivals per surge window, and in the hour before each window."""
        out: list[dict[int, tuple[int, int | None]]] = [{} for _ in settings]
        for w in sorted({w for s in settings for w in s.surge_windows_s}):
            recent = self._arrivals_between(settings, now, _fixed(now - w, now))
            before = self._arrivals_between(settings, now, _fixed(now - w - BASELINE_S, now - w))
            for i, s in enumerate(settings):
                if w in s.surge_windows_s:
                    seen = self._first_seen[i] <= now - w - BASELINE_S
                    out[i][w] = (recent[i], before[i] if seen else None)
        return out

    def _window_totals(
        self, now: float, spans: list[int], nq: int, sl: np.ndarray, short: np.ndarray
    ) -> dict[int, Totals]:
        """Totals for each window size, summed from disjoint slices (one pass in all)."""
        hi = self.log.index(now)
        out: dict[int, Totals] = {}
        running: Totals | None = None
        for w in spans:  # ascending: each window adds the slice beyond the previous one
            lo = self.log.index(now - w)
            part = self.log.totals(lo, hi, nq, sl, short)
            running = part if running is None else running + part
            out[w] = running
            hi = lo
        return out

    def _arrivals_between(
        self,
        settings: list[QueueSettings],
        now: float,
        span: Callable[[QueueSettings], tuple[float, float]],
    ) -> list[int]:
        """Arrivals per queue in (a, b], where (a, b) depends on the queue's settings."""
        groups: dict[tuple[float, float], list[int]] = {}
        for i, s in enumerate(settings):
            groups.setdefault(span(s), []).append(i)
        out = [0] * len(settings)
        for (a, b), members in groups.items():
            lo, hi = self.log.index(a), self.log.index(b)
            mask = self.log.kind[lo:hi] == QUEUED
            counts = np.bincount(self.log.queue[lo:hi][mask], minlength=len(settings))
            for i in members:
                out[i] = int(counts[i])
        return out

    def _waiting(self, q: int, now: float, threshold: float) -> tuple[int, int, float]:
        """Calls waiting at `now`, those waiting over the target, and the longest wait."""
        open_calls = self._open[q]
        waiting = over = 0
        earliest = math.inf
        for call_id in [c for c, e in open_calls.items() if e.closed_ts <= now]:
            del open_calls[call_id]
        for entry in open_calls.values():
            if entry.queued_ts <= now:
                waiting += 1
                if now - entry.queued_ts > threshold:
                    over += 1
                earliest = min(earliest, entry.queued_ts)
        return waiting, over, (now - earliest) if waiting else 0.0

    def _agent_counts(self) -> dict[str, AgentCounts]:
        counts: dict[str, dict[str, int]] = {}
        for agent in self.agents.values():
            if agent.state is None:
                continue
            for queue_id in agent.serving:
                c = counts.setdefault(queue_id, dict.fromkeys((*AGENT_STATES, "staffed"), 0))
                if agent.state != "offline":
                    c["staffed"] += 1
                    c[agent.state] += 1
        return {q: AgentCounts(**c) for q, c in counts.items()}

    # ---- memory --------------------------------------------------------------

    def prune(self, now: float, every_s: float = 30.0) -> None:
        """Forget what can no longer change any number at or after `now`."""
        if now - self._last_prune < every_s:
            return
        self._last_prune = now
        cutoff = now - self.retention_s()
        self.log.drop_before(cutoff)
        self._seen = {k: t for k, t in self._seen.items() if t > cutoff}
        self._queued_ts = {k: t for k, t in self._queued_ts.items() if t > cutoff}
        self._unresolved = {
            k: v for k, v in self._unresolved.items() if any(t > cutoff for t, _ in v)
        }
        for q in range(len(self.queue_ids)):
            self._open[q] = {c: e for c, e in self._open[q].items() if e.queued_ts > cutoff}
            self._closed_early[q] = {c: t for c, t in self._closed_early[q].items() if t > cutoff}


def _fixed(a: float, b: float) -> Callable[[QueueSettings], tuple[float, float]]:
    """The same span (a, b] for every queue."""
    return lambda _s: (a, b)


def _patience(t: TotalsRows, i: int) -> float | None:
    """Exponential patience: total time callers waited over the number who gave up."""
    return estimate_patience(t.counts[i][ABANDONED], t.exposure_sum[i])


def _metrics(t: TotalsRows, i: int, waiting_over_target: int) -> WindowMetrics:
    counts = t.counts[i]
    answered = counts[ANSWERED]
    short = t.short_abandoned[i]
    abandoned = counts[ABANDONED] - short
    offered = answered + abandoned
    within = t.within_target[i]
    known = t.answered_known[i]
    ended = counts[ENDED]
    return WindowMetrics(
        arrivals=counts[QUEUED],
        answered=answered,
        answered_within_target=within,
        short_abandoned=short,
        abandoned=abandoned,
        callbacks=counts[CALLBACK],
        overflowed=counts[OVERFLOWED],
        offered=offered,
        answer_rate=_ratio(within, offered),
        answer_rate_live=_ratio(within, offered + waiting_over_target),
        abandon_rate=_ratio(abandoned, offered),
        asa_s=t.wait_sum[i] / known if known else None,
        aht_s=t.handle_sum[i] / ended if ended else None,
    )
