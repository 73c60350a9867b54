"""Paging on-call leads per incident: one page, then updates, escalation, repeats. Pure.

A lead is paged once per incident (contract 5): when an alert of the incident first
matches a routing rule. What happens next (a tier up, a breach, what the dispatcher
moved or is waiting to have approved) is sent as one update at most every
`min_update_s`; an unacknowledged page goes down the rota every `ack_timeout_s` and,
past its last lead, is repeated to everyone told every `repeat_every_s`. An
acknowledgement (board, link, Slack, PagerDuty) stops it; the incident's close resolves it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shared.messages.incidents import Incident
from shared.notify_config import NotifyConfig

Event = Literal["trigger", "update", "escalate", "repeat", "acknowledge", "resolve"]


def lead_tag(name: str) -> str:
    """A short, header-safe stand-in for a lead's name (names may hold any text)."""
    return hashlib.sha256(name.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Push:
    """One message to one lead's channel; `delivery_id` (safe characters) makes it idempotent."""

    delivery_id: str
    incident_id: str
    event: Event
    lead: str
    channel: int  # index into the lead's channels
    at: float
    news: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:  # Any: JSON
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Push:
        return Push(**{**data, "news": tuple(data.get("news", ()))})


@dataclass
class Page:
    """The paging state of one incident."""

    incident_id: str
    recipients: list[str]
    state: str = "open"  # open, acknowledged, resolved
    step: int = 0  # recipients[:step + 1] have been told
    next_at: float | None = None
    acked_by: str | None = None
    pushes: int = 0
    last_push_at: float = 0.0
    facts: list[str] = field(default_factory=list)
    news: list[str] = field(default_factory=list)

    def told(self) -> list[str]:
        return self.recipients[: self.step + 1]


def facts(incident: Incident) -> dict[str, str]:
    """What a lead would want to hear of, keyed so that a change shows as a new key."""
    out: dict[str, str] = {}
    for alert in incident.alerts:
        if alert.state == "active":
            what = f"surge tier {alert.tier}" if alert.kind == "surge" else "answer rate breach"
            out[f"alert:{alert.alert_id}:{alert.tier}"] = what
    for action in incident.actions:
        if action.state in ("proposed", "sent", "done", "reverted"):
            what = action.summary or ", ".join(str(c.get("type")) for c in action.commands)
            label = "waiting for approval" if action.state == "proposed" else action.state
            out[f"action:{action.action_id}:{action.state}"] = f"{what}: {label}"[:300]
    return out


@dataclass
class Pager:
    pages: dict[str, Page] = field(default_factory=dict)

    def _push(
        self, config: NotifyConfig, page: Page, event: Event, leads: list[str], now: float
    ) -> list[Push]:
        page.pushes += 1
        page.last_push_at = now
        news, page.news = tuple(page.news), []
        out = []
        for name in leads:
            lead = config.lead(name)
            if lead is None:
                continue
            for i in range(len(lead.channels)):
                delivery_id = f"{page.incident_id}.{page.pushes}.{event}.{lead_tag(name)}.{i}"
                out.append(Push(delivery_id, page.incident_id, event, name, i, now, news))
        return out

    def on_incident(self, incident: Incident, config: NotifyConfig, now: float) -> list[Push]:
        """The incident changed: page, queue an update, pass on an ack, or resolve."""
        page = self.pages.get(incident.incident_id)
        known = facts(incident)
        if page is None:
            if incident.state != "open":
                return []
            recipients = self._recipients(incident, config, now)
            if not recipients:
                return []
            page = Page(incident.incident_id, recipients, next_at=now + config.ack_timeout_s)
            page.facts = sorted(known)
            self.pages[incident.incident_id] = page
            return self._push(config, page, "trigger", page.told(), now)
        if page.state == "resolved":
            return []
        out: list[Push] = []
        new = [known[k] for k in sorted(known) if k not in page.facts]
        page.facts = sorted(set(page.facts) | set(known))
        page.news += [n for n in new if n not in page.news]
        acked = next((a for a in incident.alerts if a.acked_by is not None), None)
        if acked is not None and page.state == "open":
            page.state, page.next_at, page.acked_by = "acknowledged", None, acked.acked_by
            out += self._push(config, page, "acknowledge", page.told(), now)
        if incident.state == "closed":
            page.state, page.next_at = "resolved", None
            out += self._push(config, page, "resolve", page.told(), now)
        return out

    def on_tick(self, config: NotifyConfig, now: float) -> list[Push]:
        """Escalate or repeat unacknowledged pages; send held updates when they are due."""
        out: list[Push] = []
        for page in self.pages.values():
            if page.state == "open" and page.next_at is not None and page.next_at <= now:
                if page.step + 1 < len(page.recipients):
                    page.step += 1
                    out += self._push(config, page, "escalate", [page.recipients[page.step]], now)
                    page.next_at = now + config.ack_timeout_s
                else:
                    out += self._push(config, page, "repeat", page.told(), now)
                    page.next_at = now + config.repeat_every_s
            elif page.state != "resolved" and page.news:
                if now - page.last_push_at >= config.min_update_s:
                    out += self._push(config, page, "update", page.told(), now)
        return out

    @staticmethod
    def _recipients(incident: Incident, config: NotifyConfig, now: float) -> list[str]:
        for alert in incident.alerts:
            if alert.state == "active":
                leads = config.recipients(alert.kind, alert.tier, incident.queue_id, None, now)
                if leads:
                    return leads
        return []

    def forget(self, older_than: float) -> None:
        """Drop resolved pages last pushed before `older_than` (the state stays small)."""
        self.pages = {
            k: p
            for k, p in self.pages.items()
            if p.state != "resolved" or p.last_push_at >= older_than
        }

    def as_json(self) -> dict[str, Any]:  # Any: JSON
        return {"pages": {k: asdict(v) for k, v in self.pages.items()}}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Pager:
        return Pager(pages={k: Page(**v) for k, v in data.get("pages", {}).items()})
