"""Surge tiers and the SL breach alert (contract 5): a pure state machine per queue.

Each tick, for every window `W` of `surge_windows_s`, the machine weighs the arrivals
`N` in `(now - W, now]` against `expected(W)` (forecast, else the declared
`expected_per_hour`, else the queue's own baseline hour) with a Poisson test. The
highest tier some window indicates is entered at once; tiers are left one at a time.
While at tier 1 or above the baseline is frozen at its value when tier 1 was entered.

Decisions where the contract is silent:
- `ratio` and `p` are `null` when `expected` is unknown or 0 (no tier from them).
- When several windows indicate the highest tier, the surge shown is that of the one
  with the smallest `p` (then the longest window).
- A window whose baseline hour was not yet observed when tier 1 was entered uses,
  while frozen, the frozen rate of the nearest window that had one.

`step` advances one queue; `step_many` every queue of a tick at once, with the same
results (the monitor's tick).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from itertools import chain, repeat
from operator import attrgetter, is_, itemgetter
from typing import Literal, NamedTuple

import numpy as np
from scipy.special import gammainc  # type: ignore[import-untyped]  # scipy ships no stubs

from shared.core.figures import QueueStats, TickArrays, WindowMetrics
from shared.core.record import record
from shared.forecast import Forecast
from shared.messages.alerts import AlertChange, Numbers, Transition
from shared.queue_settings import QueueSettings

Basis = Literal["forecast", "declared", "baseline"]
HOUR_S = 3600.0


def poisson_tail(n: int, mean: float) -> float:
    """P(X >= n) for X ~ Poisson(mean): the chance that normal traffic gives n or more."""
    return float(poisson_tails(np.array([n]), np.array([mean]))[0])


def poisson_tails(n: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """P(X >= n) elementwise, exact for any n and mean without overflow.

    For n >= 1 the Poisson upper tail equals the regularised lower incomplete gamma
    function P(n, mean) (`gammainc`); for n <= 0 it is 1.
    """
    n, mean = np.broadcast_arrays(
        np.atleast_1d(np.asarray(n, np.float64)), np.atleast_1d(np.asarray(mean, np.float64))
    )
    out = np.ones(n.shape)
    pos = n >= 1
    out[pos] = gammainc(n[pos], mean[pos])
    return out


def _tail(n: int, mean: float) -> float:
    """`poisson_tail` for one window: a scalar call, about half a microsecond."""
    return 1.0 if n < 1 else float(gammainc(float(n), mean))


@record
class Evidence:
    """One surge window at one tick (contract 5)."""

    window_s: int
    arrivals: int
    expected: float | None
    basis: Basis | None
    ratio: float | None
    p: float | None
    tier: int  # the highest tier this window indicates, 0 for none


@dataclass(frozen=True)
class QueueAlertState:
    """What the tier machine remembers of one queue between ticks."""

    tier: int = 0
    since: float | None = None  # when the current tier was entered
    below_since: float | None = None  # since when the exit condition has held
    surge_id: str | None = None
    breach: bool = False
    breach_since: float | None = None
    breach_ok_since: float | None = None
    breach_id: str | None = None
    # contract 5: per surge window, the baseline (arrivals per hour) frozen at tier 1 entry
    frozen_per_hour: dict[int, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["frozen_per_hour"] = {str(w): v for w, v in self.frozen_per_hour.items()}
        return data

    @staticmethod
    def from_json(data: dict[str, object]) -> QueueAlertState:
        """Our own `as_json` output, also from older versions (missing fields default)."""
        known = {f.name for f in fields(QueueAlertState)}
        kept = {k: v for k, v in data.items() if k in known}
        frozen = kept.pop("frozen_per_hour", None)
        per_hour = {int(w): float(v) for w, v in frozen.items()} if isinstance(frozen, dict) else {}
        return QueueAlertState(**kept, frozen_per_hour=per_hour)  # type: ignore[arg-type]  # as_json output


class SurgeView(NamedTuple):
    """The surge a snapshot shows (contract 7 `surge`, without tier and since): a tuple,
    built for every queue at every tick."""

    ratio: float | None
    expected: float | None
    arrivals: int
    window_s: int = 300
    p: float | None = None
    basis: Basis | None = None


@dataclass
class TickResult:
    state: QueueAlertState
    surge: SurgeView
    changes: list[AlertChange] = field(default_factory=list)  # state transitions
    updates: list[AlertChange] = field(default_factory=list)  # `updated`: the numbers now
    evidence: list[Evidence] = field(default_factory=list)


def _counts(stats: QueueStats, window_s: int) -> tuple[int, int | None] | None:
    """(arrivals in the window, arrivals in the hour before it or None), if computed."""
    found = stats.surge_counts.get(window_s)
    if found is not None:
        return found
    if window_s == stats.settings.surge_window_s:
        return stats.surge_arrivals, stats.baseline_arrivals
    return None


def _frozen_rate(frozen: dict[int, float], window_s: int) -> float | None:
    if window_s in frozen:
        return frozen[window_s]
    if not frozen:
        return None
    nearest = min(frozen, key=lambda w: (abs(w - window_s), w))
    return frozen[nearest]


def _from_forecast(forecast: Forecast, start_s: float, a: float, b: float) -> float | None:
    """`Forecast.expected` over (a, b] when the forecast covers it, with its start given
    (computed once per tick rather than per interval)."""
    interval = forecast.interval_s
    if a < start_s or b > start_s + interval * len(forecast.arrivals):
        return None
    total = 0.0
    i = max(0, int((a - start_s) // interval))
    while i < len(forecast.arrivals):
        lo = start_s + i * interval
        if lo >= b:
            break
        overlap = min(lo + interval, b) - max(lo, a)
        if overlap > 0:
            total += forecast.arrivals[i] * overlap / interval
        i += 1
    return total


def expected_for(
    window_s: int,
    stats: QueueStats,
    forecast: Forecast | None,
    state: QueueAlertState | None = None,
    forecast_start_s: float | None = None,
) -> tuple[float | None, Basis | None]:
    """contract 5: expected(W) and its basis: forecast, declared rate, else baseline."""
    now = stats.now
    if forecast is not None:
        start = forecast.start_s if forecast_start_s is None else forecast_start_s
        planned = _from_forecast(forecast, start, now - window_s, now)
        if planned is not None:
            return planned, "forecast"
    declared = stats.settings.expected_per_hour
    if declared is not None:
        return declared * window_s / HOUR_S, "declared"
    if state is not None and state.tier >= 1:
        rate = _frozen_rate(state.frozen_per_hour, window_s)
        return (None, None) if rate is None else (rate * window_s / HOUR_S, "baseline")
    counts = _counts(stats, window_s)
    if counts is None or counts[1] is None:
        return None, None
    return counts[1] * window_s / HOUR_S, "baseline"


def evidence(
    stats: QueueStats, forecast: Forecast | None, state: QueueAlertState
) -> list[Evidence]:
    """Every surge window's N, E, ratio, p and the tier it indicates (contract 5)."""
    s = stats.settings
    start = forecast.start_s if forecast is not None else None
    out: list[Evidence] = []
    for w in dict.fromkeys([*s.surge_windows_s, s.surge_window_s]):
        counts = _counts(stats, w)
        if counts is None:
            continue
        n = counts[0]
        e, basis = expected_for(w, stats, forecast, state, start)
        if not e:  # unknown, or nothing expected: no ratio, no p
            out.append(Evidence(w, n, None, None, None, None, 0))
            continue
        ratio = n / e
        p = _tail(n, e)
        tier = 0
        if n >= s.min_arrivals and p <= s.surge_p_value:
            tier = sum(1 for t in s.tier_thresholds if ratio >= t)
        out.append(Evidence(w, n, e, basis, ratio, p, tier))
    return out


