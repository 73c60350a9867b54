"""Incidents for on-call leads: open, update, escalate, acknowledge, resolve. Pure.

One incident per alert (its `alert_id` is the PagerDuty `dedup_key`); a tier escalation
updates it. An alert that clears and is raised again for the same queue within
`reopen_within_s` is the same incident: the resolve is held back that long.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shared.notify_config import NotifyConfig

Event = Literal["trigger", "update", "escalate", "repeat", "acknowledge", "resolve"]


@dataclass
class Incident:
    incident_id: str
    kind: str
    queue_id: str
    site: str | None
    tier: int
    numbers: dict[str, Any]  # Any: the alert's numbers, as the monitor sent them
    opened_at: float
    recipients: list[str]
    state: str = "open"  # open, acknowledged, clearing, resolved
    step: int = 0  # recipients[:step + 1] have been told
    next_at: float | None = None
    resolve_at: float | None = None
    acked_by: str | None = None
    alert_ids: list[str] = field(default_factory=list)
    pushes: int = 0

    def told(self) -> list[str]:
        return self.recipients[: self.step + 1]


@dataclass(frozen=True)
class Push:
    """One message to one lead's channel; `delivery_id` makes it idempotent."""

    delivery_id: str
    incident_id: str
    event: Event
    lead: str
    channel: int  # index into the lead's channels
    at: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Notifier:
    incidents: dict[str, Incident] = field(default_factory=dict)
    by_alert: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # transitions handled, for redeliveries

    def _push(
        self, config: NotifyConfig, incident: Incident, event: Event, leads: list[str], now: float
    ) -> list[Push]:
        incident.pushes += 1
        out = []
        for name in leads:
            lead = config.lead(name)
            if lead is None:
                continue
            for i in range(len(lead.channels)):
                delivery_id = f"{incident.incident_id}|{incident.pushes}|{event}|{name}|{i}"
                out.append(Push(delivery_id, incident.incident_id, event, name, i, now))
        return out

    def on_change(self, change: dict[str, Any], config: NotifyConfig, now: float) -> list[Push]:
        """An alert transition from the monitor (or an acknowledgement from the API)."""
        alert_id = str(change["alert_id"])
        transition = change["transition"]
        key = f"{alert_id}|{transition}|{change.get('at')}|{change.get('tier')}"
        if key in self.seen:
            return []  # Kafka delivered it again
        self.seen = [*self.seen[-999:], key]
        incident = self.incidents.get(self.by_alert.get(alert_id, ""))
        if transition in ("raised", "escalated"):
            if incident is not None and incident.state in ("open", "acknowledged"):
                incident.tier = int(change.get("tier", incident.tier))
                incident.numbers = change.get("numbers") or {}
                return self._push(config, incident, "update", incident.told(), now)
            return self._open(change, config, now)
        if incident is None:
            return []
        if transition == "deescalated":
            incident.tier = int(change.get("tier", incident.tier))
            incident.numbers = change.get("numbers") or {}
            return []
        if transition == "cleared" and incident.state != "resolved":
            incident.state, incident.next_at = "clearing", None
            incident.resolve_at = now + config.reopen_within_s
            return []
        if transition == "acknowledged" and incident.state == "open":
            incident.state, incident.next_at, incident.acked_by = (
                "acknowledged",
                None,
                change.get("by"),
            )
            return self._push(config, incident, "acknowledge", incident.told(), now)
        return []

    def _open(self, change: dict[str, Any], config: NotifyConfig, now: float) -> list[Push]:
        kind, queue_id = str(change.get("kind")), str(change.get("queue_id"))
        tier = int(change.get("tier", 0))
        site = change.get("site")
        recipients = config.recipients(kind, tier, queue_id, site, now)
        if not recipients:
            return []
        alert_id = str(change["alert_id"])
        for incident in self.incidents.values():  # the same trouble back within the window
            if incident.state == "clearing" and (incident.kind, incident.queue_id) == (
                kind,
                queue_id,
            ):
                incident.state, incident.resolve_at = "open", None
                incident.tier, incident.numbers = tier, change.get("numbers") or {}
                incident.alert_ids.append(alert_id)
                incident.next_at = None if incident.acked_by else now + config.ack_timeout_s
                if incident.acked_by:
                    incident.state = "acknowledged"
                self.by_alert[alert_id] = incident.incident_id
                return self._push(config, incident, "update", incident.told(), now)
        incident = Incident(
            incident_id=alert_id, kind=kind, queue_id=queue_id, site=site, tier=tier,
            numbers=change.get("numbers") or {}, opened_at=now, recipients=recipients,
            next_at=now + config.ack_timeout_s, alert_ids=[alert_id],
        )  # fmt: skip
        self.incidents[alert_id] = incident
        self.by_alert[alert_id] = alert_id
        return self._push(config, incident, "trigger", incident.told(), now)

    def on_tick(self, config: NotifyConfig, now: float) -> list[Push]:
        """Escalate unacknowledged incidents, repeat past the last lead, send due resolves."""
        out: list[Push] = []
        for incident in self.incidents.values():
            if (
                incident.state == "open"
                and incident.next_at is not None
                and incident.next_at <= now
            ):
                if incident.step + 1 < len(incident.recipients):
                    incident.step += 1
                    out += self._push(
                        config, incident, "escalate", [incident.recipients[incident.step]], now
                    )
                    incident.next_at = now + config.ack_timeout_s
                else:
                    out += self._push(config, incident, "repeat", incident.told(), now)
                    incident.next_at = now + config.repeat_every_s
            elif (
                incident.state == "clearing"
                and incident.resolve_at is not None
                and incident.resolve_at <= now
            ):
                incident.state, incident.resolve_at = "resolved", None
                out += self._push(config, incident, "resolve", incident.told(), now)
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "incidents": {k: asdict(v) for k, v in self.incidents.items()},
            "by_alert": self.by_alert,
            "seen": self.seen,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Notifier:
        return Notifier(
            incidents={k: Incident(**v) for k, v in data.get("incidents", {}).items()},
            by_alert=dict(data.get("by_alert", {})),
            seen=list(data.get("seen", [])),
        )
