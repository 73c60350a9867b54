"""Per-queue settings (contract 7), shared by the monitor, the dispatcher and the API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Seconds = Annotated[float, Field(gt=0, le=86400)]


class QueueSettings(BaseModel):
    """Thresholds, windows and modes of one queue; every field has the contract's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sl_threshold_s: Seconds = 30
    short_abandon_s: Annotated[float, Field(ge=0, le=3600)] = 5
    windows_s: Annotated[list[Annotated[int, Field(ge=10, le=86400)]], Field(min_length=1)] = [
        300,
        900,
        3600,
    ]
    surge_window_s: Annotated[int, Field(ge=10, le=86400)] = 300
    tier_thresholds: Annotated[
        list[Annotated[float, Field(gt=0)]], Field(min_length=3, max_length=3)
    ] = [
        1.2,
        1.5,
        2.0,
    ]
    tier_hysteresis: Annotated[float, Field(ge=0, le=1)] = 0.1
    min_arrivals: Annotated[int, Field(ge=0)] = 10
    clear_after_s: Annotated[float, Field(ge=0, le=86400)] = 120
    sl_alert_below: Annotated[float, Field(ge=0, le=1)] = 0.85
    sl_target: Annotated[float, Field(gt=0, le=1)] = 0.9
    abandon_cap: Annotated[float, Field(gt=0, le=1)] = 0.05
    mode: Literal["auto", "approve"] = "auto"

    @field_validator("windows_s")
    @classmethod
    def _distinct_windows(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("windows must be distinct")
        return v

    @field_validator("tier_thresholds")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if not v[0] < v[1] < v[2]:
            raise ValueError("tier thresholds must increase: tier 1 < tier 2 < tier 3")
        return v

    @model_validator(mode="after")
    def _hysteresis_below_threshold(self) -> QueueSettings:
        if self.tier_hysteresis >= self.tier_thresholds[0]:
            raise ValueError("tier_hysteresis must be below the tier 1 threshold")
        return self

    @property
    def primary_window_s(self) -> int:
        """The first configured window is the primary one (contract 4)."""
        return self.windows_s[0]

    def updated(self, patch: dict[str, object]) -> QueueSettings:
        """A copy with the fields `patch` names changed, validated as a whole."""
        return QueueSettings.model_validate({**self.model_dump(), **patch})


DEFAULT_QUEUE_SETTINGS = QueueSettings()