def _shown(rows: list[Evidence], primary_s: int) -> Evidence | None:
    """The window indicating the highest tier (smallest p, then longest), else the primary."""
    top = max((r.tier for r in rows), default=0)
    if top:
        return min((r for r in rows if r.tier == top), key=lambda r: (r.p or 0.0, -r.window_s))
    return next((r for r in rows if r.window_s == primary_s), None)


def _freeze(stats: QueueStats) -> dict[int, float]:
    """The baseline of every surge window, in arrivals per hour, as observed now."""
    s = stats.settings
    out: dict[int, float] = {}
    for w in dict.fromkeys([*s.surge_windows_s, s.surge_window_s]):
        counts = _counts(stats, w)
        if counts is not None and counts[1] is not None:
            out[w] = float(counts[1])
    return out


def _numbers(stats: QueueStats, shown: Evidence | SurgeView | None) -> Numbers:
    s = stats.settings
    primary = stats.windows[s.primary_window_s]
    return {
        "window_s": shown.window_s if shown else s.surge_window_s,
        "ratio": shown.ratio if shown else None,
        "expected": shown.expected if shown else None,
        "basis": shown.basis if shown else None,
        "arrivals": shown.arrivals if shown else 0,
        "p": shown.p if shown else None,
        "answer_rate": primary.answer_rate,
        "answer_rate_live": primary.answer_rate_live,
        "offered": primary.offered,
        "waiting_over_target": stats.waiting_over_target,
        "primary_window_s": s.primary_window_s,
    }


