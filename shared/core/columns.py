"""A time-sorted columnar log of call events for every queue at once (pure numpy).

Windows are then contiguous slices found by binary search, and per-queue sums are
`bincount`s over a slice: one pass over the longest window serves every queue and
every window. Late events are merged into place (only the tail after the earliest
late `ts` is re-sorted), old events are dropped by moving the start offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

QUEUED, ANSWERED, ABANDONED, CALLBACK, OVERFLOWED, ENDED = range(6)
KINDS = 6

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Totals:
    """Per-queue sums over a span of the log, each an array indexed by queue index."""

    counts: I64  # shape (queues, KINDS)
    within_target: I64  # answered with known wait <= the queue's SL threshold
    short_abandoned: I64  # abandoned with known wait <= the queue's short-abandon limit
    answered_known: I64  # answered with known wait
    wait_sum: F64  # sum of known waits of answered calls
    handle_sum: F64  # sum of talk + hold + wrap of ended calls
    exposure_sum: F64  # sum of known waits of every call that left the queue

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
        )

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.counts + other.counts,
            self.within_target + other.within_target,
            self.short_abandoned + other.short_abandoned,
            self.answered_known + other.answered_known,
            self.wait_sum + other.wait_sum,
            self.handle_sum + other.handle_sum,
            self.exposure_sum + other.exposure_sum,
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


class EventLog:
    """Columns ts, queue, kind, wait (NaN when unknown), handle, seq, sorted by ts."""

    def __init__(self, capacity: int = 1024) -> None:
        self._cap = capacity
        self.ts = np.empty(capacity, np.float64)
        self.queue = np.empty(capacity, np.int64)
        self.kind = np.empty(capacity, np.int64)
        self.wait = np.empty(capacity, np.float64)
        self.handle = np.empty(capacity, np.float64)
        self.seq = np.empty(capacity, np.int64)
        self.start = 0
        self.end = 0
        self._pending: list[tuple[float, int, int, float, float, int]] = []
        self._next_seq = 0

    def __len__(self) -> int:
        return self.end - self.start + len(self._pending)

    def append(self, ts: float, queue: int, kind: int, wait: float, handle: float) -> int:
        """Buffer one event; returns its sequence number (for a later `set_wait`)."""
        seq = self._next_seq
        self._next_seq += 1
        self._pending.append((ts, queue, kind, wait, handle, seq))
        return seq

    def set_wait(self, ts: float, seq: int, wait: float) -> None:
        """Fill in the wait of an event once its `call.queued` has arrived."""
        if self._pending and seq >= self._pending[0][5]:
            i = seq - self._pending[0][5]  # buffered rows carry consecutive sequence numbers
            row = self._pending[i]
            self._pending[i] = (row[0], row[1], row[2], wait, row[4], seq)
            return
        lo = int(np.searchsorted(self.ts[self.start : self.end], ts, "left")) + self.start
        while lo < self.end and self.ts[lo] == ts:
            if self.seq[lo] == seq:
                self.wait[lo] = wait
                return
            lo += 1

    def flush(self) -> None:
        """Merge buffered events into the sorted columns."""
        if not self._pending:
            return
        rows = self._pending
        self._pending = []
        n = len(rows)
        self._reserve(n)
        cols = list(zip(*rows, strict=True))
        new_ts = np.fromiter(cols[0], np.float64, n)
        lo, hi = self.end, self.end + n
        self.ts[lo:hi] = new_ts
        self.queue[lo:hi] = np.fromiter(cols[1], np.int64, n)
        self.kind[lo:hi] = np.fromiter(cols[2], np.int64, n)
        self.wait[lo:hi] = np.fromiter(cols[3], np.float64, n)
        self.handle[lo:hi] = np.fromiter(cols[4], np.float64, n)
        self.seq[lo:hi] = np.fromiter(cols[5], np.int64, n)
        earliest = float(new_ts.min())
        sorted_new = bool(np.all(new_ts[1:] >= new_ts[:-1]))
        in_order = sorted_new and (self.end == self.start or earliest >= self.ts[self.end - 1])
        self.end = hi
        if not in_order:
            tail = int(np.searchsorted(self.ts[self.start : lo], earliest, "right")) + self.start
            order = np.argsort(self.ts[tail:hi], kind="stable") + tail
            for col in (self.ts, self.queue, self.kind, self.wait, self.handle, self.seq):
                col[tail:hi] = col[order]

    def drop_before(self, cutoff: float) -> None:
        """Forget events with ts <= cutoff."""
        self.flush()
        self.start = (
            int(np.searchsorted(self.ts[self.start : self.end], cutoff, "right")) + self.start
        )

    def index(self, ts: float) -> int:
        """The first position whose ts is > `ts` (the log must be flushed)."""
        return int(np.searchsorted(self.ts[self.start : self.end], ts, "right")) + self.start

    def totals(
        self, lo: int, hi: int, queues: int, sl_threshold: F64, short_abandon: F64
    ) -> Totals:
        """Per-queue sums over positions [lo, hi); thresholds are per queue index."""
        q = self.queue[lo:hi]
        k = self.kind[lo:hi]
        w = self.wait[lo:hi]
        counts = np.bincount(q * KINDS + k, minlength=queues * KINDS).reshape(queues, KINDS)
        answered = k == ANSWERED
        known = answered & ~np.isnan(w)
        with np.errstate(invalid="ignore"):
            within = answered & (w <= sl_threshold[q])
            short = (k == ABANDONED) & (w <= short_abandon[q])
        ended = k == ENDED
        left = (k != QUEUED) & (k != ENDED) & ~np.isnan(w)
        return Totals(
            counts=counts.astype(np.int64),
            within_target=np.bincount(q[within], minlength=queues).astype(np.int64),
            short_abandoned=np.bincount(q[short], minlength=queues).astype(np.int64),
            answered_known=np.bincount(q[known], minlength=queues).astype(np.int64),
            wait_sum=np.bincount(q[known], weights=w[known], minlength=queues).astype(np.float64),
            handle_sum=np.bincount(
                q[ended], weights=self.handle[lo:hi][ended], minlength=queues
            ).astype(np.float64),
            exposure_sum=np.bincount(q[left], weights=w[left], minlength=queues).astype(np.float64),
        )

    def _reserve(self, extra: int) -> None:
        live = self.end - self.start
        if self.end + extra <= self._cap:
            return
        cap = max(self._cap, 1024)
        while live + extra > cap // 2:
            cap *= 2
        for name in ("ts", "queue", "kind", "wait", "handle", "seq"):
            old = getattr(self, name)
            new = np.empty(cap, old.dtype)
            new[:live] = old[self.start : self.end]
            setattr(self, name, new)
        self._cap = cap
        self.start, self.end = 0, live
