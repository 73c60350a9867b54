"""Breakdowns of a queue's primary window by site, priority and channel (contract 4):
the point-in-time figures of each key, and the table that builds every queue's from one
pass over the window's sums. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

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
        self._table: tuple[I64, F64] | None = None

    def rows(self, lo: int, hi: int) -> tuple[list[list[int]], list[list[float]]]:
        """Rows lo to hi of the sums as lists, in `window_of`'s order (only the rows read
        are converted: a tick reads the breakdowns of the queues that changed)."""
        if self._table is None:
            s = self.sums
            ints = np.column_stack([getattr(s, name) for name in INT_SUMS])
            self._table = (ints, np.column_stack((s.wait_sum, s.handle_sum)))
        ints, floats = self._table
        return ints[lo:hi].tolist(), floats[lo:hi].tolist()


# what a breakdown of one queue was built from at one tick, and what it built: the tick,
# the queue's point-in-time figures, its agents by site, its primary window's figures,
# each key's (name, window, spot, agents) and the breakdown
_Built = tuple[
    int,
    PointInTime,
    dict[str, AgentCounts] | None,
    WindowMetrics,
    list[tuple[str, WindowMetrics, Spot, AgentCounts | None]],
    dict[str, Breakdown],
]


class LastBreakdowns:
    """Each queue's breakdowns as the last tick built them (`BreakdownTable`)."""

    def __init__(self) -> None:
        self.tick = 0  # the newest table's: only it reads and writes here
        self.built: dict[tuple[int, int], _Built] = {}


class BreakdownTable:
    """The primary window's breakdowns of every queue at one `now` (contract 4).

    The tick takes the sums for all queues at once (numpy); the figures of one queue are
    built the first time they are read, then kept: the numbers never change. With `last`,
    a breakdown whose sums, waiting calls, agents and primary figures are those of the
    last tick keeps its figures (only the waits, which grow with `now`, are taken again).
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
        self._built: dict[int, tuple[dict[str, Breakdown], ...]] = {}

    def queue(self, q: int) -> tuple[dict[str, Breakdown], ...]:
        """by_priority, by_channel and by_site of queue index `q`; a key with no event in
        the window and nothing waiting or owed is left out."""
        built = self._built.get(q)
        if built is None:
            built = self._built[q] = tuple(self._build(q, dim) for dim in range(3))
        return built

    def _build(self, q: int, dim: int) -> dict[str, Breakdown]:
        now, d, point = self.now, self.dims_of[q][dim], self.spots[q]
        at_site = self.site_agents.get(self.queue_ids[q], _NONE) if dim == 2 else None
        last = self.last if self.last is not None and self.last.tick == self.tick else None
        if last is not None and d.changed is not None and not d.changed[q]:
            built = last.built.get((q, dim))
            if (
                built is not None
                and built[0] == self.tick - 1
                and built[1] is point
                and built[2] is at_site
                and built[3] is self.primary[q]
            ):
                parts, out = built[4], built[5]
                if point[0].waiting or point[0].pending:  # the waits grew with `now`
                    out = {
                        name: breakdown(now, w, spot, a) if spot.waiting or spot.pending
                        else out[name]
                        for name, w, spot, a in parts
                    }  # fmt: skip
                last.built[q, dim] = (self.tick, point, at_site, self.primary[q], parts, out)
                return out
        parts = self._parts(q, dim, at_site)
        out = {name: breakdown(now, w, spot, a) for name, w, spot, a in parts}
        if last is not None:
            last.built[q, dim] = (self.tick, point, at_site, self.primary[q], parts, out)
        return out

    def _parts(
        self, q: int, dim: int, at_site: dict[str, AgentCounts] | None
    ) -> list[tuple[str, WindowMetrics, Spot, AgentCounts | None]]:
        """Each key's name, window figures, point-in-time figures and agents by site."""
        names = self.names[dim]
        d = self.dims_of[q][dim]
        total, keys, _expired = self.spots[q]
        by_key = keys[dim]
        lo, hi = d.starts[q], d.starts[q + 1]
        found = [r - q * d.groups for r in d.active[lo:hi].tolist()]
        if len(found) == 1 and (not by_key or (len(by_key) == 1 and found[0] in by_key)):
            # one key holds every event, waiting call and callback: the queue's own figures
            name = names[found[0]]
            agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
            return [(name, self.primary[q], total, agents)]
        out: list[tuple[str, WindowMetrics, Spot, AgentCounts | None]] = []
        ints, floats = d.rows(lo, hi)
        miss = self.miss[q]
        for k, row, f in zip(found, ints, floats, strict=True):
            spot = by_key.get(k, NO_SPOT)
            name = names[k]
            agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
            out.append((name, window_of(row, f, spot.over, miss), spot, agents))
        seen = {name for name, *_ in out}
        for k, spot in by_key.items():  # waiting or owed, no event in the window
            name = names[k]
            if name not in seen:
                window = replace(EMPTY_WINDOW, over_target=spot.over,
                                 answer_rate_live=0.0 if spot.over else None)  # fmt: skip
                agents = None if at_site is None else at_site.get(name, _NO_AGENTS)
                out.append((name, window, spot, agents))
        return out