def step(state: QueueAlertState, stats: QueueStats, forecast: Forecast | None) -> TickResult:
    """Advance one queue's alert state by one tick."""
    return _advance(state, stats, evidence(stats, forecast, state))


def _advance(state: QueueAlertState, stats: QueueStats, rows: list[Evidence]) -> TickResult:
    """`step` with the queue's evidence at this tick given."""
    s = stats.settings
    now = stats.now
    indicated = max((r.tier for r in rows), default=0)
    shown = _shown(rows, s.surge_window_s)
    surge = (
        SurgeView(shown.ratio, shown.expected, shown.arrivals, shown.window_s, shown.p, shown.basis)
        if shown
        else SurgeView(None, None, 0, s.surge_window_s)
    )
    numbers = _numbers(stats, shown)
    changes: list[AlertChange] = []

    def change(transition: Transition, tier: int, extra: Numbers) -> AlertChange:
        return AlertChange(
            alert_id=state.surge_id or "",
            kind="surge",
            queue_id=stats.queue_id,
            transition=transition,
            tier=tier,
            from_tier=state.tier,
            at=now,
            numbers={**numbers, **extra},
        )

    if indicated > state.tier:  # contract 5: the highest indicated tier, at once
        if state.tier == 0:
            surge_id = f"surge:{stats.queue_id}:{int(now * 1000)}"
            state = replace(state, surge_id=surge_id, frozen_per_hour=_freeze(stats))
        extra: Numbers = {"threshold": s.tier_thresholds[indicated - 1]}
        changes.append(change("raised" if state.tier == 0 else "escalated", indicated, extra))
        state = replace(state, tier=indicated, since=now, below_since=None)
    elif state.tier > 0:
        # contract 5: one tier down once not indicated and the primary surge window's
        # ratio has stayed below (threshold - hysteresis), for clear_after_s
        exit_line = s.tier_thresholds[state.tier - 1] - s.tier_hysteresis
        primary = next((r for r in rows if r.window_s == s.surge_window_s), None)
        ratio = primary.ratio if primary else None
        if indicated < state.tier and (ratio is None or ratio < exit_line):
            below = state.below_since if state.below_since is not None else now
            if state.below_since is None:
                state = replace(state, below_since=below)
            if now - below >= s.clear_after_s:
                new_tier = state.tier - 1
                extra = {"threshold": exit_line, "below_since_s": now - below}
                changes.append(
                    change("cleared" if new_tier == 0 else "deescalated", new_tier, extra)
                )
                # the next step down needs its own clear_after_s, counted from now
                state = replace(
                    state,
                    tier=new_tier,
                    since=now if new_tier else None,
                    below_since=now if new_tier else None,
                    surge_id=state.surge_id if new_tier else None,
                    frozen_per_hour=state.frozen_per_hour if new_tier else {},
                )
        elif state.below_since is not None:
            state = replace(state, below_since=None)

    updates: list[AlertChange] = []
    if state.tier > 0 and not changes:
        updates.append(change("updated", state.tier, {}))
    state, breach_changes, breach_updates = _step_breach(state, stats, numbers)
    changes.extend(breach_changes)
    updates.extend(breach_updates)
    return TickResult(state, surge, changes, updates, rows)


