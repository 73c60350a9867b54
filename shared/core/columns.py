"""A time-sorted columnar log of call events for every queue at once (pure numpy).

Windows are then contiguous slices found by binary search, and per-queue sums are
`bincount`s over a slice: one pass over the longest window serves every queue and
every window. A breakdown (by priority, channel or site) is the same sums over
`queue * groups + key`. Late events are merged into place (only the tail after the
earliest late `ts` is re-sorted), old events are dropped by moving the start offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

QUEUED, ANSWERED, ABANDONED, CALLBACK, OVERFLOWED, ENDED, CB_CONNECTED, CB_OTHER = range(8)
KINDS = 8
PRIORITIES = 4
CHANNELS = ("voice", "chat", "email", "callback")
DEFAULT_PRIORITY, DEFAULT_CHANNEL, UNKNOWN_SITE = 2, 0, 0  # contract 1: a call's defaults
# a call's priority, channel and site in one int (one column, one value per row)
CHANNEL_SHIFT, SITE_SHIFT = 2, 4
DEFAULT_ATTRS = DEFAULT_PRIORITY | DEFAULT_CHANNEL << CHANNEL_SHIFT | UNKNOWN_SITE << SITE_SHIFT


def pack(priority: int, channel: int, site: int) -> int:
    return priority | channel << CHANNEL_SHIFT | site << SITE_SHIFT


def unpack(attrs: int) -> tuple[int, int, int]:
    return attrs & 3, (attrs >> CHANNEL_SHIFT) & 3, attrs >> SITE_SHIFT


F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_COLUMNS = ("ts", "queue", "kind", "wait", "handle", "seq", "attrs")
ROW = len(_COLUMNS)
_WAIT, _SEQ, _ATTRS = (_COLUMNS.index(c) for c in ("wait", "seq", "attrs"))


@dataclass(frozen=True)
class Params:
    """Per-queue thresholds for one `totals` pass, each an array indexed by queue index."""

    sl_threshold: F64  # shape (queues, PRIORITIES): contract 4's per-priority target
    short_abandon: F64
    callback_target: F64


@dataclass(frozen=True)
class Totals:
    """Sums over a span of the log, each an array indexed by queue (or queue and key)."""

    counts: I64  # shape (rows, KINDS)
    within_target: I64  # answered with known wait <= the call's SL threshold
    short_abandoned: I64  # abandoned with known wait <= the queue's short-abandon limit
    answered_known: I64  # answered with known wait
    wait_sum: F64  # sum of known waits of answered calls
    handle_sum: F64  # sum of talk + hold + wrap of ended calls
    exposure_sum: F64  # sum of known waits of every call that left the queue
    callbacks_on_time: I64  # connected callbacks with known wait <= callback target

    def rows(self) -> TotalsRows:
        """The same sums as plain Python lists: per-queue reads without numpy scalars."""
        return TotalsRows(
            self.counts.tolist(),
            self.within_target.tolist(),
            self.short_abandoned.tolist(),
            self.answered_known.tolist(),
            self.wait_sum.tolist(),
            self.handle_sum.tolist(),
            self.exposure_sum.tolist(),
            self.callbacks_on_time.tolist(),
        )

    def take(self, rows: I64) -> Totals:
        """Only these rows (for the keys a breakdown has at all)."""
        return Totals(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.counts + other.counts,
            self.within_target + other.within_target,
            self.short_abandoned + other.short_abandoned,
            self.answered_known + other.answered_known,
            self.wait_sum + other.wait_sum,
            self.handle_sum + other.handle_sum,
            self.exposure_sum + other.exposure_sum,
            self.callbacks_on_time + other.callbacks_on_time,
        )


@dataclass(frozen=True)
class TotalsRows:
    counts: list[list[int]]
    within_target: list[int]
    short_abandoned: list[int]
    answered_known: list[int]
    wait_sum: list[float]
    handle_sum: list[float]
    exposure_sum: list[float]
    callbacks_on_time: list[int]


def cumulative_counts(ts: F64, queue: npt.NDArray[np.int32], bounds: F64, queues: int) -> I64:
    """Per queue, how many of these events (`ts` sorted) have bounds[0] < ts <= bounds[k],
    as row k (row 0 is zeros): the count in (bounds[a], bounds[b]] is row b minus row a,
    every span from one pass over the events of the longest."""
    at = np.searchsorted(ts, bounds, "right").tolist()
    out = np.zeros((len(at), queues), np.int64)
    for k in range(1, len(at)):
        out[k] = out[k - 1] + np.bincount(queue[at[k - 1] : at[k]], minlength=queues)
    return out


class EventLog:
    """Columns ts, queue, kind, wait (NaN when unknown), handle, seq and the call's
    priority, channel and site (`pack`ed), sorted by ts."""

    def __init__(self, capacity: int = 1024) -> None:
        self._cap = capacity
        self.ts = np.empty(capacity, np.float64)
        # the narrowest types that hold every value: 41 bytes an event, not 56
        self.queue = np.empty(capacity, np.int32)
        self.kind = np.empty(capacity, np.int8)
        self.wait = np.empty(capacity, np.float64)
        self.handle = np.empty(capacity, np.float64)
        self.seq = np.empty(capacity, np.int64)
        self.attrs = np.empty(capacity, np.int32)
        self.start = 0
        self.end = 0
        # buffered rows, flat: row i is [i * ROW : (i + 1) * ROW] (one tuple a row would be
        # an object the cyclic collector walks until `flush`); a bulk writer (the engine's
        # `add_many`) extends it with whole rows in `_COLUMNS` order, each with the
        # sequence number it takes from `next_seq`, as `append` does
        self.pending: list[float | int] = []
        self.next_seq = 0  # the sequence number of the next row
        self.version = 0  # counts merges: ts, queue and kind change only in `flush`

    def __len__(self) -> int:
        return self.end - self.start + len(self.pending) // ROW

    def append(
        self,
        ts: float,
        queue: int,
        kind: int,
        wait: float,
        handle: float,
        attrs: int = DEFAULT_ATTRS,
    ) -> int:
        """Buffer one event; returns its sequence number (for a later `resolve`)."""
        seq = self.next_seq
        self.next_seq = seq + 1
        self.pending += (ts, queue, kind, wait, handle, seq, attrs)
        return seq

    def resolve(self, ts: float, seq: int, wait: float | None, attrs: int | None) -> None:
        """Fill in an event's wait and its call's priority, channel and site (each unless
        None) once the call's `call.queued` (or callback request) has arrived."""
        pending = self.pending
        if pending and seq >= pending[_SEQ]:
            # buffered rows carry consecutive sequence numbers
            i = (seq - int(pending[_SEQ])) * ROW
            if wait is not None:
                pending[i + _WAIT] = wait
            if attrs is not None:
                pending[i + _ATTRS] = attrs
            return
        lo = int(np.searchsorted(self.ts[self.start : self.end], ts, "left")) + self.start
        while lo < self.end and self.ts[lo] == ts:
            if self.seq[lo] == seq:
                if wait is not None:
                    self.wait[lo] = wait
                if attrs is not None:
                    self.attrs[lo] = attrs
                return
            lo += 1

    def flush(self) -> None:
        """Merge buffered events into the sorted columns."""
        if not self.pending:
            return
        rows = self.pending
        self.pending = []
        self.version += 1
        n = len(rows) // ROW
        self._reserve(n)
        # one conversion of every row at once; the integers are exact as float64 (< 2**53)
        table = np.fromiter(rows, np.float64, len(rows)).reshape(n, ROW)
        lo, hi = self.end, self.end + n
        for j, name in enumerate(_COLUMNS):
            getattr(self, name)[lo:hi] = table[:, j]
        new_ts = self.ts[lo:hi]
        earliest = float(new_ts.min())
        sorted_new = bool(np.all(new_ts[1:] >= new_ts[:-1]))
        in_order = sorted_new and (self.end == self.start or earliest >= self.ts[self.end - 1])
        self.end = hi
        if not in_order:
            tail = int(np.searchsorted(self.ts[self.start : lo], earliest, "right")) + self.start
            order = np.argsort(self.ts[tail:hi], kind="stable") + tail
            for name in _COLUMNS:
                col = getattr(self, name)
                col[tail:hi] = col[order]

    def drop_before(self, cutoff: float) -> int:
        """Forget events with ts <= cutoff; returns how many were forgotten."""
        self.flush()
        start = int(np.searchsorted(self.ts[self.start : self.end], cutoff, "right")) + self.start
        dropped, self.start = start - self.start, start
        return dropped

    def cutoff_keeping(self, keep: int) -> float | None:
        """The latest ts to drop so that at most `keep` events remain (events of one ts
        go together), or None when there are no more than `keep`."""
        self.flush()
        excess = self.end - self.start - keep
        if excess <= 0:
            return None
        return float(self.ts[self.start + excess - 1])

    def index(self, ts: float) -> int:
        """The first position whose ts is > `ts` (the log must be flushed)."""
        return int(np.searchsorted(self.ts[self.start : self.end], ts, "right")) + self.start

    def totals(
        self,
        lo: int,
        hi: int,
        queues: int,
        p: Params,
        key: str | None = None,
        groups: int = 1,
        exposure: bool = True,
    ) -> Totals:
        """Sums over positions [lo, hi) per queue, or per (queue, key) with `key` one of
        "prio", "chan", "site" and `groups` its number of values (row q * groups + key).
        `exposure_sum` is per queue only, and zeros without `exposure` (a pass over the
        span saved where no patience is estimated)."""
        return self.totals_by(lo, hi, queues, p, [(key, groups)], exposure)[0]

    def totals_by(
        self,
        lo: int,
        hi: int,
        queues: int,
        p: Params,
        keys: Sequence[tuple[str | None, int]],
        exposure: bool = True,
    ) -> list[Totals]:
        """`totals` for each (key, groups) of `keys`, over the same events: which events
        count as what is found once for all of them, and only the rows differ."""
        q = self.queue[lo:hi]
        k = self.kind[lo:hi]
        w = self.wait[lo:hi]
        # each condition on the events of its own kind only: a fraction of the slice; every
        # selection by index (`flatnonzero`, `take`), several times faster than by mask
        # over millions of events, and the same events in the same order
        a = np.flatnonzero(k == ANSWERED)
        wa = w.take(a)
        known = np.flatnonzero(~np.isnan(wa))
        b = np.flatnonzero(k == ABANDONED)
        c = np.flatnonzero(k == CB_CONNECTED)
        with np.errstate(invalid="ignore"):
            # each answered call's target: row queue, column priority, read as one flat take
            target = q.take(a) * PRIORITIES + (self.attrs[lo:hi].take(a) & 3)
            within = np.flatnonzero(wa <= p.sl_threshold.ravel().take(target))
            short = b.take(np.flatnonzero(w.take(b) <= p.short_abandon[q.take(b)]))
            on_time = c.take(np.flatnonzero(w.take(c) <= p.callback_target[q.take(c)]))
        e = np.flatnonzero(k == ENDED)
        waits, handles = wa.take(known), self.handle[lo:hi].take(e)
        out = []
        for key, groups in keys:
            rows = queues * groups
            r = q if key is None else q * groups + self._key(key, lo, hi)
            counts = np.bincount(r * KINDS + k, minlength=rows * KINDS).reshape(rows, KINDS)
            ra = r.take(a)
            exposed: F64 = np.zeros(rows)
            if key is None and exposure:  # the patience estimate is per queue only
                left = np.flatnonzero(
                    (k != QUEUED) & (k != ENDED) & (k < CB_CONNECTED) & ~np.isnan(w)
                )
                exposed = np.bincount(r.take(left), weights=w.take(left), minlength=rows).astype(
                    np.float64
                )
            rk = ra.take(known)
            out.append(
                Totals(
                    counts=counts.astype(np.int64),
                    within_target=np.bincount(ra.take(within), minlength=rows).astype(np.int64),
                    short_abandoned=np.bincount(r.take(short), minlength=rows).astype(np.int64),
                    answered_known=np.bincount(rk, minlength=rows).astype(np.int64),
                    wait_sum=np.bincount(rk, weights=waits, minlength=rows).astype(np.float64),
                    handle_sum=np.bincount(r.take(e), weights=handles, minlength=rows).astype(
                        np.float64
                    ),
                    exposure_sum=exposed,
                    callbacks_on_time=np.bincount(r.take(on_time), minlength=rows).astype(np.int64),
                )
            )
        return out

    def _key(self, key: str, lo: int, hi: int) -> I64:
        """The priority, channel or site index of each event in [lo, hi)."""
        attrs = self.attrs[lo:hi]
        if key == "prio":
            return attrs & 3
        if key == "chan":
            return (attrs >> CHANNEL_SHIFT) & 3
        return attrs >> SITE_SHIFT

    def _reserve(self, extra: int) -> None:
        """Room for `extra` more rows at the end: the live rows move to the front, into
        new columns only when they would fill more than 3/4 of the old (then 3/2 of the
        need). Spare capacity stays under half the live rows, and every row is moved
        O(1) times on average (at least a quarter of the columns is appended between
        two moves)."""
        live = self.end - self.start
        if self.end + extra <= self._cap:
            return
        need = live + extra
        cap = self._cap if 4 * need <= 3 * self._cap else max(1024, need * 3 // 2)
        for name in _COLUMNS:
            old = getattr(self, name)
            if cap == self._cap:
                old[:live] = old[self.start : self.end]  # overlapping: numpy copies safely
            else:
                new = np.empty(cap, old.dtype)
                new[:live] = old[self.start : self.end]
                setattr(self, name, new)
        self._cap = cap
        self.start, self.end = 0, live
