"""15-minute intervals and "today" (contract 4 "Intervals"), from the engine's own log.

Pure: no clock, no I/O. An interval ending at `T` holds the events with
`T - interval_s < ts <= T`, exactly as a window of `interval_s` seconds at `now = T`
does, and its figures come from the same sums (`EventLog.totals`) and the same
classification (`engine.window_metrics`: short abandons, flow-outs under `sl_flowouts`,
per-priority targets, waits resolved from `call.queued`): an interval that equals a
window shows the same numbers. Each event counts by its own `ts`: a call queued at
10:14:50 and answered at 10:15:20 is an arrival of the 10:00 interval and an offered,
answered call of the 10:15 interval, as the windows count it.

`agents_staffed_avg` is time-weighted from the staffed counts the ticks see: the count
seen at one tick holds until the next (a gap over `max_gap_s` is not counted), and the
average is over the seconds some tick saw. `today` sums the day's closed intervals
(rates recomputed from the sums) and the open part from the log.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time
from zoneinfo import ZoneInfo

from shared.core.columns import TotalsRows
from shared.core.engine import Engine
from shared.core.erlang import agents_for_target, estimate_patience
from shared.core.figures import EMPTY_WINDOW, QueueStats, WindowMetrics, window_metrics
from shared.forecast import Forecast
from shared.messages.intervals import Interval, IntervalSums
from shared.queue_settings import QueueSettings
from shared.timefmt import iso_ms

INTERVAL_S = 900  # contract 4: closed on the clock, :00 :15 :30 :45
KEEP_S = 35 * 86400  # contract 4: intervals are kept 35 days
MAX_GAP_S = 60.0  # ticks further apart than this leave the gap unseen for staffing


@dataclass(frozen=True, slots=True)
class Part:
    """The figures of one span of one queue or site, with what lets spans add up."""

    window: WindowMetrics
    forecast: float | None = None
    exposure_s: float = 0.0
    staffed_s: float = 0.0
    covered_s: float = 0.0

    def __add__(self, o: Part) -> Part:
        forecast = None if self.forecast is None and o.forecast is None else (
            (self.forecast or 0.0) + (o.forecast or 0.0)
        )  # fmt: skip
        return Part(
            self.window + o.window,
            forecast,
            self.exposure_s + o.exposure_s,
            self.staffed_s + o.staffed_s,
            self.covered_s + o.covered_s,
        )

    @property
    def empty(self) -> bool:
        """No event of any kind and no agent staffed."""
        w = self.window
        counted = w.arrivals + w.answered + w.short_abandoned + w.abandoned + w.flowouts
        return not (counted + w.ended + w.callbacks_closed) and not self.staffed_s

    @property
    def staffed_avg(self) -> float | None:
        return self.staffed_s / self.covered_s if self.covered_s > 0 else None

    @property
    def patience_s(self) -> float | None:
        """As the engine estimates it: waiting time per abandonment (short ones included)."""
        w = self.window
        return estimate_patience(w.short_abandoned + w.abandoned, self.exposure_s)

    def sums(self) -> IntervalSums:
        w = self.window
        return IntervalSums(
            answered=w.answered, short_abandoned=w.short_abandoned, abandoned=w.abandoned,
            callbacks=w.callbacks, overflowed=w.overflowed, answered_known=w.answered_known,
            wait_sum=w.wait_sum, ended=w.ended, handle_sum=w.handle_sum,
            callbacks_completed=w.callbacks_completed, callbacks_closed=w.callbacks_closed,
            callbacks_on_time=w.callbacks_on_time, exposure_s=self.exposure_s,
            staffed_s=self.staffed_s, covered_s=self.covered_s,
        )  # fmt: skip

    def figures(self, required: int | None) -> dict[str, object]:
        """The contract's figures of this span (contract 4 "Intervals")."""
        w = self.window
        return {
            "arrivals": w.arrivals,
            "forecast": self.forecast,
            "offered": w.offered,
            "answered_within_target": w.answered_within_target,
            "answer_rate": w.answer_rate,
            "abandon_rate": w.abandon_rate,
            "aht_s": w.aht_s,
            "asa_s": w.asa_s,
            "agents_staffed_avg": self.staffed_avg,
            "agents_required": required,
        }


