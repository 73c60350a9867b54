"""Who is told of which alert, through which channels: routing rules and the on-call rota."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Text = Annotated[str, Field(max_length=200)]


def webhook_key(secret: str) -> bytes:
    """The signing key of a Standard Webhooks secret: `whsec_` and 24 to 64 bytes in base64."""
    if not secret.startswith("whsec_"):
        raise ValueError("a webhook secret starts with whsec_ (Standard Webhooks)")
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after whsec_ is not base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a webhook secret holds 24 to 64 bytes, not {len(key)}")
    return key


class Channel(BaseModel):
    """One way to reach a lead: a signed webhook, Slack, PagerDuty or SMS (Twilio)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["webhook", "slack", "pagerduty", "sms"]
    url: Annotated[str, Field(pattern=r"^https?://", max_length=2000)]
    secret: Annotated[str, Field(max_length=200)] = ""  # webhook: `whsec_...`
    routing_key: Text = ""  # pagerduty: the integration's routing key
    account_sid: Text = ""  # sms: the Twilio account; url is the API's base
    auth_token: Text = ""
    from_number: Text = ""
    to_number: Text = ""

    @model_validator(mode="after")
    def _needs(self) -> Channel:
        if self.type == "pagerduty" and not self.routing_key:
            raise ValueError("a pagerduty channel needs routing_key")
        if self.type == "webhook":
            if not self.secret:
                raise ValueError("a webhook channel needs a secret to sign with")
            webhook_key(self.secret)
        if self.type == "sms" and not all(
            (self.account_sid, self.auth_token, self.from_number, self.to_number)
        ):
            raise ValueError("an sms channel needs account_sid, auth_token, from_number, to_number")
        return self


class Lead(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]  # any text: ids never hold it
    channels: Annotated[list[Channel], Field(min_length=1, max_length=10)]


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
    ack_link_ttl_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600  # contract 7
    page_link_ttl_s: Annotated[float, Field(gt=0, le=30 * 86400)] = 7 * 86400
    min_update_s: Annotated[float, Field(ge=0, le=86400)] = 60  # updates of one incident
    slack_signing_secret: Annotated[str, Field(max_length=200)] = ""  # Slack app interactions
    pagerduty_webhook_secret: Annotated[str, Field(max_length=200)] = ""  # PagerDuty v3 webhooks

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


# Signed links (contract 7): a link in a push acts without a bearer token until it expires.
# The key is made once and kept in Redis (`Keys.link_key`), shared by the notifier and API.


def _mac(key: bytes, what: str, expires: int) -> str:
    return hmac.new(key, f"{what}\n{expires}".encode(), hashlib.sha256).hexdigest()[:40]


def link_sig(key: bytes, what: str, now: float, ttl_s: float) -> str:
    """`<expiry>.<mac>` for the action `what` (e.g. `ack\0<alert_id>\0<lead>`)."""
    expires = int(now + ttl_s)
    return f"{expires}.{_mac(key, what, expires)}"


def link_ok(key: bytes, what: str, sig: str, now: float) -> bool:
    """True when `sig` was made for `what` with `key` and has not expired."""
    expires, _, mac = sig.partition(".")
    if not expires.isdigit() or len(expires) > 12 or int(expires) < now:
        return False
    return hmac.compare_digest(mac, _mac(key, what, int(expires)))


def ack_what(alert_id: str, lead: str) -> str:
    return f"ack\0{alert_id}\0{lead}"


def page_what(incident_id: str) -> str:
    return f"incident\0{incident_id}"


def ack_link(api_url: str, key: bytes, alert_id: str, lead: str, now: float, ttl_s: float) -> str:
    """The one-tap acknowledgement link of a push: `GET /ack/{alert_id}?by=...&sig=...`."""
    sig = link_sig(key, ack_what(alert_id, lead), now, ttl_s)
    return f"{api_url}/ack/{quote(alert_id, safe='')}?by={quote(lead, safe='')}&sig={sig}"


def page_link(api_url: str, key: bytes, incident_id: str, now: float, ttl_s: float) -> str:
    """The incident's after-action page, readable from a phone without a token."""
    sig = link_sig(key, page_what(incident_id), now, ttl_s)
    return f"{api_url}/incidents/{quote(incident_id, safe='')}?sig={sig}"