def _step_breach(
    state: QueueAlertState, stats: QueueStats, numbers: Numbers
) -> tuple[QueueAlertState, list[AlertChange], list[AlertChange]]:
    """contract 5: the sl_breach alert on the primary window's answer_rate_live."""
    s = stats.settings
    now = stats.now
    primary = stats.windows[s.primary_window_s]
    rate = primary.answer_rate_live
    volume = primary.offered + stats.waiting_over_target
    numbers = {**numbers, "threshold": s.sl_alert_below}

    def change(alert_id: str, transition: Literal["raised", "cleared", "updated"]) -> AlertChange:
        return AlertChange(
            alert_id=alert_id,
            kind="sl_breach",
            queue_id=stats.queue_id,
            transition=transition,
            at=now,
            numbers=numbers,
        )

    if not state.breach:
        if rate is not None and rate < s.sl_alert_below and volume >= 10:
            breach_id = f"sl_breach:{stats.queue_id}:{int(now * 1000)}"
            raised = replace(
                state, breach=True, breach_since=now, breach_ok_since=None, breach_id=breach_id
            )
            return raised, [change(breach_id, "raised")], []
        return state, [], []
    breach_id = state.breach_id or ""
    if rate is None or rate >= s.sl_alert_below + 0.02:
        ok_since = state.breach_ok_since if state.breach_ok_since is not None else now
        if now - ok_since >= s.clear_after_s:
            cleared = replace(
                state, breach=False, breach_since=None, breach_ok_since=None, breach_id=None
            )
            return cleared, [change(breach_id, "cleared")], []
        if state.breach_ok_since is None:
            state = replace(state, breach_ok_since=ok_since)
        return state, [], [change(breach_id, "updated")]
    if state.breach_ok_since is not None:
        state = replace(state, breach_ok_since=None)
    return state, [], [change(breach_id, "updated")]


# ---- every queue at once -----------------------------------------------------------------

_BASES: tuple[Basis | None, ...] = (None, "forecast", "declared", "baseline")
_BASIS_OF = np.array(_BASES, dtype=object)
_FORECAST, _DECLARED, _BASELINE = 1, 2, 3
# what `step_many` reads of every queue, each object visited once
_READ = attrgetter("settings", "surge_counts", "windows", "waiting_over_target")
_SETTINGS, _ARRAYS, _INDEX = attrgetter("settings"), attrgetter("arrays"), attrgetter("index")
_STATE = attrgetter("tier", "breach")
_RATE = attrgetter("answer_rate_live", "offered")


@dataclass
class _Group:
    """The evidence of the queues that share one settings object, as arrays: row `j` is
    the group's `j`th queue (in the order given), column `c` the window `windows[c]`."""

    windows: list[int]
    arrivals: np.ndarray  # N (int64)
    expected: np.ndarray  # E (float64), meaningful where `valid`
    basis: np.ndarray  # index into _BASES (int8)
    ratio: np.ndarray
    p: np.ndarray
    tier: np.ndarray  # the tier each window indicates
    valid: np.ndarray  # a window with a known, non-zero E (ratio and p are shown)
    present: np.ndarray | None  # the windows counted (None: all of them)

    def rows(self, j: int) -> list[Evidence]:
        """Row `j` as `evidence` gives it."""
        present = self.present[j].tolist() if self.present is not None else None
        out: list[Evidence] = []
        for c, (w, n, e, b, r, p, t, ok) in enumerate(
            zip(
                self.windows, self.arrivals[j].tolist(), self.expected[j].tolist(),
                self.basis[j].tolist(), self.ratio[j].tolist(), self.p[j].tolist(),
                self.tier[j].tolist(), self.valid[j].tolist(), strict=True,
            )
        ):  # fmt: skip
            if present is not None and not present[c]:
                continue
            if ok:
                out.append(Evidence(w, n, e, _BASES[b], r, p, t))
            else:
                out.append(Evidence(w, n, None, None, None, None, 0))
        return out


