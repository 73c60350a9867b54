"""The metric engine (contract 4): events in, per-queue numbers out, time passed in.

Pure: no clock, no I/O. `add` takes validated events in any order and any number of
times; `compute(now)` returns every number of contract section 4 for every queue, with
the primary window's breakdowns by site, priority and channel; `centre` sums them.
`now` must not go backwards between calls (it never does, live or in replay).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.core.columns import (
    ABANDONED,
    ANSWERED,
    CALLBACK,
    CB_CONNECTED,
    CB_OTHER,
    CHANNEL_SHIFT,
    CHANNELS,
    DEFAULT_ATTRS,
    ENDED,
    I64,
    OVERFLOWED,
    PRIORITIES,
    QUEUED,
    SITE_SHIFT,
    UNKNOWN_SITE,
    EventLog,
    Params,
    Totals,
    TotalsRows,
    unpack,
)
from shared.core.erlang import estimate_patience
from shared.events import (
    AgentEvent,
    AgentSkillsChanged,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallbackCompleted,
    CallbackRequested,
    CallEnded,
    CallEvent,
    CallOverflowed,
    CallQueued,
)
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings

log = logging.getLogger(__name__)
BASELINE_S = 3600.0  # contract 5: the baseline is the hour before the surge window
AGENT_STATES = ("available", "busy", "wrap_up", "not_ready")
_TERMINAL = {
    "call.answered": ANSWERED,
    "call.abandoned": ABANDONED,
    "call.callback_requested": CALLBACK,
    "call.overflowed": OVERFLOWED,
}
_CHANNEL_BITS = {name: i << CHANNEL_SHIFT for i, name in enumerate(CHANNELS)}
_PRIORITY_KEYS = tuple(str(p) for p in range(PRIORITIES))
Attrs = int  # a call's priority, channel and site index (contract 1), `pack`ed
_DEFAULT_ATTRS: Attrs = DEFAULT_ATTRS


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


WINDOW_FIELDS = (
    "arrivals", "answered", "answered_within_target", "short_abandoned", "abandoned",
    "callbacks", "overflowed", "flowouts", "offered", "answer_rate", "answer_rate_live",
    "abandon_rate", "asa_s", "aht_s", "callbacks_completed", "callback_rate",
)  # fmt: skip


_window_values = attrgetter(*WINDOW_FIELDS)


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """The windowed numbers of contract 4 for one queue (or key, or centre) and window."""

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
    flowouts: int = 0
    callbacks_completed: int = 0
    callback_rate: float | None = None
    # the sums behind the rates, so that figures of several queues add up (contract 4)
    answered_known: int = 0
    wait_sum: float = 0.0
    ended: int = 0
    handle_sum: float = 0.0
    callbacks_closed: int = 0  # every call.callback_completed, whatever its outcome
    callbacks_on_time: int = 0
    over_target: int = 0  # the calls waiting over target that answer_rate_live counts

    def as_json(self) -> dict[str, int | float | None]:
        """The contract's fields (not the sums behind them)."""
        return dict(zip(WINDOW_FIELDS, _window_values(self), strict=True))

    def __add__(self, o: WindowMetrics) -> WindowMetrics:
        """The figures of both, rates recomputed from the sums."""
        return _window(
            self.arrivals + o.arrivals, self.answered + o.answered,
            self.answered_within_target + o.answered_within_target,
            self.short_abandoned + o.short_abandoned, self.abandoned + o.abandoned,
            self.callbacks + o.callbacks, self.overflowed + o.overflowed,
            self.offered + o.offered, self.callbacks_completed + o.callbacks_completed,
            self.callbacks_closed + o.callbacks_closed,
            self.callbacks_on_time + o.callbacks_on_time,
            self.answered_known + o.answered_known, self.wait_sum + o.wait_sum,
            self.ended + o.ended, self.handle_sum + o.handle_sum,
            self.over_target + o.over_target,
        )  # fmt: skip


def _window(
    arrivals: int, answered: int, within: int, short: int, abandoned: int, callbacks: int,
    overflowed: int, offered: int, completed: int, closed: int, on_time: int, known: int,
    wait_sum: float, ended: int, handle_sum: float, over: int,
) -> WindowMetrics:  # fmt: skip
    """contract 4: every rate of a window from its counts and sums."""
    return WindowMetrics(
        arrivals, answered, within, short, abandoned, callbacks, overflowed, offered,
        _ratio(within, offered),  # contract 4: answer_rate
        _ratio(within, offered + over),  # contract 4: answer_rate_live
        _ratio(abandoned, offered),
        wait_sum / known if known else None,
        handle_sum / ended if ended else None,
        callbacks + overflowed,  # contract 4: flowouts
        completed,
        _ratio(on_time, closed),  # contract 4: callback_rate
        known, wait_sum, ended, handle_sum, closed, on_time, over,
    )  # fmt: skip