def part_of(record: Interval) -> Part:
    """A stored interval back as a `Part` (to sum a day after a restart)."""
    s = record.sums
    counts = replace(
        EMPTY_WINDOW, arrivals=record.arrivals, answered=s.answered,
        answered_within_target=record.answered_within_target,
        short_abandoned=s.short_abandoned, abandoned=s.abandoned, callbacks=s.callbacks,
        overflowed=s.overflowed, offered=record.offered,
        callbacks_completed=s.callbacks_completed, callbacks_closed=s.callbacks_closed,
        callbacks_on_time=s.callbacks_on_time, answered_known=s.answered_known,
        wait_sum=s.wait_sum, ended=s.ended, handle_sum=s.handle_sum,
    )  # fmt: skip
    return Part(EMPTY_WINDOW + counts, record.forecast, s.exposure_s, s.staffed_s, s.covered_s)


def required_agents(part: Part, span_s: float, settings: QueueSettings) -> int | None:
    """contract 4: the fewest agents for which Erlang A at the span's arrival rate, AHT and
    patience meets `sl_target` (Erlang C when no caller gave up: patience unbounded);
    null without an AHT or when the need is beyond any centre."""
    aht = part.window.aht_s
    if aht is None or aht <= 0 or span_s <= 0:
        return None
    try:
        return agents_for_target(
            part.window.arrivals / span_s,
            aht,
            settings.sl_threshold_s,
            settings.sl_target,
            patience_s=part.patience_s,
        )
    except ValueError:
        return None


def forecast_for(forecast: Forecast | None, a: float, b: float) -> float | None:
    """The forecast's arrivals in (a, b]; null when it has none of that span."""
    if forecast is None or forecast.end_s <= a or forecast.start_s >= b:
        return None
    return forecast.expected(a, b)


def local_midnight(now: float, timezone: str) -> float:
    """The epoch time of the last local midnight at or before `now` in `timezone`."""
    zone = ZoneInfo(timezone)
    day = datetime.fromtimestamp(now, zone).date()
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


@dataclass
class _Staffed:
    """Agent-seconds staffed and seconds seen of one interval, for the queue and by site."""

    staffed_s: float = 0.0
    covered_s: float = 0.0
    sites: dict[str, float] = field(default_factory=dict)


@dataclass
class _Queue:
    closed_through: float | None = None  # the end of the last closed interval
    day_start: float = -math.inf
    day: dict[float, Part] = field(default_factory=dict)  # today's closed, by start
    staffed: dict[float, _Staffed] = field(default_factory=dict)  # by interval start
    last_at: float | None = None
    last_total: int = 0
    last_sites: dict[str, int] = field(default_factory=dict)
    # the day's closed intervals summed, and the agents they require, while unchanged
    day_sum: tuple[tuple[float, float], Part, int | None] | None = None
    # intervals taken over from the store: closed again only if the log now differs
    stored: dict[float, Part] = field(default_factory=dict)


@dataclass(frozen=True)
class IntervalsTick:
    closed: list[Interval]  # intervals closed (or closed again after late events)
    today: dict[str, dict[str, object]]  # by queue: a `Today`'s JSON values


