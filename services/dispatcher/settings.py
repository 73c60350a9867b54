"""Settings of the dispatcher service."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class DispatcherSettings(CommonSettings):
    """`FLOORWATCH_DISPATCH_*`, `FLOORWATCH_DISPATCHER_*`, `FLOORWATCH_TICK_S`, common ones."""

    tick_s: float = Field(2.0, gt=0, le=60)
    dispatcher_host: str = "127.0.0.1"
    dispatcher_port: int = 8003
    dispatch_target: str = Field("telephony", description="key of commands on the commands topic")
    dispatch_endpoint: str = Field("", description="HTTPS endpoint that also receives commands")
    dispatch_secret: str = Field("", description="HMAC-SHA256 secret for the endpoint")
    dispatch_endpoint_timeout_s: float = Field(5.0, gt=0)
    dispatch_endpoint_retries: int = Field(3, ge=0, le=10)
    staffing_every_s: float = Field(
        4.0, ge=0, le=60, description="how often each queue's staffing is sized and stored"
    )