def window_metrics(t: TotalsRows, i: int, over: int, miss: bool) -> WindowMetrics:
    """`_window` of row `i`, inlined: it runs for every queue, window and key each tick."""
    arrivals, answered, abandoned, callbacks, overflowed, ended, connected, other = t.counts[i]
    short = t.short_abandoned[i]
    abandoned -= short
    flowouts = callbacks + overflowed
    # contract 4: offered counts flow-outs as misses under sl_flowouts "miss"
    offered = answered + abandoned + flowouts if miss else answered + abandoned
    within = t.within_target[i]
    known = t.answered_known[i]
    closed = connected + other
    on_time = t.callbacks_on_time[i]
    live = offered + over
    return WindowMetrics(
        arrivals, answered, within, short, abandoned, callbacks, overflowed, offered,
        within / offered if offered else None,
        within / live if live else None,
        abandoned / offered if offered else None,
        t.wait_sum[i] / known if known else None,
        t.handle_sum[i] / ended if ended else None,
        flowouts, connected, on_time / closed if closed else None,
        known, t.wait_sum[i], ended, t.handle_sum[i], closed, on_time, over,
    )  # fmt: skip


EMPTY_WINDOW = _window(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0.0, 0)


@dataclass(frozen=True)
class AgentCounts:
    available: int = 0
    busy: int = 0
    wrap_up: int = 0
    not_ready: int = 0
    staffed: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(self.__dict__)


