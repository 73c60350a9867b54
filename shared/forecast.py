"""Forecast arrivals per interval (contract 5, `PUT /v1/forecast`), prorated in an interval."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

MAX_SPAN_S = 7 * 86400


class Forecast(BaseModel):
    """Expected arrivals of one queue: `arrivals[i]` fall in interval i after `start`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_id: Annotated[str, Field(min_length=1, max_length=256)]
    start: AwareDatetime
    interval_s: Annotated[int, Field(ge=60, le=3600)]
    arrivals: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _at_most_a_week(self) -> Forecast:
        if len(self.arrivals) * self.interval_s > MAX_SPAN_S:
            raise ValueError("a forecast covers at most 7 days")
        return self

    @property
    def start_s(self) -> float:
        return self.start.timestamp()

    @property
    def end_s(self) -> float:
        return self.start_s + self.interval_s * len(self.arrivals)

    def covers(self, a: float, b: float) -> bool:
        """True when [a, b] lies inside the forecast's span."""
        return self.start_s <= a and b <= self.end_s

    def expected(self, a: float, b: float) -> float:
        """Forecast arrivals in (a, b], each interval's count spread evenly over it."""
        total = 0.0
        first = max(0, int((a - self.start_s) // self.interval_s))
        for i in range(first, len(self.arrivals)):
            lo = self.start_s + i * self.interval_s
            hi = lo + self.interval_s
            if lo >= b:
                break
            overlap = min(hi, b) - max(lo, a)
            if overlap > 0:
                total += self.arrivals[i] * overlap / self.interval_s
        return total
