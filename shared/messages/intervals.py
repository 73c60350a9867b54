"""15-minute intervals and "today" (contract 4 "Intervals", contract 7 `GET /v1/intervals`).

The monitor closes one `Interval` per queue, and one per site of that queue, every
`interval_s` on the clock; it stores them in Redis (`Keys.intervals`) with the `sums`
behind the rates, so that intervals add up into a day and a day can be rebuilt after a
restart. Readers see the contract's fields: `Interval.public()`. Every snapshot carries
`today`: the same figures from local midnight in the queue's `timezone` to `as_of`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from shared.messages.alerts import Instant
from shared.messages.figures import Count, Frozen, Rate, Seconds


class IntervalFigures(Frozen):
    """The figures of one interval, or of today so far (contract 4)."""

    arrivals: Count
    forecast: Annotated[float, Field(ge=0)] | None  # null without a forecast
    offered: Count
    answered_within_target: Count
    answer_rate: Rate
    abandon_rate: Rate
    aht_s: Seconds | None
    asa_s: Seconds | None
    agents_staffed_avg: Annotated[float, Field(ge=0)] | None  # null: no tick saw the span
    agents_required: Count | None  # null without an AHT


class IntervalSums(Frozen):
    """The counts and sums behind an interval's rates: intervals add up into days."""

    answered: Count = 0
    short_abandoned: Count = 0
    abandoned: Count = 0
    callbacks: Count = 0
    overflowed: Count = 0
    answered_known: Count = 0
    wait_sum: Seconds = 0.0
    ended: Count = 0
    handle_sum: Seconds = 0.0
    callbacks_completed: Count = 0
    callbacks_closed: Count = 0
    callbacks_on_time: Count = 0
    exposure_s: Seconds = 0.0  # waiting time of every call that left the queue (patience)
    staffed_s: Seconds = 0.0  # agent-seconds staffed, from the ticks that saw the span
    covered_s: Seconds = 0.0  # seconds of the span some tick saw


class Interval(IntervalFigures):
    """One closed interval of one queue (`site` null) or of one site of it."""

    queue_id: Annotated[str, Field(min_length=1, max_length=256)]
    site: str | None = None
    start: Instant
    end: Instant
    sums: IntervalSums

    def public(self) -> dict[str, Any]:  # Any: JSON values
        """The interval as `GET /v1/intervals` shows it (without the sums)."""
        return self.model_dump(mode="json", exclude={"sums"})


class Today(IntervalFigures):
    """A queue's figures from local midnight to the snapshot's `as_of`."""

    start: Instant  # local midnight, in UTC
    timezone: str
