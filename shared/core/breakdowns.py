"""Breakdowns of a queue's primary window by site, priority and channel (contract 4):
the point-in-time figures of each key, and the table that builds every queue's from one
pass over the window's sums. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import repeat

import numpy as np
import numpy.typing as npt

from shared.core.columns import F64, I64, Totals, unpack
from shared.core.figures import (
    EMPTY_WINDOW,
    INT_SUMS,
    AgentCounts,
    Breakdown,
    WindowMetrics,
    window_of,
)

Attrs = int  # a call's priority, channel and site index (contract 1), `pack`ed


class Spot:
    """Point-in-time figures of one breakdown key, accumulated call by call."""

    __slots__ = ("earliest", "earliest_cb", "over", "pending", "waiting")

    def __init__(self) -> None:
        self.waiting = self.over = self.pending = 0
        self.earliest = self.earliest_cb = math.inf


NO_SPOT = Spot()
_NO_AGENTS = AgentCounts()
_NONE: dict[str, AgentCounts] = {}
# a queue's point-in-time figures: the queue's spot, its spots by priority, channel and
# site, and its callbacks expired unserved
PointInTime = tuple[Spot, list[dict[int, Spot]], int]
NOTHING: PointInTime = (NO_SPOT, [{}, {}, {}], 0)  # read only
# a count that changes when `now` passes a time is recomputed from this much before it
# (`now - queued > limit` and `now > queued + limit` may differ in the last bit)
_EARLY_S = 1e-3


@dataclass(slots=True)
class OpenCall:
    """A call waiting in its queue, from its call.queued until it left."""

    queued_ts: float
    attrs: Attrs
    closed_ts: float = math.inf


@dataclass(slots=True)
class OwedCallback:
    """A callback owed from its request until its completion."""

    requested_ts: float
    attrs: Attrs
    done_ts: float = math.inf


def point_in_time(
    open_calls: dict[str, OpenCall],
    callbacks: dict[str, OwedCallback],
    now: float,
    thresholds: Sequence[float],
    expiry_s: float,
) -> tuple[PointInTime, float]:
    """contract 4: waiting calls and callbacks owed at `now`, for the queue and for each
    priority, channel and site; the callbacks expired unserved; and the earliest time at
    which any of these may change with no new event (`inf`: none). Calls and callbacks
    that ended at or before `now` are forgotten."""
    if not open_calls and not callbacks:
        return NOTHING, math.inf
    total = Spot()
    keys: list[dict[int, Spot]] = [{}, {}, {}]
    recheck = math.inf
    if open_calls:
        for call_id in [c for c, e in open_calls.items() if e.closed_ts <= now]:
            del open_calls[call_id]
        for entry in open_calls.values():
            recheck = min(recheck, entry.closed_ts)  # it stops waiting then
            if entry.queued_ts > now:
                recheck = min(recheck, entry.queued_ts)  # it starts waiting then
                continue
            limit = thresholds[entry.attrs & 3]  # the per-priority targets
            over = now - entry.queued_ts > limit
            if not over:
                recheck = min(recheck, entry.queued_ts + limit - _EARLY_S)
            for spot in spots_of(total, keys, entry.attrs):
                spot.waiting += 1
                spot.over += over
                spot.earliest = min(spot.earliest, entry.queued_ts)
    expired = 0
    if callbacks:
        for call_id in [c for c, e in callbacks.items() if e.done_ts <= now]:
            del callbacks[call_id]
        for cb in callbacks.values():
            recheck = min(recheck, cb.done_ts)
            if cb.requested_ts > now:
                recheck = min(recheck, cb.requested_ts)
                continue
            if now - cb.requested_ts > expiry_s:
                expired += 1  # contract 4: callbacks_expired
                continue
            recheck = min(recheck, cb.requested_ts + expiry_s - _EARLY_S)
            for spot in spots_of(total, keys, cb.attrs):
                spot.pending += 1
                spot.earliest_cb = min(spot.earliest_cb, cb.requested_ts)
    return (total, keys, expired), recheck


def spots_of(total: Spot, keys: list[dict[int, Spot]], attrs: Attrs) -> tuple[Spot, ...]:
    """The queue's spot and its priority, channel and site spots for a call."""
    out = [total]
    for by_key, k in zip(keys, unpack(attrs), strict=True):
        spot = by_key.get(k)
        if spot is None:
            spot = by_key[k] = Spot()
        out.append(spot)
    return tuple(out)


