"""The figures the engine hands out (contract 4): a window's metrics, agents by state,
breakdowns, a queue's stats and centre totals, and the agent record they count. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shared.core.columns import ABANDONED, Totals, TotalsRows
from shared.core.erlang import estimate_patience
from shared.core.record import record
from shared.queue_settings import QueueSettings

if TYPE_CHECKING:
    from shared.core.breakdowns import BreakdownTable, PointInTime

AGENT_STATES = ("available", "busy", "wrap_up", "not_ready")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


# the contract's window fields, in the order `WindowMetrics.as_json` writes them
WINDOW_FIELDS = (
    "arrivals", "answered", "answered_within_target", "short_abandoned", "abandoned",
    "callbacks", "overflowed", "flowouts", "offered", "answer_rate", "answer_rate_live",
    "abandon_rate", "asa_s", "aht_s", "callbacks_completed", "callback_rate",
)  # fmt: skip


@record
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
        """The contract's fields (not the sums behind them), in `WINDOW_FIELDS`' order:
        written out, a third of the time of zipping them (a tick writes thousands)."""
        return {
            "arrivals": self.arrivals, "answered": self.answered,
            "answered_within_target": self.answered_within_target,
            "short_abandoned": self.short_abandoned, "abandoned": self.abandoned,
            "callbacks": self.callbacks, "overflowed": self.overflowed,
            "flowouts": self.flowouts, "offered": self.offered,
            "answer_rate": self.answer_rate, "answer_rate_live": self.answer_rate_live,
            "abandon_rate": self.abandon_rate, "asa_s": self.asa_s, "aht_s": self.aht_s,
            "callbacks_completed": self.callbacks_completed,
            "callback_rate": self.callback_rate,
        }  # fmt: skip

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
    """`_window` of row `i` (see `window_of`)."""
    sums = [*t.counts[i], t.within_target[i], t.short_abandoned[i], t.answered_known[i]]
    sums.append(t.callbacks_on_time[i])
    return window_of(sums, (t.wait_sum[i], t.handle_sum[i]), over, miss)


# the integer sums `window_of` reads, in its order (then the float ones: wait, handle)
INT_SUMS = ("counts", "within_target", "short_abandoned", "answered_known", "callbacks_on_time")


def window_of(ints: Sequence[int], floats: Sequence[float], over: int, miss: bool) -> WindowMetrics:
    """`_window` of one row's sums, inlined: it runs for every queue, window and key whose
    sums changed. `ints`: the counts of each kind, then answered within target, short
    abandons, answered with known wait and callbacks on time; `floats`: the sums of known
    waits and of handle times."""
    arrivals, answered, abandoned, callbacks, overflowed, ended, connected, other = ints[:8]
    within, short, known, on_time = ints[8:12]
    wait_sum, handle_sum = floats[0], floats[1]
    abandoned -= short
    flowouts = callbacks + overflowed
    # contract 4: offered counts flow-outs as misses under sl_flowouts "miss"
    offered = answered + abandoned + flowouts if miss else answered + abandoned
    closed = connected + other
    live = offered + over
    return WindowMetrics(
        arrivals, answered, within, short, abandoned, callbacks, overflowed, offered,
        within / offered if offered else None,
        within / live if live else None,
        abandoned / offered if offered else None,
        wait_sum / known if known else None,
        handle_sum / ended if ended else None,
        flowouts, connected, on_time / closed if closed else None,
        known, wait_sum, ended, handle_sum, closed, on_time, over,
    )  # fmt: skip


EMPTY_WINDOW = _window(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0, 0.0, 0)


@record
class AgentCounts:
    available: int = 0
    busy: int = 0
    wrap_up: int = 0
    not_ready: int = 0
    staffed: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "available": self.available, "busy": self.busy, "wrap_up": self.wrap_up,
            "not_ready": self.not_ready, "staffed": self.staffed,
        }  # fmt: skip


def count_agents(agents: Iterable[Agent]) -> AgentCounts:
    """contract 4: agents by state; `staffed` is all but offline."""
    c = dict.fromkeys((*AGENT_STATES, "staffed"), 0)
    for agent in agents:
        if agent.state is not None and agent.state != "offline":
            c["staffed"] += 1
            c[agent.state] += 1
    return AgentCounts(**c)


def agent_counts(
    agents: Iterable[Agent],
) -> tuple[dict[str, AgentCounts], dict[str, dict[str, AgentCounts]]]:
    """Agents by state per queue they serve, and per queue and the agent's own site."""
    per_queue: dict[str, list[Agent]] = {}
    for agent in agents:
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


