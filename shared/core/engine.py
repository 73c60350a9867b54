"""The metric engine (contract 4): events in, per-queue numbers out, time passed in.

Pure: no clock, no I/O. `add` takes validated events in any order and any number of
times; `compute(now)` returns every number of contract section 4 for every queue, with
the primary window's breakdowns by site, priority and channel; `centre` sums them.
`now` must not go backwards between calls (it never does, live or in replay).
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.core.breakdowns import (
    NOTHING,
    Attrs,
    BreakdownTable,
    Dim,
    LastBreakdowns,
    OpenCall,
    OwedCallback,
    PointInTime,
    point_in_time,
)
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
    cumulative_counts,
)
from shared.core.erlang import estimate_patience
from shared.core.figures import (
    Agent,
    AgentCounts,
    CentreStats,
    LastTick,
    QueueStats,
    TickArrays,
    agent_counts,
    centre,
)
from shared.core.timeindex import TimeIndex
from shared.events import (
    AgentSkillsChanged,
    AgentStateChanged,
    AnyEvent,
    CallAbandoned,
    CallAnswered,
    CallbackCompleted,
    CallbackRequested,
    CallEnded,
    CallOverflowed,
    CallQueued,
)
from shared.fastcalls import (
    FastAbandoned,
    FastAnswered,
    FastCallbackCompleted,
    FastCallbackRequested,
    FastEnded,
    FastOverflowed,
    FastQueued,
)
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings

log = logging.getLogger(__name__)
BASELINE_S = 3600.0  # contract 5: the baseline is the hour before the surge window
_CHANNEL_BITS = {name: i << CHANNEL_SHIFT for i, name in enumerate(CHANNELS)}
_PRIORITY_KEYS = tuple(str(p) for p in range(PRIORITIES))
_DEFAULT_ATTRS: Attrs = DEFAULT_ATTRS


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
        # the keys of both with their times: forgetting reads what it forgets, not every
        # entry (a pass over both took 100 ms a prune at 1,000 queues, 10x at 10,000)
        self._seen_at: TimeIndex[str | tuple[str, str]] = TimeIndex()
        self._calls_at: TimeIndex[tuple[int, str]] = TimeIndex()
        # events waiting for their call.queued: (ts, seq, whether the wait is unknown)
        self._unresolved: dict[tuple[int, str], list[tuple[float, int, bool]]] = {}
        # callback completions waiting for their request (to derive their wait)
        self._cb_unresolved: dict[tuple[int, str], list[tuple[float, int]]] = {}
        self._open: list[dict[str, OpenCall]] = []
        self._closed_early: list[dict[str, float]] = []
        self._callbacks: list[dict[str, OwedCallback]] = []
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
        self._arrivals_cache = (np.empty(0, np.float64), np.empty(0, np.int32))
        # the last tick's figures (`compute` builds again only what changed since)
        self._plan: _Plan | None = None
        self._tick = LastTick(0, NOTHING)
        self._breakdowns = LastBreakdowns()
        self._last_now = -math.inf
        self._dirty: set[int] = set()  # queues whose waiting calls or callbacks changed
        self._agents_counted: (
            tuple[dict[str, AgentCounts], dict[str, dict[str, AgentCounts]]] | None
        ) = None

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

    def add(self, event: AnyEvent) -> bool:
        """Count one event; False when it was seen before (by source and event_id) or is
        too old to matter."""
        return not math.isnan(self.add_many((event,))[0])

    def add_many(self, events: Iterable[AnyEvent], times: list[float] | None = None) -> list[float]:
        """Count these events in order; per event its time in seconds, or NaN when it was
        not counted (seen before, by source and event_id, or too old to matter), appended
        to `times` when given: should counting raise part way, it holds those of the
        events before the one that failed (whose id stays claimed, as ever).

        One loop for every event: the state a call event touches is bound once per batch,
        and the common kinds (queued, answered, abandoned, callback requested, overflowed,
        ended) are counted here, the rare ones by their handlers."""
        seen, log, kinds = self._seen, self.log, _KINDS
        pending, qindex, first_seen = log.pending, self._qindex, self._first_seen
        calls, unresolved, dirty = self._calls, self._unresolved, self._dirty
        open_of, early_of, callbacks_of = self._open, self._closed_early, self._callbacks
        horizon, channel_bits = self.horizon, _CHANNEL_BITS
        too_old = max(horizon - self._retention, self.floor)
        nan, inf, first_ts = math.nan, math.inf, self.first_ts
        # the time indexes' open runs take the keys these events add to the dedup and call
        # tables, and then the earliest time of these events
        seen_run, calls_run = self._seen_at.open, self._calls_at.open
        keys_set, calls_set = seen_run.keys.append, calls_run.keys.append
        earliest = inf
        times = [] if times is None else times
        try:
            for event in events:
                source = event.source
                key = (source, event.event_id) if source else event.event_id
                ts = event.epoch
                held = len(seen)
                seen.setdefault(key, ts)  # one probe of the dedup table, not a lookup then a write
                if len(seen) == held:
                    times.append(nan)
                    continue
                if ts <= too_old:
                    del seen[key]  # too old to count: not remembered either
                    self.skipped_old += 1
                    times.append(nan)
                    continue
                keys_set(key)
                if ts < earliest:
                    earliest = ts
                if ts < first_ts:
                    first_ts = self.first_ts = ts
                kind = kinds.get(event.__class__)
                if kind is None:  # an agent event, or no event at all
                    handler = _HANDLERS.get(event.__class__)
                    if handler is None:
                        raise TypeError(f"not an event: {event.__class__.__name__}")
                    handler(self, event, ts)
                    times.append(ts)
                    continue
                # a call event (`event` is one of its kind's classes: `_KINDS`)
                call_id = event.call_id  # type: ignore[union-attr]
                q = qindex.get(event.queue_id)  # type: ignore[union-attr]
                if q is None:
                    q = self.queue_index(event.queue_id)  # type: ignore[union-attr]
                if ts < first_seen[q]:
                    first_seen[q] = ts
                at = (q, call_id)
                call = calls.get(at)
                if kind == CB_CONNECTED:  # a callback completion (its kind is by its outcome)
                    dirty.add(q)
                    self._callback_completed(q, event, ts, call)  # type: ignore[arg-type]
                    times.append(ts)
                    continue
                seq = log.next_seq
                log.next_seq = seq + 1
                if kind == QUEUED:
                    attrs = event.priority | channel_bits[event.channel]  # type: ignore[union-attr,operator]
                    if event.site is not None:
                        attrs |= self.site_index(event.site) << SITE_SHIFT
                    pending += (ts, q, QUEUED, nan, nan, seq, attrs)
                    dirty.add(q)
                    first = call is None or ts < call[0]
                    if first:
                        calls[at] = (ts, attrs)
                        calls_set(at)
                    if unresolved:
                        for event_ts, event_seq, unknown_wait in unresolved.pop(at, ()):
                            if unknown_wait:
                                log.resolve(event_ts, event_seq, max(0.0, event_ts - ts), attrs)
                            elif attrs != _DEFAULT_ATTRS:  # the event was logged with the defaults
                                log.resolve(event_ts, event_seq, None, attrs)
                    callbacks = callbacks_of[q]
                    if callbacks and first:  # a callback requested before its call.queued
                        callback = callbacks.get(call_id)
                        if callback is not None:
                            callback.attrs = attrs
                    early = early_of[q]
                    closed = early.pop(call_id, inf) if early else inf
                    if closed > horizon:  # it waits (or did) after the last tick
                        waiting = open_of[q]
                        current = waiting.get(call_id)
                        if current is None or ts < current.queued_ts:
                            waiting[call_id] = OpenCall(ts, attrs, closed)
                elif kind == ENDED:
                    handle = event.talk_s + event.hold_s + event.wrap_s  # type: ignore[union-attr]
                    attrs = _DEFAULT_ATTRS if call is None else call[1]
                    pending += (ts, q, ENDED, nan, handle, seq, attrs)
                    if call is None:
                        unresolved.setdefault(at, []).append((ts, seq, False))
                else:  # answered, abandoned, callback requested, overflowed: it stops waiting
                    dirty.add(q)
                    wait = event.wait_s  # type: ignore[union-attr]
                    if call is None:
                        attrs = _DEFAULT_ATTRS
                    else:
                        attrs = call[1]
                        if wait is None:  # contract 1: ts minus the call's call.queued, at least 0
                            since = ts - call[0]
                            wait = since if since > 0.0 else 0.0
                    pending += (ts, q, kind, nan if wait is None else wait, nan, seq, attrs)
                    if call is None:
                        unresolved.setdefault(at, []).append((ts, seq, wait is None))
                    entry = open_of[q].get(call_id)
                    if entry is None:  # its call.queued not yet here: it closes the call then
                        early = early_of[q]
                        early[call_id] = min(early.get(call_id, inf), ts)
                    else:
                        if ts < entry.closed_ts:
                            entry.closed_ts = ts
                        if entry.closed_ts <= horizon:
                            del open_of[q][call_id]
                    if kind == CALLBACK:
                        self._callback_requested(q, call_id, ts)
                times.append(ts)
        finally:  # what was counted (and the claim of an event that failed) is forgotten
            if earliest < seen_run.earliest:
                seen_run.earliest = earliest
            if earliest < calls_run.earliest:
                calls_run.earliest = earliest
        return times

    def _add_agent(self, event: AgentStateChanged | AgentSkillsChanged, ts: float) -> None:
        self._agents_counted = None
        agent = self.agents.get(event.agent_id)
        if agent is None:
            agent = self.agents[event.agent_id] = Agent(event.agent_id)
        if event.site is not None and ts >= agent.site_ts:
            agent.site, agent.site_ts = event.site, ts
        if isinstance(event, AgentStateChanged):
            if ts >= agent.state_ts:
                if event.state != agent.state:
                    agent.since = ts
                agent.state, agent.reason, agent.state_ts = event.state, event.reason, ts
        elif ts >= agent.skills_ts:
            agent.skills = {s.queue_id: s.level for s in event.skills}
            agent.serving = event.serving_queues()
            agent.skills_ts = ts
            agent.pool = event.pool
            for queue_id in agent.serving | agent.skills.keys():
                self.queue_index(queue_id)

    def _callback_requested(self, q: int, call_id: str, ts: float) -> None:
        """contract 4: a callback is owed from its request until its completion."""
        done = self._cb_done_early[q].pop(call_id, math.inf)
        entry = self._callbacks[q].get(call_id)
        if entry is None:
            call = self._calls.get((q, call_id))
            attrs = _DEFAULT_ATTRS if call is None else call[1]
            self._callbacks[q][call_id] = OwedCallback(ts, attrs, done)
        else:
            entry.requested_ts = min(entry.requested_ts, ts)
        for done_ts, seq in self._cb_unresolved.pop((q, call_id), []):
            self.log.resolve(done_ts, seq, max(0.0, done_ts - ts), None)

    def _callback_completed(
        self,
        q: int,
        event: CallbackCompleted | FastCallbackCompleted,
        ts: float,
        call: tuple[float, Attrs] | None,
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
        """Every number of contract 4 for every known queue at `now`.

        Incremental: a queue's figures are built again only where its sums, its waiting
        calls or its settings changed since the last tick; the others are the last tick's
        (the same values: each is a function of those inputs)."""
        self.horizon = max(self.horizon, now)
        self.log.flush()
        nq = len(self.queue_ids)
        settings = [self.settings_for(q) for q in self.queue_ids]
        plan = self._plan
        fresh = (
            plan is None
            or now < self._last_now
            or len(plan.settings) != nq
            or not all(map(operator.is_, settings, plan.settings))
        )
        if plan is None or fresh:
            plan = self._plan = _Plan(settings, self.param_arrays(settings))
            self._tick = LastTick(nq, NOTHING)
            self._breakdowns = LastBreakdowns()
        self._breakdowns.tick += 1
        self._last_now = now
        self._retention = float(plan.retention) + self.grace_s
        cache = self._tick
        spots = self._spots_at(now, settings, cache)
        totals = self._window_totals(
            now, plan.spans, nq, plan.params, max(plan.primaries, default=0)
        )
        changed = np.zeros(nq, np.bool_)
        for w, t in totals.items():
            changed |= cache.figures(w, t, plan.shows[w], plan.miss)
        windows, patience, primary = cache.windows, cache.patience, cache.primary
        rebuilt = np.flatnonzero(changed)
        for i in rebuilt.tolist():
            s = settings[i]
            windows[i] = {w: cache.figs[w][i] for w in s.windows_s}
            primary[i] = windows[i][s.primary_window_s]
        if rebuilt.size:  # what the tier machines read of every queue, as arrays
            shown = [primary[i] for i in rebuilt.tolist()]
            cache.live_rate[rebuilt] = [m.answer_rate_live for m in shown]  # None -> NaN
            cache.offered[rebuilt] = [m.offered for m in shown]
        for w, members in plan.primaries.items():  # contract 4: patience of the primary window
            mine = np.flatnonzero(changed[members])
            if mine.size:
                t = totals[w]
                at = members[mine]
                for i, n, x in zip(
                    at.tolist(),
                    t.counts[at, ABANDONED].tolist(),
                    t.exposure_sum[at].tolist(),
                    strict=True,
                ):
                    patience[i] = estimate_patience(n, x)
        surge, baseline, surge_counts, arrivals, before = self._arrival_counts(plan, now, cache)
        agents, site_agents = self._agent_counts()
        table = BreakdownTable(
            now, (_PRIORITY_KEYS, CHANNELS, self.site_ids), spots, site_agents, self.queue_ids,
            list(primary), plan.miss, self._breakdowns,
        )  # fmt: skip
        self._breakdown_sums(table, now, plan)
        if cache.agents_of is not agents:  # counted again since: each queue's looked up
            no_agents = AgentCounts()
            cache.agents_of, cache.agents = (
                agents,
                [agents.get(q, no_agents) for q in self.queue_ids],
            )
        # contract 4: longest_wait_s and oldest_callback_s, 0 when nothing waits or is owed
        longest = np.where(cache.waiting > 0, now - cache.earliest, 0.0).tolist()
        oldest = np.where(cache.pending > 0, now - cache.earliest_cb, 0.0).tolist()
        ids = self.queue_ids
        # copies: the cache's arrays change in place at the next tick
        arrays = TickArrays(
            arrivals, before, cache.live_rate.copy(), cache.offered.copy(), cache.over.copy()
        )
        stats = map(
            QueueStats, ids, repeat(now, nq), windows, cache.waiting.tolist(), cache.over.tolist(),
            longest, cache.agents, surge, baseline, settings, patience, surge_counts,
            cache.pending.tolist(), oldest, cache.expired.tolist(), repeat(table, nq), range(nq),
            repeat(arrays, nq),
        )  # fmt: skip
        return dict(zip(ids, stats, strict=True))

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

    def _window_totals(
        self, now: float, spans: list[int], nq: int, p: Params, exposed_s: int
    ) -> dict[int, Totals]:
        """Totals for each window size, summed from disjoint slices (one pass in all);
        `exposure_sum` only in the windows up to `exposed_s` (the longest primary window,
        the only ones whose patience is estimated), zeros beyond."""
        hi = self.log.index(now)
        out: dict[int, Totals] = {}
        running: Totals | None = None
        for w in spans:  # ascending: each window adds the slice beyond the previous one
            lo = self.log.index(now - w)
            part = self.log.totals(lo, hi, nq, p, exposure=w <= exposed_s)
            if running is None:
                running = part
            elif w <= exposed_s:
                running = running + part
            else:  # zeros, not the exposure of the nearer windows alone
                running = replace(running + part, exposure_sum=part.exposure_sum)
            out[w] = running
            hi = lo
        return out

    def _arrival_counts(self, plan: _Plan, now: float, cache: LastTick) -> tuple[
        list[int], list[int | None], list[dict[int, tuple[int, int | None]]],
        dict[int, I64], dict[int, I64],
    ]:  # fmt: skip
        """contract 5: per queue, arrivals in the surge window and in the hour before it,
        and the same for each surge window (None while the hour was not observed); and
        the same per window as arrays over every queue (-1: not observed)."""
        spans = []  # (a, b] of each count, as the contract writes them
        for s in plan.distinct:
            spans.append((now - s.surge_window_s, now))
            spans.append((now - s.surge_window_s - BASELINE_S, now - s.surge_window_s))
            for w in sorted(set(s.surge_windows_s)):
                spans.append((now - w, now))
                spans.append((now - w - BASELINE_S, now - w))
        bounds = sorted({t for span in spans for t in span})
        at = {t: k for k, t in enumerate(bounds)}
        arrival_ts, arrival_queue = self._arrivals()
        nq = len(plan.settings)
        upto = cumulative_counts(arrival_ts, arrival_queue, np.array(bounds), nq)
        first = np.array(self._first_seen)
        arrivals: dict[int, I64] = {}
        hours: dict[int, I64] = {}
        for g, (s, members) in enumerate(zip(plan.distinct, plan.members, strict=True)):
            columns = []  # per member: counts, -1 for "not yet observed"
            for w in (s.surge_window_s, *sorted(set(s.surge_windows_s))):
                a, b = now - w, now
                columns.append(upto[at[b], members] - upto[at[a], members])
                before = upto[at[a], members] - upto[at[a - BASELINE_S], members]
                columns.append(np.where(first[members] <= a - BASELINE_S, before, -1))
                arrivals.setdefault(w, np.zeros(nq, np.int64))[members] = columns[-2]
                hours.setdefault(w, np.full(nq, -1, np.int64))[members] = columns[-1]
            table = np.stack(columns, axis=1)
            rows = cache.changed_rows(("surge", g), table)
            ws = sorted(set(s.surge_windows_s))
            for i, row in zip(members[rows].tolist(), table[rows].tolist(), strict=True):
                cache.surge[i], cache.baseline[i] = row[0], None if row[1] < 0 else row[1]
                cache.surge_counts[i] = {
                    w: (row[2 + 2 * j], None if row[3 + 2 * j] < 0 else row[3 + 2 * j])
                    for j, w in enumerate(ws)
                }
        return cache.surge, cache.baseline, cache.surge_counts, arrivals, hours

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

    def _spots_at(
        self, now: float, settings: list[QueueSettings], cache: LastTick
    ) -> list[PointInTime]:
        """Every queue's point-in-time figures at `now` (`point_in_time`), taken again only
        for the queues with an event since the last tick or a count due to change."""
        due = set(np.flatnonzero(cache.recheck <= now).tolist())
        if cache.fresh:
            due = set(range(len(settings)))
        due |= self._dirty
        self._dirty = set()
        for q in due:
            s = settings[q]
            cache.spots[q], cache.recheck[q] = point_in_time(
                self._open[q], self._callbacks[q], now, self._params[id(s)][1],
                s.callback_expiry_s,
            )  # fmt: skip
            total = cache.spots[q][0]
            cache.waiting[q], cache.over[q], cache.earliest[q] = (
                total.waiting, total.over, total.earliest
            )  # fmt: skip
            cache.pending[q], cache.earliest_cb[q] = total.pending, total.earliest_cb
            cache.expired[q] = cache.spots[q][2]
        cache.fresh = False
        return list(cache.spots)  # this tick's: the next one replaces entries, not these

    def _breakdown_sums(self, table: BreakdownTable, now: float, plan: _Plan) -> None:
        """contract 4: the sums of by_priority, by_channel and by_site over each queue's
        primary window, for every queue at once, and which queues' sums changed."""
        nq = len(plan.settings)
        hi = self.log.index(now)
        bounds = np.arange(nq + 1, dtype=np.int64)
        for w, members in plan.primaries.items():
            lo = self.log.index(now - w)
            dims = []
            keys = (("prio", PRIORITIES), ("chan", len(CHANNELS)), ("site", len(self.site_ids)))
            sums = self.log.totals_by(lo, hi, nq, plan.params, keys)
            for (column, groups), totals in zip(keys, sums, strict=True):
                active = np.flatnonzero(totals.counts.any(axis=1))
                starts = np.searchsorted(active, bounds * groups).tolist()
                rows = self._tick.changed_sums((w, column), totals).reshape(nq, groups)
                changed = np.logical_or.reduce(rows, axis=1)  # per queue
                dims.append(Dim(groups, active, totals.take(active), starts, changed))
            if len(plan.primaries) == 1:
                table.dims_of = [dims] * nq
            for i in members.tolist() if len(plan.primaries) > 1 else ():
                table.dims_of[i] = dims

    def _agent_counts(self) -> tuple[dict[str, AgentCounts], dict[str, dict[str, AgentCounts]]]:
        """Agents by state per queue they serve, and per queue and the agent's own site
        (counted again only after an agent event)."""
        if self._agents_counted is None:
            self._agents_counted = agent_counts(self.agents.values())
        return self._agents_counted

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
        self._seen_at.forget(self._seen, cutoff, float)
        self._calls_at.forget(self._calls, cutoff, operator.itemgetter(0))
        self._unresolved = {
            k: v for k, v in self._unresolved.items() if any(t > cutoff for t, _, _ in v)
        }
        self._cb_unresolved = {
            k: v for k, v in self._cb_unresolved.items() if any(t > cutoff for t, _ in v)
        }
        for q, queue_id in enumerate(self.queue_ids):
            waiting, owed = self._open[q], self._callbacks[q]
            self._open[q] = {c: e for c, e in waiting.items() if e.queued_ts > cutoff}
            self._closed_early[q] = {c: t for c, t in self._closed_early[q].items() if t > cutoff}
            self._cb_done_early[q] = {c: t for c, t in self._cb_done_early[q].items() if t > cutoff}
            # an expired callback still counts in callbacks_expired for one more expiry span
            keep = now - 2 * self.settings_for(queue_id).callback_expiry_s
            self._callbacks[q] = {c: e for c, e in owed.items() if e.requested_ts > keep}
            if len(self._open[q]) < len(waiting) or len(self._callbacks[q]) < len(owed):
                self._dirty.add(q)  # its waiting calls or callbacks counted again