def _counted(
    s: QueueSettings,
    windows: list[int],
    members: Sequence[QueueStats],
    counts: Sequence[dict[int, tuple[int, int | None]]],
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Each member's arrivals per window and in the hour before (-1 while not observed),
    and the flat positions of the windows not counted (`counts`: their `surge_counts`)."""
    m, k = len(members), len(windows)
    try:  # every window counted, as the engine gives them: read in C
        got = list(map(itemgetter(*windows), counts))
        pairs = chain.from_iterable(got) if k == 1 else chain.from_iterable(chain(*got))
        flat = np.array(list(pairs), np.float64).reshape(m, k, 2)  # None -> nan
        before = flat[:, :, 1]
        hour = np.where(np.isnan(before), -1, before).astype(np.int64)
        return flat[:, :, 0].astype(np.int64), hour, []
    except KeyError:
        pass
    primary_s = s.surge_window_s
    arrivals: list[int] = []
    hours: list[int] = []
    missing: list[int] = []
    for st, of in zip(members, counts, strict=True):
        for w in windows:
            pair = of.get(w)
            if pair is None:
                if w == primary_s:
                    pair = st.surge_arrivals, st.baseline_arrivals
                else:
                    missing.append(len(arrivals))
                    pair = 0, None
            arrivals.append(pair[0])
            hours.append(-1 if pair[1] is None else pair[1])
    n = np.array(arrivals, np.int64).reshape(m, k)
    return n, np.array(hours, np.int64).reshape(m, k), missing


def _group(
    s: QueueSettings,
    members: list[int],
    states: Sequence[QueueAlertState],
    stats: Sequence[QueueStats],
    forecasts: Sequence[Forecast | None],
    raised: np.ndarray,
    counts: Sequence[dict[int, tuple[int, int | None]]],
    arrays: tuple[TickArrays, np.ndarray] | None = None,
) -> _Group:
    """`evidence` of every member, one array operation per step (one `gammainc` call);
    `raised`: the members at tier 1 or above; `counts`: their `surge_counts`, read from
    `arrays` instead when given (the tick's arrays, and the members' rows there)."""
    windows = list(dict.fromkeys([*s.surge_windows_s, s.surge_window_s]))
    m, k = len(members), len(windows)
    if arrays is not None:
        table, rows = arrays
        n = np.stack([table.arrivals[w][rows] for w in windows], axis=1)
        hour = np.stack([table.before[w][rows] for w in windows], axis=1)
        missing: list[int] = []
    else:
        n, hour, missing = _counted(s, windows, [stats[i] for i in members], counts)
    # contract 5: expected(W), by the first basis that has it (see `expected_for`)
    declared = s.expected_per_hour
    if declared is not None:
        e = np.array([declared * w / HOUR_S for w in windows] * m, np.float64).reshape(m, k)
        basis = np.full((m, k), _DECLARED, np.int8)
    else:
        e = hour * np.array(windows, np.int64) / HOUR_S
        basis = np.where(hour >= 0, _BASELINE, 0).astype(np.int8)
        for j in np.flatnonzero(raised).tolist():  # the baseline frozen at tier 1 entry
            frozen = states[members[j]].frozen_per_hour
            for c, w in enumerate(windows):
                rate = _frozen_rate(frozen, w)
                if rate is None:
                    basis[j, c] = 0
                else:
                    e[j, c] = rate * w / HOUR_S
                    basis[j, c] = _BASELINE
    for j, i in enumerate(members):
        forecast = forecasts[i]
        if forecast is not None:
            now = stats[i].now
            start = forecast.start_s
            for c, w in enumerate(windows):
                planned = _from_forecast(forecast, start, now - w, now)
                if planned is not None:
                    e[j, c] = planned
                    basis[j, c] = _FORECAST
    present: np.ndarray | None = None
    valid = (basis != 0) & (e != 0)
    if missing:
        present = np.ones(m * k, bool)
        present[missing] = False
        present = present.reshape(m, k)
        valid &= present
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(valid, n / np.where(valid, e, 1.0), np.nan)
    p = np.ones((m, k))
    tail = valid & (n >= 1)
    p[tail] = gammainc(n[tail].astype(np.float64), e[tail])
    tier = np.zeros((m, k), np.int64)
    for t in s.tier_thresholds:
        tier += ratio >= t
    tier[~(valid & (n >= s.min_arrivals) & (p <= s.surge_p_value))] = 0
    return _Group(windows, n, e, basis, ratio, p, tier, valid, present)


def _breach_due(
    s: QueueSettings, windows: Sequence[dict[int, WindowMetrics]], over: Sequence[int]
) -> np.ndarray:
    """contract 5: which queues' figures would raise the sl_breach alert (see
    `_step_breach`), from their `windows` and `waiting_over_target`."""
    primary = map(itemgetter(s.primary_window_s), windows)
    # None -> nan, never below; the counts are exact as floats
    figures = np.array(list(chain.from_iterable(map(_RATE, primary))), np.float64)
    figures = figures.reshape(len(over), 2)
    volume = figures[:, 1] + np.fromiter(over, np.int64, len(over))
    due: np.ndarray = (figures[:, 0] < s.sl_alert_below) & (volume >= 10)
    return due


def _breach_due_of(s: QueueSettings, arrays: TickArrays, rows: np.ndarray) -> np.ndarray:
    """`_breach_due` of the queues at these rows of the tick's arrays."""
    volume = arrays.offered[rows] + arrays.over[rows]
    due: np.ndarray = (arrays.live_rate[rows] < s.sl_alert_below) & (volume >= 10)
    return due