@record
class Breakdown:
    """One key of a breakdown (contract 4): the primary window and point-in-time figures."""

    window: WindowMetrics
    waiting: int = 0
    waiting_over_target: int = 0
    longest_wait_s: float = 0.0
    callbacks_pending: int = 0
    oldest_callback_s: float = 0.0
    agents: AgentCounts | None = None  # by site only: agents by their own site

    def as_json(self, window: dict[str, int | float | None] | None = None) -> dict[str, object]:
        """The contract's fields (`window`: those of `self.window`, when already known)."""
        out: dict[str, object] = dict(self.window.as_json() if window is None else window)
        out["waiting"] = self.waiting
        out["waiting_over_target"] = self.waiting_over_target
        out["longest_wait_s"] = self.longest_wait_s
        out["callbacks_pending"] = self.callbacks_pending
        out["oldest_callback_s"] = self.oldest_callback_s
        if self.agents is not None:
            out["agents"] = self.agents.as_json()
        return out

    def __add__(self, o: Breakdown) -> Breakdown:
        return Breakdown(
            self.window + o.window,
            self.waiting + o.waiting,
            self.waiting_over_target + o.waiting_over_target,
            max(self.longest_wait_s, o.longest_wait_s),
            self.callbacks_pending + o.callbacks_pending,
            max(self.oldest_callback_s, o.oldest_callback_s),
        )


@dataclass(frozen=True, eq=False)
class TickArrays:
    """What the tier machines read of every queue at one tick, as arrays indexed by the
    engine's queue index (`QueueStats.index`): the same values as each queue's figures,
    read once for all queues rather than queue by queue."""

    arrivals: dict[int, npt.NDArray[np.int64]]  # per surge window W: in (now - W, now]
    before: dict[int, npt.NDArray[np.int64]]  # in the hour before W; -1: not yet observed
    live_rate: npt.NDArray[np.float64]  # the primary window's answer_rate_live (NaN: None)
    offered: npt.NDArray[np.int64]  # the primary window's offered
    over: npt.NDArray[np.int64]  # waiting_over_target


@record
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
    # row `index` is this queue's (the whole tick's arrays: not in the repr)
    arrays: TickArrays | None = field(default=None, compare=False, repr=False)

    @property
    def by_priority(self) -> dict[str, Breakdown]:
        return self.breakdowns.queue(self.index)[0] if self.breakdowns else {}

    @property
    def by_channel(self) -> dict[str, Breakdown]:
        return self.breakdowns.queue(self.index)[1] if self.breakdowns else {}

    @property
    def by_site(self) -> dict[str, Breakdown]:
        return self.breakdowns.queue(self.index)[2] if self.breakdowns else {}

    def breakdowns_json(self) -> tuple[dict[str, object], ...]:
        """by_priority, by_channel and by_site as JSON-ready values, converted again only
        where the figures changed since the last tick (read them, never change them)."""
        return self.breakdowns.queue_json(self.index) if self.breakdowns else ({}, {}, {})


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
    since: float = -math.inf  # when the current state began (a new reason keeps it)
    skills: dict[str, int] = field(default_factory=dict)
    serving: frozenset[str] = frozenset()
    skills_ts: float = -math.inf
    site: str | None = None  # contract 4: the site its own events name
    site_ts: float = -math.inf
    pool: str = "regular"  # contract 1: who may call the agent in (section 6)


