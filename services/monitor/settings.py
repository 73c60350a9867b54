"""Settings of the monitor service."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class MonitorSettings(CommonSettings):
    """`FLOORWATCH_MONITOR_*`, `FLOORWATCH_TICK_S` and the common settings."""

    tick_s: float = Field(2.0, gt=0, le=60, description="seconds between ticks")
    monitor_host: str = "127.0.0.1"
    monitor_port: int = 8002
    monitor_group_id: str = "floorwatch-monitor"
    monitor_grace_s: float = Field(300.0, ge=0, description="kept beyond the longest window")
    monitor_max_events: int | None = Field(
        None, ge=1000, description="events held at most; past it the oldest are forgotten "
        "(about 250 bytes each; unset: no cap)",
    )  # fmt: skip
    monitor_fetch_wait_ms: int = Field(
        50, ge=1, le=500, description="how long the broker may hold a fetch of the events "
        "topic for records to come (the local broker holds it the whole time when none "
        "have come, and an event that lands meanwhile waits for it)",
    )  # fmt: skip