def count_agents(agents: Iterable[Agent]) -> AgentCounts:
    """contract 4: agents by state; `staffed` is all but offline."""
    c = dict.fromkeys((*AGENT_STATES, "staffed"), 0)
    for agent in agents:
        if agent.state is not None and agent.state != "offline":
            c["staffed"] += 1
            c[agent.state] += 1
    return AgentCounts(**c)


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One key of a breakdown (contract 4): the primary window and point-in-time figures."""

    window: WindowMetrics
    waiting: int = 0
    waiting_over_target: int = 0
    longest_wait_s: float = 0.0
    callbacks_pending: int = 0
    oldest_callback_s: float = 0.0
    agents: AgentCounts | None = None  # by site only: agents by their own site

    def __add__(self, o: Breakdown) -> Breakdown:
        return Breakdown(
            self.window + o.window,
            self.waiting + o.waiting,
            self.waiting_over_target + o.waiting_over_target,
            max(self.longest_wait_s, o.longest_wait_s),
            self.callbacks_pending + o.callbacks_pending,
            max(self.oldest_callback_s, o.oldest_callback_s),
        )


@dataclass(frozen=True, slots=True)
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
    callbacks_pending: int = 0
    oldest_callback_s: float = 0.0
    callbacks_expired: int = 0
    breakdowns: BreakdownTable | None = None  # this queue's is row `index` of the table
    index: int = 0

    @property
    def by_priority(self) -> dict[str, Breakdown]:
        return self.breakdowns.queue(self.index)[0] if self.breakdowns else {}

    @property
    def by_channel(self) -> dict[str, Breakdown]:
        return self.breakdowns.queue(self.index)[1] if self.breakdowns else {}

    @property
    def by_site(self) -> dict[str, Breakdown]:
        return self.breakdowns.queue(self.index)[2] if self.breakdowns else {}


@dataclass(frozen=True)
class CentreStats:
    """contract 4: the centre totals (`GET /v1/centre`) and the same per site."""

    now: float
    queues: int
    windows: dict[int, WindowMetrics]  # each window size summed over the queues that have it
    totals: Breakdown  # each queue's primary window and point-in-time figures, agents once
    by_site: dict[str, Breakdown]
    callbacks_expired: int = 0


def centre(now: float, stats: Iterable[QueueStats], agents: Iterable[Agent]) -> CentreStats:
    """Every queue's figures summed, rates recomputed from the sums; an agent counts once
    however many of these queues it serves, in the centre and at its own site."""
    windows: dict[int, WindowMetrics] = {}
    total = Breakdown(EMPTY_WINDOW)
    sites: dict[str, Breakdown] = {}
    queue_ids: set[str] = set()
    expired = 0
    for st in stats:
        queue_ids.add(st.queue_id)
        expired += st.callbacks_expired
        for w, m in st.windows.items():
            windows[w] = windows[w] + m if w in windows else m
        total = total + Breakdown(
            st.windows[st.settings.primary_window_s], st.waiting, st.waiting_over_target,
            st.longest_wait_s, st.callbacks_pending, st.oldest_callback_s,
        )  # fmt: skip
        for site, b in st.by_site.items():
            sites[site] = sites[site] + b if site in sites else b
    serving = [a for a in agents if a.serving & queue_ids]
    per_site: dict[str, list[Agent]] = {}
    for a in serving:
        per_site.setdefault(a.site or "unknown", []).append(a)
    return CentreStats(
        now=now,
        queues=len(queue_ids),
        windows=dict(sorted(windows.items())),
        totals=replace(total, agents=count_agents(serving)),
        by_site={
            site: replace(b, agents=count_agents(per_site.get(site, [])))
            for site, b in sorted(sites.items())
        },
        callbacks_expired=expired,
    )


@dataclass
class Agent:
    """The latest known state, skills and site of one agent (latest by event time)."""

    agent_id: str
    state: str | None = None
    reason: str | None = None
    state_ts: float = -math.inf
    skills: dict[str, int] = field(default_factory=dict)
    serving: frozenset[str] = frozenset()
    skills_ts: float = -math.inf
    site: str | None = None  # contract 4: the site its own events name
    site_ts: float = -math.inf
    pool: str = "regular"  # contract 1: who may call the agent in (section 6)


@dataclass(slots=True)
class _Open:
    queued_ts: float
    attrs: Attrs
    closed_ts: float = math.inf


@dataclass(slots=True)
class _Callback:
    requested_ts: float
    attrs: Attrs
    done_ts: float = math.inf


class _Spot:
    """Point-in-time figures of one breakdown key, accumulated call by call."""

    __slots__ = ("earliest", "earliest_cb", "over", "pending", "waiting")

    def __init__(self) -> None:
        self.waiting = self.over = self.pending = 0
        self.earliest = self.earliest_cb = math.inf


_NO_SPOT = _Spot()
_NO_AGENTS = AgentCounts()
_NONE: dict[str, AgentCounts] = {}
_NOTHING: tuple[_Spot, list[dict[int, _Spot]], int] = (_NO_SPOT, [{}, {}, {}], 0)  # read only


class Engine:
    """Rolling call metrics for every queue, exact under duplicates and disorder."""

    def __init__(
        self,
        settings: Callable[[str], QueueSettings] | None = None,
        grace_s: float = 300.0,
        max_events: int | None = None,
    ) -> None:
        self.settings_for = settings or (lambda _q: DEFAULT_QUEUE_SETTINGS)
        self.grace_s = grace_s
        # the most events held (None: no cap); `prune` forgets the oldest beyond it
        self.max_events = max_events
        self.capped_events = 0  # events forgotten because of the cap (a counter to export)
        self.floor = -math.inf  # the cap forgot everything at or before this time
        self._cap_logged = -math.inf
        self.log = EventLog()
        self.queue_ids: list[str] = []
        self._qindex: dict[str, int] = {}
        self.site_ids: list[str] = ["unknown"]  # contract 4: calls of unknown site
        self._sindex: dict[str, int] = {"unknown": UNKNOWN_SITE}
        # dedup by (source, event_id), or by event_id alone when there is no source (a
        # string key never equals a tuple key, and costs 56 bytes less an event)
        self._seen: dict[str | tuple[str, str], float] = {}
        # per (queue, call): the earliest call.queued time and the call's attributes
        self._calls: dict[tuple[int, str], tuple[float, Attrs]] = {}
        # events waiting for their call.queued: (ts, seq, whether the wait is unknown)
        self._unresolved: dict[tuple[int, str], list[tuple[float, int, bool]]] = {}
        # callback completions waiting for their request (to derive their wait)
        self._cb_unresolved: dict[tuple[int, str], list[tuple[float, int]]] = {}
        self._open: list[dict[str, _Open]] = []
        self._closed_early: list[dict[str, float]] = []
        self._callbacks: list[dict[str, _Callback]] = []
        self._cb_done_early: list[dict[str, float]] = []
        self.agents: dict[str, Agent] = {}
        self.horizon = -math.inf  # the latest `now` computed at; older events are cut off
        self.first_ts = math.inf  # the earliest event time observed
        # per queue: the earliest call event time seen ("seen the baseline hour" is per queue)
        self._first_seen: list[float] = []
        self._last_prune = -math.inf
        self.skipped_old = 0
        self._params: dict[int, tuple[QueueSettings, tuple[float, ...]]] = {}
        self._retention = self.retention_s()
        self._arrivals_at: tuple[int, int, int] = (0, 0, -1)
        self._memo: dict[tuple[int | float | bool, ...], WindowMetrics] = {}
        self._arrivals_cache = (np.empty(0, np.float64), np.empty(0, np.int32))

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
            self._callbacks.append({})
            self._cb_done_early.append({})
            self._first_seen.append(math.inf)
        return index

    def site_index(self, site: str | None) -> int:
        if site is None:
            return UNKNOWN_SITE
        index = self._sindex.get(site)
        if index is None:
            index = self._sindex[site] = len(self.site_ids)
            self.site_ids.append(site)
        return index

    def add(self, event: CallEvent | AgentEvent) -> bool:
        """Count one event; False when it was seen before (by source and event_id)."""
        source = event.source
        key = (source, event.event_id) if source else event.event_id
        seen = self._seen
        if key in seen:
            return False
        ts = event.ts.timestamp()
        if ts <= self.horizon - self._retention or ts <= self.floor:
            self.skipped_old += 1
            return False
        seen[key] = ts
        if ts < self.first_ts:
            self.first_ts = ts
        # one dict lookup by class rather than a chain of isinstance checks
        handler = _HANDLERS.get(event.__class__)
        if handler is None:
            raise TypeError(f"not an event: {event.type}")
        handler(self, event, ts)
        return True

    def add_many(self, events: Iterable[CallEvent | AgentEvent]) -> int:
        """Count these events in order (as `add` each); how many were new."""
        add = self.add
        return sum([add(e) for e in events])

    def _add_agent(self, event: AgentStateChanged | AgentSkillsChanged, ts: float) -> None:
        agent = self.agents.get(event.agent_id)
        if agent is None:
            agent = self.agents[event.agent_id] = Agent(event.agent_id)
        if event.site is not None and ts >= agent.site_ts:
            agent.site, agent.site_ts = event.site, ts
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

    def _call_queue(self, queue_id: str, ts: float) -> int:
        """The queue's index; its earliest call event time updated."""
        q = self._qindex.get(queue_id)
        if q is None:
            q = self.queue_index(queue_id)
        if ts < self._first_seen[q]:
            self._first_seen[q] = ts
        return q

    def _add_queued(self, event: CallQueued, ts: float) -> None:
        q = self._qindex.get(event.queue_id)
        if q is None:
            q = self.queue_index(event.queue_id)
        if ts < self._first_seen[q]:
            self._first_seen[q] = ts
        site = event.site
        attrs = event.priority | _CHANNEL_BITS[event.channel]
        if site is not None:
            attrs |= self.site_index(site) << SITE_SHIFT
        self.log.append(ts, q, QUEUED, math.nan, math.nan, attrs)
        self._queued(q, event.call_id, ts, attrs)

    def _add_terminal(
        self, event: CallAnswered | CallAbandoned | CallbackRequested | CallOverflowed, ts: float
    ) -> None:
        q = self._qindex.get(event.queue_id)
        if q is None:
            q = self.queue_index(event.queue_id)
        if ts < self._first_seen[q]:
            self._first_seen[q] = ts
        call_id = event.call_id
        key = (q, call_id)
        call = self._calls.get(key)
        kind = _TERMINAL[event.type]
        wait = event.wait_s
        if call is None:
            attrs = _DEFAULT_ATTRS
        else:
            attrs = call[1]
            if wait is None:
                wait = max(0.0, ts - call[0])  # contract 1: ts minus the call's call.queued
        seq = self.log.append(ts, q, kind, math.nan if wait is None else wait, math.nan, attrs)
        if call is None:
            self._unresolved.setdefault(key, []).append((ts, seq, wait is None))
        entry = self._open[q].get(call_id)  # the call stops waiting (`_close`, inlined)
        if entry is None:
            self._close(q, call_id, ts)
        else:
            if ts < entry.closed_ts:
                entry.closed_ts = ts
            if entry.closed_ts <= self.horizon:
                del self._open[q][call_id]
        if kind == CALLBACK:
            self._callback_requested(q, call_id, ts)

    def _add_ended(self, event: CallEnded, ts: float) -> None:
        q = self._call_queue(event.queue_id, ts)
        key = (q, event.call_id)
        call = self._calls.get(key)
        handle = event.talk_s + event.hold_s + event.wrap_s
        seq = self.log.append(
            ts, q, ENDED, math.nan, handle, _DEFAULT_ATTRS if call is None else call[1]
        )
        if call is None:
            self._unresolved.setdefault(key, []).append((ts, seq, False))

    def _add_completed(self, event: CallbackCompleted, ts: float) -> None:
        q = self._call_queue(event.queue_id, ts)
        self._callback_completed(q, event, ts, self._calls.get((q, event.call_id)))

    def _queued(self, q: int, call_id: str, ts: float, attrs: Attrs) -> None:
        key = (q, call_id)
        known = self._calls.get(key)
        if known is None or ts < known[0]:
            self._calls[key] = (ts, attrs)
        for event_ts, seq, unknown_wait in self._unresolved.pop(key, ()):
            if unknown_wait:
                self.log.resolve(event_ts, seq, max(0.0, event_ts - ts), attrs)
            elif attrs != _DEFAULT_ATTRS:  # the event was logged with the defaults
                self.log.resolve(event_ts, seq, None, attrs)
        callbacks = self._callbacks[q]
        if callbacks:  # a callback requested before its call.queued arrived
            callback = callbacks.get(call_id)
            if callback is not None and (known is None or ts < known[0]):
                callback.attrs = attrs
        closed = self._closed_early[q].pop(call_id, math.inf)
        if closed <= self.horizon:
            return
        current = self._open[q].get(call_id)
        if current is None or ts < current.queued_ts:
            self._open[q][call_id] = _Open(ts, attrs, closed)

    def _close(self, q: int, call_id: str, ts: float) -> None:
        entry = self._open[q].get(call_id)
        if entry is None:
            previous = self._closed_early[q].get(call_id, math.inf)
            self._closed_early[q][call_id] = min(previous, ts)
            return
        entry.closed_ts = min(entry.closed_ts, ts)
        if entry.closed_ts <= self.horizon:
            del self._open[q][call_id]

    def _callback_requested(self, q: int, call_id: str, ts: float) -> None:
        """contract 4: a callback is owed from its request until its completion."""
        done = self._cb_done_early[q].pop(call_id, math.inf)
        entry = self._callbacks[q].get(call_id)
        if entry is None:
            call = self._calls.get((q, call_id))
            attrs = _DEFAULT_ATTRS if call is None else call[1]
            self._callbacks[q][call_id] = _Callback(ts, attrs, done)
        else:
            entry.requested_ts = min(entry.requested_ts, ts)
        for done_ts, seq in self._cb_unresolved.pop((q, call_id), []):
            self.log.resolve(done_ts, seq, max(0.0, done_ts - ts), None)

    def _callback_completed(
        self, q: int, event: CallbackCompleted, ts: float, call: tuple[float, Attrs] | None
    ) -> None:
        """contract 4: a callback made or given up; its wait runs from the request."""
        kind = CB_CONNECTED if event.outcome == "connected" else CB_OTHER
        entry = self._callbacks[q].get(event.call_id)
        wait = event.wait_s
        if wait is None and entry is not None:
            wait = max(0.0, ts - entry.requested_ts)
        if call is not None:
            attrs = call[1]
        elif entry is not None:  # the call.queued may be long forgotten: the request is not
            attrs = entry.attrs
        else:
            attrs = _DEFAULT_ATTRS
        seq = self.log.append(ts, q, kind, math.nan if wait is None else wait, math.nan, attrs)
        if call is None:  # its call.queued may still come
            self._unresolved.setdefault((q, event.call_id), []).append((ts, seq, False))
        if wait is None:
            self._cb_unresolved.setdefault((q, event.call_id), []).append((ts, seq))
        if entry is None:
            early = self._cb_done_early[q].get(event.call_id, math.inf)
            self._cb_done_early[q][event.call_id] = min(early, ts)
        else:
            entry.done_ts = min(entry.done_ts, ts)

    # ---- output --------------------------------------------------------------

    def compute(self, now: float) -> dict[str, QueueStats]:
        """Every number of contract 4 for every known queue at `now`."""
        self.horizon = max(self.horizon, now)
        self._retention = self.retention_s()
        self.log.flush()
        nq = len(self.queue_ids)
        settings = [self.settings_for(q) for q in self.queue_ids]
        params = self.param_arrays(settings)
        spans = sorted({w for s in settings for w in s.windows_s})
        by_window = {w: t.rows() for w, t in self._window_totals(now, spans, nq, params).items()}
        surge = self._arrivals_between(settings, now, lambda s: (now - s.surge_window_s, now))
        baseline = self._arrivals_between(
            settings,
            now,
            lambda s: (now - s.surge_window_s - BASELINE_S, now - s.surge_window_s),
        )
        surge_counts = self._surge_counts(settings, now)
        agents, site_agents = self._agent_counts()
        spots = [self._point_in_time(i, now, settings[i]) for i in range(nq)]
        # a queue's window with the same sums as at the last tick gets the same figures
        # back, not built again (`window_metrics` is a function of its sums and `over`)
        memo, self._memo = self._memo, {}
        windows: list[dict[int, WindowMetrics]] = []
        for i, s in enumerate(settings):
            over, miss = spots[i][0].over, s.sl_flowouts == "miss"
            figures = {}
            for w in s.windows_s:
                t = by_window[w]
                key = (
                    *t.counts[i], t.within_target[i], t.short_abandoned[i],
                    t.answered_known[i], t.wait_sum[i], t.handle_sum[i],
                    t.callbacks_on_time[i], over, miss,
                )  # fmt: skip
                m = memo.get(key)
                if m is None:
                    m = window_metrics(t, i, over, miss)
                figures[w] = self._memo[key] = m
            windows.append(figures)
        primary = [windows[i][s.primary_window_s] for i, s in enumerate(settings)]
        table = BreakdownTable(
            now, (_PRIORITY_KEYS, CHANNELS, self.site_ids), spots, site_agents, self.queue_ids,
            primary, [s.sl_flowouts == "miss" for s in settings],
        )  # fmt: skip
        self._breakdown_sums(table, now, settings, params)
        out: dict[str, QueueStats] = {}
        for i, queue_id in enumerate(self.queue_ids):
            s = settings[i]
            total, _keys, expired = spots[i]
            over = total.over
            covered = self._first_seen[i] <= now - s.surge_window_s - BASELINE_S
            out[queue_id] = QueueStats(
                queue_id=queue_id,
                now=now,
                windows=windows[i],
                waiting=total.waiting,
                waiting_over_target=over,
                longest_wait_s=(now - total.earliest) if total.waiting else 0.0,
                agents=agents.get(queue_id, AgentCounts()),
                surge_arrivals=surge[i],
                baseline_arrivals=baseline[i] if covered else None,
                settings=s,
                patience_s=_patience(by_window[s.primary_window_s], i),
                surge_counts=surge_counts[i],
                callbacks_pending=total.pending,
                oldest_callback_s=(now - total.earliest_cb) if total.pending else 0.0,
                callbacks_expired=expired,
                breakdowns=table,
                index=i,
            )
        return out

    def centre(self, stats: dict[str, QueueStats]) -> CentreStats:
        """contract 4: centre totals of these queues (see `centre`)."""
        now = max((st.now for st in stats.values()), default=self.horizon)
        return centre(now, stats.values(), self.agents.values())

    def param_arrays(self, settings: list[QueueSettings]) -> Params:
        """Per-queue thresholds as arrays (each distinct settings object read once)."""
        rows = []
        for s in settings:
            cached = self._params.get(id(s))
            if cached is None or cached[0] is not s:
                row = (
                    *(s.threshold_for(p) for p in range(PRIORITIES)),
                    s.short_abandon_s,
                    s.callback_target_s,
                )
                cached = self._params[id(s)] = (s, row)
            rows.append(cached[1])
        table = np.array(rows, np.float64).reshape(len(settings), PRIORITIES + 2)
        return Params(
            sl_threshold=np.ascontiguousarray(table[:, :PRIORITIES]),
            short_abandon=np.ascontiguousarray(table[:, PRIORITIES]),
            callback_target=np.ascontiguousarray(table[:, PRIORITIES + 1]),
        )

    def _surge_counts(
        self, settings: list[QueueSettings], now: float
    ) -> list[dict[int, tuple[int, int | None]]]:
        """contract 5: arrivals per surge window, and in the hour before each window."""
        out: list[dict[int, tuple[int, int | None]]] = [{} for _ in settings]
        for w in sorted({w for s in settings for w in s.surge_windows_s}):
            recent = self._arrivals_between(settings, now, _fixed(now - w, now))
            before = self._arrivals_between(settings, now, _fixed(now - w - BASELINE_S, now - w))
            cut = now - w - BASELINE_S
            first = self._first_seen
            for i, s in enumerate(settings):
                if w in s.surge_windows_s:
                    out[i][w] = (recent[i], before[i] if first[i] <= cut else None)
        return out

    def _window_totals(self, now: float, spans: list[int], nq: int, p: Params) -> dict[int, Totals]:
        """Totals for each window size, summed from disjoint slices (one pass in all)."""
        hi = self.log.index(now)
        out: dict[int, Totals] = {}
        running: Totals | None = None
        for w in spans:  # ascending: each window adds the slice beyond the previous one
            lo = self.log.index(now - w)
            part = self.log.totals(lo, hi, nq, p)
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
        arrival_ts, arrival_queue = self._arrivals()
        for (a, b), members in groups.items():
            lo, hi = np.searchsorted(arrival_ts, (a, b), "right").tolist()
            counts = np.bincount(arrival_queue[lo:hi], minlength=len(settings)).tolist()
            if len(groups) == 1:
                return counts  # type: ignore[no-any-return]  # tolist of int64: list[int]
            for i in members:
                out[i] = counts[i]
        return out

    def _arrivals(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]:
        """The time and queue of every call.queued held, in time order (taken once a tick:
        each span's arrivals are then a slice of them, with no mask over every event)."""
        log = self.log
        if self._arrivals_at != (log.start, log.end, log.version):
            start, end = log.start, log.end
            at = np.flatnonzero(log.kind[start:end] == QUEUED) + start
            self._arrivals_cache = (log.ts[at], log.queue[at])
            self._arrivals_at = (start, end, log.version)
        return self._arrivals_cache

    def _point_in_time(
        self, q: int, now: float, s: QueueSettings
    ) -> tuple[_Spot, list[dict[int, _Spot]], int]:
        """contract 4: waiting calls and callbacks owed at `now`, for the queue and for
        each priority, channel and site; and the callbacks expired unserved."""
        open_calls = self._open[q]
        callbacks = self._callbacks[q]
        if not open_calls and not callbacks:
            return _NOTHING
        total = _Spot()
        keys: list[dict[int, _Spot]] = [{}, {}, {}]
        if open_calls:
            for call_id in [c for c, e in open_calls.items() if e.closed_ts <= now]:
                del open_calls[call_id]
            thresholds = self._params[id(s)][1]  # the per-priority targets come first
            for entry in open_calls.values():
                if entry.queued_ts > now:
                    continue
                over = now - entry.queued_ts > thresholds[entry.attrs & 3]
                for spot in _spots(total, keys, entry.attrs):
                    spot.waiting += 1
                    spot.over += over
                    spot.earliest = min(spot.earliest, entry.queued_ts)
        expired = 0
        if callbacks:
            for call_id in [c for c, e in callbacks.items() if e.done_ts <= now]:
                del callbacks[call_id]
            for cb in callbacks.values():
                if cb.requested_ts > now:
                    continue
                if now - cb.requested_ts > s.callback_expiry_s:
                    expired += 1  # contract 4: callbacks_expired
                    continue
                for spot in _spots(total, keys, cb.attrs):
                    spot.pending += 1
                    spot.earliest_cb = min(spot.earliest_cb, cb.requested_ts)
        return total, keys, expired

    def _breakdown_sums(
        self, table: BreakdownTable, now: float, settings: list[QueueSettings], p: Params
    ) -> None:
        """contract 4: the sums of by_priority, by_channel and by_site over each queue's
        primary window, for every queue at once."""
        nq = len(settings)
        primaries: dict[int, list[int]] = {}
        for i, s in enumerate(settings):
            primaries.setdefault(s.primary_window_s, []).append(i)
        hi = self.log.index(now)
        bounds = np.arange(nq + 1, dtype=np.int64)
        for w, members in primaries.items():
            lo = self.log.index(now - w)
            dims = []
            for column, groups in (
                ("prio", PRIORITIES), ("chan", len(CHANNELS)), ("site", len(self.site_ids))
            ):  # fmt: skip
                totals = self.log.totals(lo, hi, nq, p, column, groups)
                active = np.flatnonzero(totals.counts.any(axis=1))
                starts = np.searchsorted(active, bounds * groups).tolist()
                dims.append(_Dim(groups, active, totals.take(active), starts))
            for i in members:
                table.dims_of[i] = dims

    def _agent_counts(self) -> tuple[dict[str, AgentCounts], dict[str, dict[str, AgentCounts]]]:
        """Agents by state per queue they serve, and per queue and the agent's own site."""
        per_queue: dict[str, list[Agent]] = {}
        for agent in self.agents.values():
            if agent.state is None:
                continue
            for queue_id in agent.serving:
                per_queue.setdefault(queue_id, []).append(agent)
        counts = {q: count_agents(a) for q, a in per_queue.items()}
        by_site: dict[str, dict[str, AgentCounts]] = {}
        for queue_id, members in per_queue.items():
            sites: dict[str, list[Agent]] = {}
            for agent in members:
                sites.setdefault(agent.site or "unknown", []).append(agent)
            by_site[queue_id] = {site: count_agents(a) for site, a in sites.items()}
        return counts, by_site

    # ---- memory --------------------------------------------------------------

    def prune(self, now: float, every_s: float = 30.0) -> int:
        """Forget what can no longer change any number at or after `now`, and the oldest
        events beyond `max_events`; returns how many events the cap forgot."""
        dropped = self._cap(now)
        if now - self._last_prune >= every_s:
            self._last_prune = now
            self._forget(now, now - self.retention_s())
        return dropped

    def _cap(self, now: float) -> int:
        """Hold at most `max_events` events: past it, forget the oldest down to nine tenths
        of it (every event of the latest time forgotten goes too), with their dedup and
        call entries. Windows and baseline
        spans that start at or after the cut keep every number; a queue's baseline reads
        "not yet observed" (None) while its span reaches back past the cut, rather than
        an undercount that would look like a surge; events at or before the cut are
        skipped from then on (`skipped_old`), so a re-delivery is never counted twice."""
        if self.max_events is None or len(self.log) <= self.max_events:
            return 0
        # down to nine tenths of the cap: the cleanup below walks everything held, so it
        # runs at most once per tenth of the cap's worth of new events, not every tick
        cutoff = self.log.cutoff_keeping(self.max_events - self.max_events // 10)
        if cutoff is None:
            return 0
        dropped = self.log.drop_before(cutoff)
        self.capped_events += dropped
        self.floor = max(self.floor, cutoff)
        self._first_seen = [max(t, cutoff) for t in self._first_seen]
        self._forget(now, cutoff)
        if now - self._cap_logged >= 60.0:  # one line a minute while the cap bites
            self._cap_logged = now
            log.warning(
                "event cap reached: forgot %d events at or before %.0f s ago (%d in all); "
                "windows reaching further back count only what is held",
                dropped,
                now - cutoff,
                self.capped_events,
                extra={"max_events": self.max_events, "capped_events": self.capped_events},
            )
        return dropped

    def _forget(self, now: float, cutoff: float) -> None:
        """Forget events at or before `cutoff`, and the state kept for them."""
        self.log.drop_before(cutoff)
        self._seen = {k: t for k, t in self._seen.items() if t > cutoff}
        self._calls = {k: v for k, v in self._calls.items() if v[0] > cutoff}
        self._unresolved = {
            k: v for k, v in self._unresolved.items() if any(t > cutoff for t, _, _ in v)
        }
        self._cb_unresolved = {
            k: v for k, v in self._cb_unresolved.items() if any(t > cutoff for t, _ in v)
        }
        for q, queue_id in enumerate(self.queue_ids):
            self._open[q] = {c: e for c, e in self._open[q].items() if e.queued_ts > cutoff}
            self._closed_early[q] = {c: t for c, t in self._closed_early[q].items() if t > cutoff}
            self._cb_done_early[q] = {c: t for c, t in self._cb_done_early[q].items() if t > cutoff}
            # an expired callback still counts in callbacks_expired for one more expiry span
            keep = now - 2 * self.settings_for(queue_id).callback_expiry_s
            self._callbacks[q] = {
                c: e for c, e in self._callbacks[q].items() if e.requested_ts > keep
            }


# each event class's handler (`Engine.add`); a class not here is no event of contract 1
# Any: each handler takes its own classes, which the table's key guarantees
_HANDLERS: dict[type, Callable[[Engine, Any, float], None]] = {
    CallQueued: Engine._add_queued,
    CallAnswered: Engine._add_terminal,
    CallAbandoned: Engine._add_terminal,
    CallbackRequested: Engine._add_terminal,
    CallOverflowed: Engine._add_terminal,
    CallEnded: Engine._add_ended,
    CallbackCompleted: Engine._add_completed,
    AgentStateChanged: Engine._add_agent,
    AgentSkillsChanged: Engine._add_agent,
}


def _spots(total: _Spot, keys: list[dict[int, _Spot]], attrs: Attrs) -> tuple[_Spot, ...]:
    """The queue's spot and its priority, channel and site spots for a call."""
    out = [total]
    for by_key, k in zip(keys, unpack(attrs), strict=True):
        spot = by_key.get(k)
        if spot is None:
            spot = by_key[k] = _Spot()
        out.append(spot)
    return tuple(out)


def _breakdown(
    now: float, window: WindowMetrics, spot: _Spot, agents: AgentCounts | None
) -> Breakdown:
    return Breakdown(
        window,
        spot.waiting,
        spot.over,
        (now - spot.earliest) if spot.waiting else 0.0,
        spot.pending,
        (now - spot.earliest_cb) if spot.pending else 0.0,
        agents,
    )


class _Dim:
    """One breakdown's sums: the rows (queue * groups + key) with any event, in order."""

    def __init__(self, groups: int, active: I64, sums: Totals, starts: list[int]) -> None:
        self.groups = groups
        self.active = active
        self.sums = sums  # row j is the row active[j]
        self.starts = starts  # queue q's rows are active[starts[q]:starts[q + 1]]
        self._rows: TotalsRows | None = None

    def rows(self) -> TotalsRows:
        """The sums as lists, converted once (a tick that reads one queue reads them all)."""
        if self._rows is None:
            self._rows = self.sums.rows()
        return self._rows


class BreakdownTable:
    """The primary window's breakdowns of every queue at one `now` (contract 4).

    The tick takes the sums for all queues at once (numpy); the figures of one queue are
    built the first time they are read, then kept: the numbers never change.
    """

    def __init__(
        self,
        now: float,
        names: tuple[Sequence[str], Sequence[str], Sequence[str]],
        spots: list[tuple[_Spot, list[dict[int, _Spot]], int]],
        site_agents: dict[str, dict[str, AgentCounts]],
        queue_ids: list[str],
        primary: list[WindowMetrics],
        miss: list[bool],
    ) -> None:
        self.now = now
        self.names = names
        self.spots = spots
        self.site_agents = site_agents
        self.queue_ids = queue_ids
        self.primary = primary
        self.miss = miss
        self.dims_of: list[list[_Dim]] = [[] for _ in queue_ids]
        self._built: dict[int, tuple[dict[str, Breakdown], ...]] = {}

    def queue(self, q: int) -> tuple[dict[str, Breakdown], ...]:
        """by_priority, by_channel and by_site of queue index `q`; a key with no event in
        the window and nothing waiting or owed is left out."""
        built = self._built.get(q)
        if built is None:
            built = self._built[q] = tuple(self._build(q, dim) for dim in range(3))
        return built

    def _build(self, q: int, dim: int) -> dict[str, Breakdown]:
        now, names = self.now, self.names[dim]
        d = self.dims_of[q][dim]
        total, keys, _expired = self.spots[q]
        by_key = keys[dim]
        at_site = self.site_agents.get(self.queue_ids[q], _NONE) if dim == 2 else None
        lo, hi = d.starts[q], d.starts[q + 1]
        found = [r - q * d.groups for r in d.active[lo:hi].tolist()]
        out: dict[str, Breakdown] = {}
        if len(found) == 1 and (not by_key or (len(by_key) == 1 and found[0] in by_key)):
            # one key holds every event, waiting call and callback: the queue's own figures
            name = names[found[0]]
            agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
            out[name] = _breakdown(now, self.primary[q], total, agents)
            return out
        rows = d.rows()
        for j, k in enumerate(found, start=lo):
            spot = by_key.get(k, _NO_SPOT)
            name = names[k]
            agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
            figures = window_metrics(rows, j, spot.over, self.miss[q])
            out[name] = _breakdown(now, figures, spot, agents)
        for k, spot in by_key.items():  # waiting or owed, no event in the window
            name = names[k]
            if name not in out:
                window = replace(EMPTY_WINDOW, over_target=spot.over,
                                 answer_rate_live=0.0 if spot.over else None)  # fmt: skip
                agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
                out[name] = _breakdown(now, window, spot, agents)
        return out


def _fixed(a: float, b: float) -> Callable[[QueueSettings], tuple[float, float]]:
    """The same span (a, b] for every queue."""
    return lambda _s: (a, b)


def _patience(t: TotalsRows, i: int) -> float | None:
    """Exponential patience: total time callers waited over the number who gave up."""
    return estimate_patience(t.counts[i][ABANDONED], t.exposure_sum[i])