def patience_of(t: TotalsRows, i: int) -> float | None:
    """Exponential patience: total time callers waited over the number who gave up."""
    return estimate_patience(t.counts[i][ABANDONED], t.exposure_sum[i])


class LastTick:
    """The engine's figures of the last tick, per queue, and the sums they were built
    from: a tick builds again only the figures whose sums changed."""

    def __init__(self, nq: int, nothing: PointInTime) -> None:
        self.fresh = True  # nothing computed yet: every queue is built
        self.spots: list[PointInTime] = [nothing] * nq
        self.recheck = np.full(nq, math.inf)  # when a queue's point-in-time counts may change
        # the queues' point-in-time figures, as arrays (from `spots`)
        self.waiting = np.zeros(nq, np.int64)
        self.over = np.zeros(nq, np.int64)
        self.earliest = np.full(nq, math.inf)
        self.pending = np.zeros(nq, np.int64)
        self.earliest_cb = np.full(nq, math.inf)
        self.expired = np.zeros(nq, np.int64)
        # each queue's agents by state, looked up in the counts they came from
        self.agents_of: dict[str, AgentCounts] | None = None
        self.agents: list[AgentCounts] = []
        self.sums: dict[object, npt.NDArray[Any]] = {}  # Any: int or float sums
        self.figs: dict[int, list[WindowMetrics]] = {}
        self.windows: list[dict[int, WindowMetrics]] = [{} for _ in range(nq)]
        self.primary: list[WindowMetrics] = [EMPTY_WINDOW] * nq
        # the primary figures' answer_rate_live (NaN: None) and offered, as arrays
        self.live_rate = np.full(nq, math.nan)
        self.offered = np.zeros(nq, np.int64)
        self.patience: list[float | None] = [None] * nq
        self.surge: list[int] = [0] * nq
        self.baseline: list[int | None] = [None] * nq
        self.surge_counts: list[dict[int, tuple[int, int | None]]] = [{} for _ in range(nq)]

    def changed_rows(self, key: object, table: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
        """The rows of `table` that differ from the last one kept under `key` (all of them
        the first time); `table` is kept in its place."""
        last = self.sums.get(key)
        self.sums[key] = table
        if last is None or last.shape != table.shape:
            return np.arange(len(table))
        return np.flatnonzero((table != last).any(axis=1))

    def changed_sums(
        self, key: object, t: Totals, extra: npt.NDArray[np.int64] | None = None
    ) -> npt.NDArray[np.bool_]:
        """Which rows of `t` (with `extra`, a count per row) differ from the last ones kept
        under `key`; these are kept in their place."""
        ints = [getattr(t, name) for name in INT_SUMS]  # `window_of`'s order
        ints += [] if extra is None else [extra]
        floats = np.column_stack((t.wait_sum, t.handle_sum, t.exposure_sum))
        changed = np.zeros(len(floats), np.bool_)
        changed[self.changed_rows(("ints", key), np.column_stack(ints))] = True
        changed[self.changed_rows(("floats", key), floats)] = True
        return changed

    def figures(
        self, w: int, t: Totals, shows: npt.NDArray[np.bool_], miss: list[bool]
    ) -> npt.NDArray[np.bool_]:
        """Window `w`'s figures of every queue that shows it, built again where its sums
        (or the waiting calls over target that answer_rate_live counts) changed; which
        queues changed."""
        changed = self.changed_sums(w, t, self.over) & shows
        figs = self.figs.setdefault(w, [EMPTY_WINDOW] * len(changed))
        at = np.flatnonzero(changed)
        if at.size:
            ints = self.sums["ints", w][at].tolist()  # `window_of`'s, then `over`
            floats = self.sums["floats", w][at].tolist()
            for i, row, f in zip(at.tolist(), ints, floats, strict=True):
                figs[i] = window_of(row, f, row[12], miss[i])
        return changed