class Intervals:
    """Closes every queue's intervals on the clock and keeps its "today"."""

    def __init__(
        self,
        interval_s: int = INTERVAL_S,
        complete_from: float = -math.inf,
        require_seed: bool = False,
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        self.interval_s = interval_s
        self.complete_from = complete_from  # every event with a later ts is in the log
        self.require_seed = require_seed  # live: wait for the stored state of a queue
        self.max_gap_s = max_gap_s
        self.queues: dict[str, _Queue] = {}
        self.dirty: set[tuple[str, float]] = set()

    # ---- input ---------------------------------------------------------------

    def seeded(self, queue_id: str) -> bool:
        return queue_id in self.queues

    def seed(
        self, queue_id: str, closed_through: float | None, today: Iterable[Interval]
    ) -> tuple[float, float] | None:
        """Take over a queue: where its stored intervals end and today's stored ones.
        Returns the span of intervals that can no longer be closed from the log (the
        monitor was away longer than it rewinds): `services.monitor.rebuild` does it."""
        q = self.queues[queue_id] = _Queue()
        gap = None
        if closed_through is not None:
            first = self._complete_start()
            if closed_through < first:
                gap = (closed_through, first)
            q.closed_through = max(closed_through, first)
        for record in today:
            # the stored staffed time is kept if the interval is closed again
            slot = q.staffed.setdefault(record.start, _Staffed())
            if record.site is None:
                part = q.day[record.start] = q.stored[record.start] = part_of(record)
                q.day_sum = None
                slot.staffed_s, slot.covered_s = part.staffed_s, part.covered_s
                # events counted before the queue was taken over never marked their
                # intervals: one that reached the log after the old monitor closed it is
                # found when the log's sums are compared with the stored ones
                self.dirty.add((queue_id, record.start))
            else:
                slot.sites[record.site] = record.sums.staffed_s
        return gap

    def note(self, queue_id: str, ts: float) -> None:
        """A call event was counted: an interval already closed is closed again."""
        q = self.queues.get(queue_id)
        if q is not None and q.closed_through is not None and ts <= q.closed_through:
            self.dirty.add((queue_id, self.start_of(ts)))

    def start_of(self, ts: float) -> float:
        """The start of the interval (start, start + interval_s] holding `ts`."""
        return math.ceil(ts / self.interval_s) * self.interval_s - self.interval_s

    # ---- the tick -------------------------------------------------------------

    def tick(
        self,
        now: float,
        engine: Engine,
        stats: Mapping[str, QueueStats],
        forecasts: Mapping[str, Forecast],
    ) -> IntervalsTick:
        """Observe staffing, close what ended by `now`, and every queue's today."""
        engine.log.flush()
        rows = _RowCache(engine)
        # late events first, so that today counts an interval closed again at once
        closed: list[Interval] = self._late(now, engine, stats, rows, forecasts)
        today: dict[str, dict[str, object]] = {}
        for queue_id in sorted(stats):
            st = stats[queue_id]
            q = self.queues.get(queue_id)
            if q is None:
                if self.require_seed:
                    continue
                q = self.queues[queue_id] = _Queue()
            self._observe(q, st)
            if q.closed_through is None:
                q.closed_through = self._first_start(now, engine)
            forecast = forecasts.get(queue_id)
            ends = range(
                int(q.closed_through // self.interval_s) + 1,
                int(now // self.interval_s) + 1,
            )
            for n in ends:
                closed.extend(self._close(q, st, n * self.interval_s, rows, forecast))
            q.closed_through = max(q.closed_through, (ends.stop - 1) * self.interval_s)
            today[queue_id] = self._today(q, st, now, rows, forecast)
        # a queue another monitor took over is taken over again from what it stored
        self.queues = {k: v for k, v in self.queues.items() if k in stats}
        keep = now - engine.retention_s() - self.interval_s  # what late events may reopen
        for q in self.queues.values():
            q.staffed = {s: v for s, v in q.staffed.items() if s >= keep}
        return IntervalsTick(closed, today)

    def _first_start(self, now: float, engine: Engine) -> float:
        """Where a queue nobody closed before starts: its log, at most 35 days back."""
        i = self.interval_s
        first = engine.first_ts if math.isfinite(engine.first_ts) else now
        return max(
            math.floor(first / i) * i,
            self._complete_start(),
            math.floor((now - KEEP_S) / i) * i,
        )

    def _complete_start(self) -> float:
        """The first interval start from which the log holds every event."""
        if not math.isfinite(self.complete_from):
            return -math.inf
        return math.ceil(self.complete_from / self.interval_s) * self.interval_s

    def _observe(self, q: _Queue, st: QueueStats) -> None:
        """contract 4: the time-weighted staffed count; the last count holds until now."""
        now = st.now
        if q.last_at is not None and 0 < now - q.last_at <= self.max_gap_s:
            a = q.last_at
            while a < now:
                start = math.floor(a / self.interval_s) * self.interval_s
                b = min(now, start + self.interval_s)
                slot = q.staffed.setdefault(start, _Staffed())
                slot.covered_s += b - a
                slot.staffed_s += q.last_total * (b - a)
                for site, n in q.last_sites.items():
                    slot.sites[site] = slot.sites.get(site, 0.0) + n * (b - a)
                a = b
        q.last_at = now
        q.last_total = st.agents.staffed
        table = st.breakdowns
        sites = table.site_agents.get(st.queue_id, {}) if table is not None else {}
        q.last_sites = {site: c.staffed for site, c in sites.items() if c.staffed}

    def _close(
        self,
        q: _Queue,
        st: QueueStats,
        end: float,
        rows: _RowCache,
        forecast: Forecast | None,
        stored: Part | None = None,
    ) -> list[Interval]:
        """The queue's interval ending at `end`, and one per site with anything in it;
        nothing when it is the `stored` one unchanged."""
        start = end - self.interval_s
        per_queue = rows.queue_rows(start, end)
        per_site, groups = rows.site_rows(start, end)
        s = st.settings
        miss = s.sl_flowouts == "miss"
        i = st.index
        staffed = q.staffed.get(start, _Staffed())
        whole = Part(
            window_metrics(per_queue, i, 0, miss),
            forecast_for(forecast, start, end),
            per_queue.exposure_sum[i],
            staffed.staffed_s,
            staffed.covered_s,
        )
        if whole.empty:
            return []  # nothing happened and nobody was staffed: nothing to keep
        if stored is not None and _same(whole, stored):
            return []
        if start >= q.day_start:
            q.day[start] = whole
            q.day_sum = None
        out = [self._record(st, None, start, end, whole, whole, s)]
        names = rows.site_ids
        for k in range(groups):
            j = i * groups + k
            site_staffed = staffed.sites.get(names[k], 0.0)
            if not any(per_site.counts[j]) and not site_staffed:
                continue
            # patience is the queue's callers' (the log sums waiting time per queue only)
            figures = window_metrics(per_site, j, 0, miss)
            site = Part(figures, None, 0.0, site_staffed, staffed.covered_s)
            out.append(self._record(st, names[k], start, end, site, whole, s))
        return out

    def _record(
        self,
        st: QueueStats,
        site: str | None,
        start: float,
        end: float,
        part: Part,
        whole: Part,
        settings: QueueSettings,
    ) -> Interval:
        # a site's need: its own arrivals and AHT, the queue's callers' patience
        patience = part if site is None else _with_patience(part, whole)
        required = required_agents(patience, end - start, settings)
        return Interval.model_validate(
            {
                **part.figures(required),
                "queue_id": st.queue_id,
                "site": site,
                "start": start,
                "end": end,
                "sums": part.sums(),
            }
        )

    def _late(
        self,
        now: float,
        engine: Engine,
        stats: Mapping[str, QueueStats],
        rows: _RowCache,
        forecasts: Mapping[str, Forecast],
    ) -> list[Interval]:
        """Intervals closed again because late events fell in them (while still in the log)."""
        out: list[Interval] = []
        oldest = max(self.complete_from, now - engine.retention_s())
        for queue_id, start in sorted(self.dirty):
            q, st = self.queues.get(queue_id), stats.get(queue_id)
            if q is None or st is None or q.closed_through is None:
                continue
            if start < oldest or start + self.interval_s > q.closed_through:
                continue
            end = start + self.interval_s
            stored = q.stored.pop(start, None)
            out.extend(self._close(q, st, end, rows, forecasts.get(queue_id), stored))
        self.dirty = {(q, s) for q, s in self.dirty if q not in stats}
        return out

    def _today(
        self, q: _Queue, st: QueueStats, now: float, rows: _RowCache, forecast: Forecast | None
    ) -> dict[str, object]:
        """contract 4: the figures from local midnight in the queue's timezone to `now`,
        as the JSON values of a `Today` (validated with the snapshot that holds them)."""
        tz = st.settings.timezone
        midnight = rows.midnight(now, tz)
        if midnight != q.day_start:
            q.day_start = midnight
            q.day = {s: p for s, p in q.day.items() if s >= midnight}
            q.day_sum = None
        closed_to = max(midnight, q.closed_through or midnight)
        key = (midnight, closed_to)
        if q.day_sum is None or q.day_sum[0] != key:
            closed = Part(EMPTY_WINDOW)
            for start in sorted(q.day):
                closed = closed + q.day[start]
            # Erlang A over the day's closed intervals (the mean rate over their span): once
            # an interval, not every tick (it costs milliseconds a queue)
            # from the day's first kept interval (empty ones are not kept: a night
            # without calls or staff does not dilute the day's rate)
            span = closed_to - min(q.day) if q.day else 0.0
            required = required_agents(closed, span, st.settings) if q.day else None
            q.day_sum = (key, closed, required)
        _, total, required = q.day_sum
        if now > closed_to:
            per_queue = rows.queue_rows(closed_to, now)
            i = st.index
            open_staffed = [v for s, v in q.staffed.items() if s >= closed_to]
            total = total + Part(
                window_metrics(per_queue, i, 0, st.settings.sl_flowouts == "miss"),
                None,
                per_queue.exposure_sum[i],
                sum(v.staffed_s for v in open_staffed),
                sum(v.covered_s for v in open_staffed),
            )
        total = replace(total, forecast=forecast_for(forecast, midnight, now))
        return {**total.figures(required), "start": iso_ms(midnight), "timezone": tz}


def _same(a: Part, b: Part) -> bool:
    """The same interval figures and sums (a stored interval the log still agrees with)."""
    wa, wb = a.window, b.window
    return (wa.arrivals, wa.offered, wa.answered_within_target, a.sums()) == (
        wb.arrivals, wb.offered, wb.answered_within_target, b.sums()
    )  # fmt: skip


def _with_patience(part: Part, whole: Part) -> Part:
    """`part` with the abandonment and waiting of `whole` (for the patience estimate)."""
    w = replace(
        part.window, short_abandoned=whole.window.short_abandoned, abandoned=whole.window.abandoned
    )
    return replace(part, window=w, exposure_s=whole.exposure_s)


class _RowCache:
    """The log's sums over (a, b], per queue and per queue and site, once per tick each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.site_ids = list(engine.site_ids)
        self._queues: dict[tuple[float, float], TotalsRows] = {}
        self._sites: dict[tuple[float, float], TotalsRows] = {}
        self._midnights: dict[tuple[str, int], float] = {}
        settings = [engine.settings_for(q) for q in engine.queue_ids]
        self.params = engine.param_arrays(settings)  # the engine's own thresholds

    def queue_rows(self, a: float, b: float) -> TotalsRows:
        """Sums per queue over (a, b]."""
        found = self._queues.get((a, b))
        if found is None:
            log = self.engine.log
            lo, hi = log.index(a), log.index(b)
            nq = len(self.engine.queue_ids)
            found = self._queues[(a, b)] = log.totals(lo, hi, nq, self.params).rows()
        return found

    def site_rows(self, a: float, b: float) -> tuple[TotalsRows, int]:
        """Sums per queue and site over (a, b] (row `queue * groups + site`), and groups."""
        groups = len(self.site_ids)
        found = self._sites.get((a, b))
        if found is None:
            log = self.engine.log
            lo, hi = log.index(a), log.index(b)
            nq = len(self.engine.queue_ids)
            totals = log.totals(lo, hi, nq, self.params, "site", groups)
            found = self._sites[(a, b)] = totals.rows()
        return found, groups

    def midnight(self, now: float, timezone: str) -> float:
        key = (timezone, int(now // 60))
        found = self._midnights.get(key)
        if found is None:
            found = self._midnights[key] = local_midnight(now, timezone)
        return found
