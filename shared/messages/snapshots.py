"""Queue snapshots (`floorwatch.metrics`, Redis, `GET /v1/queues`) and centre totals.

The monitor builds one `Snapshot` per queue per tick (contract 7's shape, the figures of
contract 4); readers decode the same model: `Snapshot.model_validate_json(body)`.
Rates are `null` where contract 4 says so; seconds are floats; times are RFC 3339 with
milliseconds on the wire.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.messages.alerts import Instant
from shared.messages.figures import Count, Frozen, Rate, Seconds
from shared.messages.intervals import Today


class WindowFigures(Frozen):
    """The windowed figures of contract 4 for one window."""

    arrivals: Count
    answered: Count
    answered_within_target: Count
    short_abandoned: Count
    abandoned: Count
    callbacks: Count
    overflowed: Count
    flowouts: Count
    offered: Count
    answer_rate: Rate
    answer_rate_live: Rate
    abandon_rate: Rate
    asa_s: Seconds | None
    aht_s: Seconds | None
    callbacks_completed: Count
    callback_rate: Rate


class AgentCounts(Frozen):
    """Agents by state (contract 4); `staffed` is all but offline."""

    available: Count = 0
    busy: Count = 0
    wrap_up: Count = 0
    not_ready: Count = 0
    staffed: Count = 0


class PointInTime(Frozen):
    """The figures of contract 4 that have no window."""

    waiting: Count
    waiting_over_target: Count
    longest_wait_s: Seconds
    callbacks_pending: Count
    oldest_callback_s: Seconds


class Breakdown(WindowFigures, PointInTime):
    """One key of `by_priority` or `by_channel`: the primary window and point in time."""


class SiteBreakdown(Breakdown):
    """One key of `by_site`, with the agents whose own site it is."""

    agents: AgentCounts


class Surge(BaseModel):
    """contract 5 as a snapshot shows it (the tier machine may add fields)."""

    # extra fields allowed: the tier machine's own additions pass through to readers
    model_config = ConfigDict(frozen=True, extra="allow")

    ratio: float | None
    expected: float | None
    arrivals: Count
    window_s: int
    p: float | None = None
    basis: Literal["forecast", "declared", "baseline"] | None = None
    tier: Annotated[int, Field(ge=0, le=3)]
    since: Instant | None = None


class Staffing(Frozen):
    """contract 7 `staffing`: as the dispatcher sized the queue (its leader writes it)."""

    needed: Count
    have: Annotated[float, Field(ge=0)]
    lent: Count
    borrowed: Count


class Snapshot(PointInTime):
    """One queue at `as_of` (contract 7 `GET /v1/queues/{queue_id}`)."""

    queue_id: Annotated[str, Field(min_length=1, max_length=256)]
    as_of: Instant
    windows: dict[str, WindowFigures]  # keyed by the window in seconds, "300"
    callbacks_expired: Count = 0
    agents: AgentCounts
    by_site: dict[str, SiteBreakdown]
    by_priority: dict[Literal["0", "1", "2", "3"], Breakdown]
    by_channel: dict[Literal["voice", "chat", "email", "callback"], Breakdown]
    surge: Surge
    sl_breach: bool
    today: Today | None = None  # contract 4: from local midnight to as_of
    staffing: Staffing | None = None  # null while no dispatcher leads


class Centre(PointInTime):
    """Centre totals (contract 4, `GET /v1/centre`): every queue summed, rates recomputed
    from the sums, an agent counted once; `primary` sums each queue's primary window."""

    as_of: Instant
    queues: Count
    windows: dict[str, WindowFigures]
    primary: WindowFigures
    callbacks_expired: Count = 0
    agents: AgentCounts
    by_site: dict[str, SiteBreakdown]
