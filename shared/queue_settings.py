"""Per-queue settings (contract 7), shared by the monitor, the dispatcher and the API."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Seconds = Annotated[float, Field(gt=0, le=86400)]
Share = Annotated[float, Field(ge=0, le=1)]
Lever = Literal["standby", "cross_skill", "partner", "emergency", "callback", "overflow"]
Trigger = Literal["sl_breach", "1", "2", "3"]
# contract 6: the centres' own three-level plan; a breach also calls the standby pool
# (README, "Decisions": with the default surge_p_value a slow, small surge raises no
# tier, and its breach is what brings people)
DEFAULT_PLAYBOOK: dict[Trigger, list[Lever]] = {
    "sl_breach": ["standby", "cross_skill"],
    "1": ["standby"],
    "2": ["cross_skill", "partner"],
    "3": ["emergency", "callback", "overflow"],
}


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
    # contract v2, section 4
    sl_flowouts: Literal["miss", "exclude"] = "miss"
    callback_target_s: Seconds = 1800
    callback_expiry_s: Annotated[float, Field(gt=0, le=30 * 86400)] = 86400
    priority_sl_threshold_s: dict[Literal["0", "1", "2", "3"], Seconds] = {}
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"
    # contract v2, section 5
    surge_windows_s: Annotated[
        list[Annotated[int, Field(ge=10, le=86400)]], Field(min_length=1, max_length=8)
    ] = [30, 60, 300, 900]
    # 1e-7, not contract 5's 1e-4: at 1e-4 quiet days page (README, "Decisions")
    surge_p_value: Annotated[float, Field(gt=0, le=0.5)] = 1e-7
    expected_per_hour: Annotated[float, Field(gt=0, le=1e7)] | None = None
    # contract v2, section 6
    playbook: dict[Trigger, list[Lever]] = DEFAULT_PLAYBOOK
    standby_share: Share = 0.2
    max_lent_share: Share = 0.3
    max_borrowed: Annotated[int, Field(ge=0, le=10000)] = 40
    moves_per_tick: Annotated[int, Field(ge=0, le=1000)] = 10
    overflow_to: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    approve_within_s: Seconds = 300
    # extensions of contract 7 (docs/agents.md): an agent is overdue on the board when
    # not_ready or wrap_up has lasted longer than these
    not_ready_alert_s: Seconds = 900.0
    wrap_up_alert_s: Seconds = 120.0

    @field_validator("windows_s")
    @classmethod
    def _distinct_windows(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("windows must be distinct")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (an IANA name such as Europe/Paris)"
            ) from None
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

    def threshold_for(self, priority: int) -> float:
        """The answer-within-target threshold of a call of this priority (contract 4)."""
        for key, threshold in self.priority_sl_threshold_s.items():
            if key == str(priority):
                return threshold
        return self.sl_threshold_s

    @property
    def primary_window_s(self) -> int:
        """The first configured window is the primary one (contract 4)."""
        return self.windows_s[0]

    def updated(self, patch: dict[str, object]) -> QueueSettings:
        """A copy with the fields `patch` names changed, validated as a whole."""
        return QueueSettings.model_validate({**self.model_dump(), **patch})


DEFAULT_QUEUE_SETTINGS = QueueSettings()
