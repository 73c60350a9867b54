"""Who is told of which alert, through which channels: routing rules and the on-call rota."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Channel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["webhook", "slack", "pagerduty"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    secret: str = ""  # webhook: the Standard Webhooks secret (`whsec_...` or raw)
    routing_key: str = ""  # pagerduty: the integration's routing key

    @model_validator(mode="after")
    def _needs(self) -> Channel:
        if self.type == "pagerduty" and not self.routing_key:
            raise ValueError("a pagerduty channel needs routing_key")
        if self.type == "webhook" and not self.secret:
            raise ValueError("a webhook channel needs a secret to sign with")
        return self


class Lead(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    channels: Annotated[list[Channel], Field(min_length=1)]


class Handover(BaseModel):
    """From `weekday` (0 Monday) at `at` (HH:MM, rota time), these leads in escalation order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weekday: Annotated[int, Field(ge=0, le=6)]
    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    leads: Annotated[list[str], Field(min_length=1)]

    def minute_of_week(self) -> int:
        hours, minutes = self.at.split(":")
        return self.weekday * 1440 + int(hours) * 60 + int(minutes)


class Rota(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "UTC"
    handovers: Annotated[list[Handover], Field(min_length=1)]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    def on_call(self, epoch: float) -> list[str]:
        """The leads on call at `epoch`: the latest handover before it, round the week."""
        local = datetime.fromtimestamp(epoch, ZoneInfo(self.timezone))
        minute = local.weekday() * 1440 + local.hour * 60 + local.minute
        ordered = sorted(self.handovers, key=Handover.minute_of_week)
        current = ordered[-1]  # before the first handover of the week: last week's last one
        for handover in ordered:
            if handover.minute_of_week() <= minute:
                current = handover
        return list(current.leads)


class Rule(BaseModel):
    """Which alerts go out, and to which rota; empty filters match everything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kinds: list[Literal["surge", "sl_breach"]] = ["surge", "sl_breach"]
    min_tier: Annotated[int, Field(ge=1, le=3)] = 2  # for surges
    queues: list[str] = []
    sites: list[str] = []
    rota: str = "default"

    def matches(self, kind: str, tier: int, queue_id: str, site: str | None) -> bool:
        if kind not in self.kinds:
            return False
        if kind == "surge" and tier < self.min_tier:
            return False
        if self.queues and queue_id not in self.queues:
            return False
        return not (self.sites and site not in self.sites)


class NotifyConfig(BaseModel):
    """Everything `PUT /v1/notify/config` sets (admin)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: list[Rule] = [Rule()]
    rotas: dict[str, Rota] = {}
    leads: list[Lead] = []
    ack_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 300
    repeat_every_s: Annotated[float, Field(gt=0, le=86400)] = 900
    reopen_within_s: Annotated[float, Field(ge=0, le=86400)] = 120  # flapping guard
    board_url: str = "http://127.0.0.1:8000/"
    api_url: str = "http://127.0.0.1:8000"

    @model_validator(mode="after")
    def _references(self) -> NotifyConfig:
        names = {lead.name for lead in self.leads}
        for rota_name, rota in self.rotas.items():
            for handover in rota.handovers:
                unknown = set(handover.leads) - names
                if unknown:
                    raise ValueError(f"rota {rota_name}: unknown leads {sorted(unknown)}")
        for rule in self.rules:
            if self.rotas and rule.rota not in self.rotas:
                raise ValueError(f"rule names rota {rule.rota!r}, which is not defined")
        return self

    def lead(self, name: str) -> Lead | None:
        return next((lead for lead in self.leads if lead.name == name), None)

    def recipients(
        self, kind: str, tier: int, queue_id: str, site: str | None, at: float
    ) -> list[str]:
        """The escalation order for an alert: the on-call leads of the first matching rule."""
        for rule in self.rules:
            if rule.matches(kind, tier, queue_id, site) and rule.rota in self.rotas:
                return self.rotas[rule.rota].on_call(at)
        return []