# each call event class's kind (`Engine.add_many`); a callback completion's is by its outcome
_KINDS: dict[type, int] = {
    **dict.fromkeys((CallQueued, FastQueued), QUEUED),
    **dict.fromkeys((CallAnswered, FastAnswered), ANSWERED),
    **dict.fromkeys((CallAbandoned, FastAbandoned), ABANDONED),
    **dict.fromkeys((CallbackRequested, FastCallbackRequested), CALLBACK),
    **dict.fromkeys((CallOverflowed, FastOverflowed), OVERFLOWED),
    **dict.fromkeys((CallEnded, FastEnded), ENDED),
    **dict.fromkeys((CallbackCompleted, FastCallbackCompleted), CB_CONNECTED),
}
# the other events' handlers; a class in neither table is no event of contract 1
# Any: each handler takes its own classes, which the table's key guarantees
_HANDLERS: dict[type, Callable[[Engine, Any, float], None]] = {
    AgentStateChanged: Engine._add_agent,
    AgentSkillsChanged: Engine._add_agent,
}


class _Plan:
    """What a tick reads from the queues' settings, kept while no queue's settings change
    (each settings object read once, however many queues share it)."""

    def __init__(self, settings: list[QueueSettings], params: Params) -> None:
        self.settings = settings
        self.params = params
        by_id: dict[int, list[int]] = {}
        first: dict[int, QueueSettings] = {}
        for i, s in enumerate(settings):
            by_id.setdefault(id(s), []).append(i)
            first.setdefault(id(s), s)
        self.distinct = list(first.values())
        self.members = [np.array(by_id[id(s)], np.intp) for s in self.distinct]
        self.spans = sorted({w for s in self.distinct for w in s.windows_s})
        self.miss = [s.sl_flowouts == "miss" for s in settings]
        nq = len(settings)
        # per window: the queues that show it; per primary window: its queues
        self.shows = {w: np.zeros(nq, np.bool_) for w in self.spans}
        primaries: dict[int, list[npt.NDArray[np.intp]]] = {}
        for s, members in zip(self.distinct, self.members, strict=True):
            for w in s.windows_s:
                self.shows[w][members] = True
            primaries.setdefault(s.primary_window_s, []).append(members)
        self.primaries = {w: np.sort(np.concatenate(m)) for w, m in primaries.items()}
        # contract 4 and 5: the longest window or baseline span, plus grace (`retention_s`)
        self.retention = max(
            max(s.windows_s + [max(s.surge_windows_s + [s.surge_window_s]) + BASELINE_S])
            for s in [DEFAULT_QUEUE_SETTINGS, *self.distinct]
        )