def _or_none(valid: np.ndarray, values: np.ndarray) -> list[object]:
    """`values` as Python objects, None where not `valid`."""
    out = values.astype(object)
    out[~valid] = None
    shown: list[object] = out.tolist()
    return shown


class Ticks:
    """What `step_many` gives: each queue's state and surge, every change and update in
    the queues' order, and each queue's evidence when asked for."""

    __slots__ = ("states", "surges", "changes", "updates", "_groups", "_group", "_row", "_alerts")

    def __init__(self) -> None:
        self.states: list[QueueAlertState] = []
        self.surges: list[SurgeView] = []
        self.changes: list[AlertChange] = []
        self.updates: list[AlertChange] = []
        self._groups: list[_Group] = []
        self._group = np.zeros(0, np.int64)  # each queue's group
        self._row = np.zeros(0, np.int64)  # and its row there
        # the changes and updates of each queue that has any
        self._alerts: dict[int, tuple[list[AlertChange], list[AlertChange]]] = {}

    def evidence(self, i: int) -> list[Evidence]:
        """Queue `i`'s evidence, as `step` gives it."""
        return self._groups[int(self._group[i])].rows(int(self._row[i]))

    def result(self, i: int) -> TickResult:
        """Queue `i`'s `TickResult`, equal to `step`'s."""
        changes, updates = self._alerts.get(i, ([], []))
        return TickResult(self.states[i], self.surges[i], changes, updates, self.evidence(i))