def breakdown(
    now: float, window: WindowMetrics, spot: Spot, agents: AgentCounts | None
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


class Dim:
    """One breakdown's sums: the rows (queue * groups + key) with any event, in order."""

    def __init__(
        self,
        groups: int,
        active: I64,
        sums: Totals,
        starts: list[int],
        changed: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        self.groups = groups
        self.active = active
        self.sums = sums  # row j is the row active[j]
        self.starts = starts  # queue q's rows are active[starts[q]:starts[q + 1]]
        # per queue: whether its sums differ from the last tick's (None: not known)
        self.changed = changed
        self._table: tuple[I64, F64, npt.NDArray[np.void]] | None = None
        self._same: list[bool] | None = None
        self._keys: list[int] | None = None

    def same(self) -> list[bool] | None:
        """Per queue: whether its sums are the last tick's (None: not known)."""
        if self._same is None and self.changed is not None:
            self._same = np.logical_not(self.changed).tolist()
        return self._same

    def keys(self) -> list[int]:
        """The key index of each row (queue q's rows are keys()[starts[q]:starts[q + 1]])."""
        if self._keys is None:
            self._keys = (self.active % self.groups).tolist()
        return self._keys

    def rows(self, lo: int, hi: int) -> tuple[list[list[int]], list[list[float]]]:
        """Rows lo to hi of the sums as lists, in `window_of`'s order (only the rows read
        are converted: a tick reads the breakdowns of the queues that changed)."""
        ints, floats, _sigs = self._tables()
        return ints[lo:hi].tolist(), floats[lo:hi].tolist()

    def sigs(self, lo: int, hi: int) -> list[bytes]:
        """Rows lo to hi of the sums, each as its bytes: equal bytes, equal sums (bytes
        are kept from tick to tick where lists of numbers would be objects for the cyclic
        collector to walk)."""
        sigs: list[bytes] = self._tables()[2][lo:hi].tolist()
        return sigs

    def _tables(self) -> tuple[I64, F64, npt.NDArray[np.void]]:
        if self._table is None:
            s = self.sums
            ints = np.column_stack([getattr(s, name) for name in INT_SUMS])
            floats = np.column_stack((s.wait_sum, s.handle_sum))
            both = np.column_stack((ints, floats.view(np.int64)))
            sigs = both.view(np.dtype((np.void, both.shape[1] * 8))).ravel()
            self._table = (ints, floats, sigs)
        return self._table


# one key of a breakdown as a tick built it: its name, window figures, point-in-time
# figures and agents by site, and the row of sums its window figures came from, as bytes
# (None: not from a row)
_Part = tuple[str, WindowMetrics, Spot, AgentCounts | None, bytes | None]
Breakdowns = tuple[dict[str, Breakdown], ...]  # by_priority, by_channel, by_site
_WindowJson = tuple[WindowMetrics, dict[str, int | float | None]]  # figures and their values
# one breakdown's JSON-ready values: the parts and breakdown they are of, each key's values
# and each key's window figures with theirs
_Converted = tuple[
    dict[int, _Part], dict[str, Breakdown], dict[str, object], dict[str, _WindowJson]
]


@dataclass(slots=True)
class _Kept:
    """One queue's breakdowns as a tick built them, and what they were built from: the
    tick, the queue's point-in-time figures, agents by site and primary window's figures;
    per breakdown its parts by key index, those with calls waiting or owed
    (their waits grow with `now`), the breakdowns, per breakdown the last JSON-ready
    values made of it, and those of all three when made of `out`."""

    tick: int
    point: PointInTime
    at_site: dict[str, AgentCounts]
    primary: WindowMetrics
    parts: list[dict[int, _Part]]
    live: list[list[_Part]]
    out: Breakdowns
    json: list[_Converted | None]
    values: tuple[Breakdowns, tuple[dict[str, object], ...]] | None = None


class LastBreakdowns:
    """Each queue's breakdowns as the last tick built them (`BreakdownTable`)."""

    def __init__(self) -> None:
        self.tick = 0  # the newest table's: only it reads and writes here
        self.built: dict[int, _Kept] = {}


class BreakdownTable:
    """The primary window's breakdowns of every queue at one `now` (contract 4).

    The tick takes the sums for all queues at once (numpy); the figures are built the
    first time any is read, every queue's in one pass, then kept: the numbers never
    change. With `last`, a breakdown whose sums, waiting calls, agents and primary
    figures are those of the last tick keeps its figures (only the keys with calls
    waiting or owed are built again: their waits grow with `now`); a key whose row of
    sums and calls over target are those it was last built from keeps its window figures
    (and with nothing waiting or owed and the same agents, its breakdown); and
    JSON-ready values are made only for the keys whose breakdown changed.
    """

    def __init__(
        self,
        now: float,
        names: tuple[Sequence[str], Sequence[str], Sequence[str]],
        spots: list[PointInTime],
        site_agents: dict[str, dict[str, AgentCounts]],
        queue_ids: list[str],
        primary: list[WindowMetrics],
        miss: list[bool],
        last: LastBreakdowns | None = None,
    ) -> None:
        self.now = now
        self.last = last
        self.tick = last.tick if last is not None else 0
        self.names = names
        self.spots = spots
        self.site_agents = site_agents
        self.queue_ids = queue_ids
        self.primary = primary
        self.miss = miss
        self.dims_of: list[list[Dim]] = [[]] * len(queue_ids)  # each entry replaced, never changed
        self._built: list[Breakdowns] | None = None
        self._json: list[tuple[dict[str, object], ...]] | None = None

    def queue(self, q: int) -> Breakdowns:
        """by_priority, by_channel and by_site of queue index `q`; a key with no event in
        the window and nothing waiting or owed is left out."""
        if self._built is None:
            self._built = self._build_all()
        return self._built[q]

    def queue_json(self, q: int) -> tuple[dict[str, object], ...]:
        """`queue(q)` as JSON-ready values, each key's as `Breakdown.as_json` gives it
        (shared with other ticks: read them, never change them)."""
        if self._json is None:
            self._json = self._convert_all()
        return self._json[q]

    def _current(self) -> LastBreakdowns | None:
        """`last` while this is the newest table (only it reads and writes there)."""
        last = self.last
        return last if last is not None and last.tick == self.tick else None

    def _unchanged(self) -> list[bool]:
        """Per queue: whether the sums of its three breakdowns are the last tick's."""
        nq = len(self.queue_ids)
        out = np.zeros(nq, np.bool_)
        groups = {id(dims): dims for dims in self.dims_of}  # one per primary window
        for dims in groups.values():
            if len(dims) != 3 or any(d.changed is None for d in dims):
                continue
            same = ~(dims[0].changed | dims[1].changed | dims[2].changed)  # type: ignore[operator]
            if len(groups) == 1:
                out = same
            else:
                members = [q for q, of in enumerate(self.dims_of) if of is dims]
                out[members] = same[members]
        same_sums: list[bool] = out.tolist()
        return same_sums

    def _build_all(self) -> list[Breakdowns]:
        """Every queue's breakdowns: those of the last tick where nothing they are built
        from changed (their waits taken again), the others built (`_build`)."""
        now, spots, primary = self.now, self.spots, self.primary
        at_sites = list(map(self.site_agents.get, self.queue_ids, repeat(_NONE)))
        last = self._current()
        if last is None:
            return [self._build(q, None, at_sites[q]) for q in range(len(spots))]
        built, before = last.built, self.tick - 1
        out: list[Breakdowns] = []
        for q, same in enumerate(self._unchanged()):
            kept = built.get(q)
            if (
                same
                and kept is not None
                and kept.tick == before
                and kept.point is spots[q]
                and kept.primary is primary[q]
                and kept.at_site is at_sites[q]
            ):
                kept.tick = self.tick
                if spots[q][0].waiting or spots[q][0].pending:  # the waits grew with `now`
                    kept.out = tuple(map(_regrow, repeat(now), kept.out, kept.live))
                out.append(kept.out)
            else:
                out.append(self._build(q, kept, at_sites[q]))
        return out

    def _build(self, q: int, old: _Kept | None, at_site: dict[str, AgentCounts]) -> Breakdowns:
        """Queue `q`'s breakdowns, from the parts `old` kept where their sums and the
        point-in-time figures are the same."""
        # (sl_flowouts, the one setting the figures read, is the same for every table
        # that shares a `LastBreakdowns`: a settings change starts a new one)
        now, point, primary = self.now, self.spots[q], self.primary[q]
        dims = self.dims_of[q]
        last = self._current()
        grows = point[0].waiting or point[0].pending  # the waits grow with `now`
        keep = [False] * len(dims)
        if (
            old is not None
            and old.tick == self.tick - 1
            and old.point is point
            and old.primary is primary
        ):  # the last tick's point-in-time and primary figures: unchanged sums keep parts
            for dim, d in enumerate(dims):
                same = d.same()
                keep[dim] = same is not None and same[q] and (dim != 2 or old.at_site is at_site)
        parts_of: list[dict[int, _Part]] = []
        live_of: list[list[_Part]] = []
        outs: list[dict[str, Breakdown]] = []
        for dim, d in enumerate(dims):
            if old is not None and keep[dim]:
                parts, live, out = old.parts[dim], old.live[dim], old.out[dim]
                if grows:
                    out = _regrow(now, out, live)
            else:
                parts, live, out = self._parts(q, dim, d, at_site if dim == 2 else None, old)
            parts_of.append(parts)
            live_of.append(live)
            outs.append(out)
        built = tuple(outs)
        if last is not None:
            json: list[_Converted | None] = [None] * len(dims) if old is None else old.json
            last.built[q] = _Kept(
                self.tick, point, at_site, primary, parts_of, live_of, built, json
            )
        return built

    def _parts(
        self,
        q: int,
        dim: int,
        d: Dim,
        at_site: dict[str, AgentCounts] | None,
        kept: _Kept | None,
    ) -> tuple[dict[int, _Part], list[_Part], dict[str, Breakdown]]:
        """Each key's name, window figures, point-in-time figures and agents by site;
        those with calls waiting or owed; and the breakdown. What `kept` built from the
        same sums is taken again: a key's window figures, and with nothing waiting or
        owed and the same agents, its breakdown."""
        now, names = self.now, self.names[dim]
        total, keys, _expired = self.spots[q]
        by_key = keys[dim]
        before = _NO_PARTS if kept is None else kept.parts[dim]
        had = _NO_BREAKDOWNS if kept is None else kept.out[dim]
        lo, hi = d.starts[q], d.starts[q + 1]
        found = d.keys()[lo:hi]
        parts: dict[int, _Part] = {}
        live: list[_Part] = []
        out: dict[str, Breakdown] = {}
        part: _Part
        if len(found) == 1 and (not by_key or (len(by_key) == 1 and found[0] in by_key)):
            # one key holds every event, waiting call and callback: the queue's own figures
            k = found[0]
            name = names[k]
            agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
            parts[k] = part = (name, self.primary[q], total, agents, None)
            if total.waiting or total.pending:
                live.append(part)
            out[name] = _breakdown_of(now, part, had.get(name))
            return parts, live, out
        rows: tuple[list[list[int]], list[list[float]]] | None = None  # converted if read
        miss = self.miss[q]
        for j, (k, sig) in enumerate(zip(found, d.sigs(lo, hi), strict=True)):
            spot = by_key.get(k, NO_SPOT)
            name = names[k]
            agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
            p = before.get(k)
            if p is not None and p[4] == sig and p[1].over_target == spot.over:
                window = p[1]
            else:
                rows = d.rows(lo, hi) if rows is None else rows
                window = window_of(rows[0][j], rows[1][j], spot.over, miss)
            parts[k] = part = (name, window, spot, agents, sig)
            if spot.waiting or spot.pending:
                live.append(part)
                out[name] = breakdown(now, window, spot, agents)
            else:
                out[name] = _breakdown_of(now, part, had.get(name))
        for k, spot in by_key.items():  # waiting or owed, no event in the window
            if k not in parts:
                name = names[k]
                agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
                parts[k] = part = (name, _waiting_only(spot.over), spot, agents, None)
                live.append(part)
                out[name] = breakdown(now, part[1], spot, agents)
        return parts, live, out

    def _convert_all(self) -> list[tuple[dict[str, object], ...]]:
        """Every queue's breakdowns as JSON-ready values (`_convert`); a queue whose
        breakdowns are those converted last time takes the same values."""
        if self._built is None:
            self._built = self._build_all()
        last = self._current()
        built = {} if last is None else last.built
        out: list[tuple[dict[str, object], ...]] = []
        for q, outs in enumerate(self._built):
            kept = built.get(q)
            if kept is None or kept.out is not outs:  # not the newest table's: no reuse
                out.append(tuple({k: b.as_json() for k, b in o.items()} for o in outs))
                continue
            values = kept.values
            if values is None or values[0] is not outs:
                kept.values = values = (outs, self._convert(kept, outs))
            out.append(values[1])
        return out

    def _convert(self, kept: _Kept, outs: Breakdowns) -> tuple[dict[str, object], ...]:
        """`outs`, the breakdowns `kept` holds, as JSON-ready values: a key whose
        breakdown (or window figures) the last conversion of its breakdown had takes its
        values again."""
        jsons: list[dict[str, object]] = []
        for dim, out in enumerate(outs):
            parts, done = kept.parts[dim], kept.json[dim]
            if done is not None and done[1] is out:
                jsons.append(done[2])
                continue
            if done is not None and done[0] is parts:  # the same keys: only the waits grew
                js, wins = dict(done[2]), done[3]
                for p in kept.live[dim]:
                    name = p[0]
                    js[name] = out[name].as_json(wins[name][1])
            else:
                had, had_js, had_wins = (_NO_BREAKDOWNS, {}, {}) if done is None else done[1:]
                js, wins = {}, {}
                for name, b in out.items():
                    if had.get(name) is b:
                        js[name], wins[name] = had_js[name], had_wins[name]
                        continue
                    w = b.window
                    win = had_wins.get(name)
                    if win is None or win[0] is not w:
                        win = (w, w.as_json())
                    wins[name] = win
                    js[name] = b.as_json(win[1])
            kept.json[dim] = (parts, out, js, wins)
            jsons.append(js)
        return tuple(jsons)


def _breakdown_of(now: float, part: _Part, had: Breakdown | None) -> Breakdown:
    """The breakdown of one key's `part`: `had` when it is that of the same window figures
    and agents with nothing waiting or owed, then or now."""
    name, window, spot, agents, _sig = part
    if (
        had is None or spot.waiting or spot.pending or had.waiting or had.callbacks_pending
        or had.window is not window or had.agents is not agents
    ):  # fmt: skip
        return breakdown(now, window, spot, agents)
    return had


def _regrow(now: float, out: dict[str, Breakdown], live: list[_Part]) -> dict[str, Breakdown]:
    """`out` with the keys of `live` built again at `now` (their waits grew)."""
    if not live:
        return out
    out = dict(out)
    for name, w, spot, agents, _sig in live:
        out[name] = breakdown(now, w, spot, agents)
    return out


_NO_BREAKDOWNS: dict[str, Breakdown] = {}
_NO_PARTS: dict[int, _Part] = {}


def _waiting_only(over: int) -> WindowMetrics:
    """The window figures of a key with calls waiting or owed and no event in the window."""
    if not over:
        return EMPTY_WINDOW
    return replace(EMPTY_WINDOW, over_target=over, answer_rate_live=0.0)