def step_many(
    states: Sequence[QueueAlertState],
    stats: Sequence[QueueStats],
    forecasts: Sequence[Forecast | None],
) -> Ticks:
    """`step` for many queues at once, with the same results: the evidence of all of them
    with array operations; at tier 0 with no tier indicated, the primary surge window
    shown and only the breach alert stepped (nothing at all when no breach is active or
    due); the others one by one through `step`'s own path. Queues of one engine tick
    are read from its arrays (`QueueStats.arrays`: arrivals per window, breach figures),
    others from each queue's figures: the same values."""
    nq = len(stats)
    out = Ticks()
    if not nq:
        return out
    arrays = stats[0].arrays  # every queue's figures as arrays, when one tick's
    if arrays is not None and all(map(is_, map(_ARRAYS, stats), repeat(arrays))):
        rows = np.fromiter(map(_INDEX, stats), np.intp, nq)
        settings: Sequence[QueueSettings] = list(map(_SETTINGS, stats))
    else:
        arrays = None
        settings, counts, windows, over = zip(*map(_READ, stats), strict=True)
    keys = np.fromiter(map(id, settings), np.int64, nq)
    if (keys == keys[0]).all():  # one settings object: one group
        first, which = np.zeros(1, np.int64), np.zeros(nq, np.int64)
    else:
        _, first, which = np.unique(keys, return_index=True, return_inverse=True)
    flags = np.fromiter(chain.from_iterable(map(_STATE, states)), np.int64, 2 * nq)
    flags = flags.reshape(nq, 2)
    tier_now, quiet = flags[:, 0], flags[:, 1] == 0  # quiet: no breach alert active
    # per queue: the indicated tier, the primary surge window's row, a breach due
    top = np.zeros(nq, np.int64)
    n, e, basis = np.zeros(nq, np.int64), np.zeros(nq), np.zeros(nq, np.int8)
    ratio, p, valid = np.zeros(nq), np.zeros(nq), np.zeros(nq, bool)
    primary_s = np.zeros(nq, np.int64)
    due = np.zeros(nq, bool)
    row = np.zeros(nq, np.int64)
    for g, at in enumerate(
        np.split(np.argsort(which, kind="stable"), np.cumsum(np.bincount(which))[:-1])
    ):
        s: QueueSettings = settings[int(first[g])]
        members = at.tolist()
        single = len(members) == nq
        if arrays is not None:
            grp = _group(
                s, members, states, stats, forecasts, tier_now[at] >= 1, (), (arrays, rows[at])
            )
        else:
            mine = counts if single else [counts[i] for i in members]
            grp = _group(s, members, states, stats, forecasts, tier_now[at] >= 1, mine)
        out._groups.append(grp)
        c = grp.windows.index(s.surge_window_s)
        top[at] = grp.tier.max(axis=1)
        n[at], e[at], basis[at] = grp.arrivals[:, c], grp.expected[:, c], grp.basis[:, c]
        ratio[at], p[at], valid[at] = grp.ratio[:, c], grp.p[:, c], grp.valid[:, c]
        primary_s[at] = s.surge_window_s
        row[at] = np.arange(len(members))
        if arrays is not None:
            due[at] = _breach_due_of(s, arrays, rows[at])
        elif single:
            due = _breach_due(s, windows, over)
        else:
            due[at] = _breach_due(s, [windows[i] for i in members], [over[i] for i in members])
    out._group, out._row = which, row
    # the surge shown at tier 0 with no tier indicated: the primary surge window's
    surges = out.surges = list(
        map(
            SurgeView,
            _or_none(valid, ratio),
            _or_none(valid, e),
            n.tolist(),
            primary_s.tolist(),
            _or_none(valid, p),
            _or_none(valid, _BASIS_OF[basis]),
        )
    )
    new_states = out.states = list(states)
    changes, updates, alerts = out.changes, out.updates, out._alerts
    still = (top == 0) & (tier_now == 0)  # the surge side neither moves nor updates
    for i in np.flatnonzero(~(still & quiet & ~due)).tolist():  # due: only where quiet
        state, st = states[i], stats[i]
        if still[i]:
            state, raised, updated = _step_breach(state, st, _numbers(st, surges[i]))
            new_states[i] = state
            changes.extend(raised)
            updates.extend(updated)
            alerts[i] = raised, updated
            continue
        result = _advance(state, st, out.evidence(i))
        alerts[i] = result.changes, result.updates
        new_states[i] = result.state
        surges[i] = result.surge
        changes.extend(result.changes)
        updates.extend(result.updates)
    return out
