"""What each channel is sent: a signed Standard Webhook, Slack Block Kit, a PagerDuty event,
an SMS through Twilio's Messaging API. Every push carries the numbers now and a signed,
expiring one-tap ack link."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from standardwebhooks import Webhook

from services.notify.pager import Push
from shared.messages.incidents import Incident
from shared.notify_config import Channel, NotifyConfig, ack_link, page_link

PD_ACTION = {"acknowledge": "acknowledge", "resolve": "resolve"}  # every other event triggers
PD_DEDUP_MAX = 255  # PagerDuty refuses longer dedup keys


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Links:
    """The links of one push to one lead."""

    ack: str | None  # acknowledges the incident's latest unacknowledged alert
    ack_alert: str | None  # that alert's id
    page: str
    approve_action: str | None  # a plan waiting for a lead


def _pct(value: object) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, int | float) else "n/a"


def headline(incident: Incident, event: str, acked_by: str | None = None) -> str:
    """One line a lead can act on from a phone's lock screen, with the numbers now."""
    n = incident.numbers_now
    kinds = {a.kind for a in incident.alerts if a.state == "active"}
    parts = [incident.queue_id + ":"]
    if "surge" in kinds:
        parts.append(f"surge tier {incident.tier}, {_pct(n.get('ratio'))} of expected,")
    elif "sl_breach" in kinds:
        parts.append("answer rate breach,")
    parts.append(f"answer rate {_pct(n.get('answer_rate_live'))} now")
    prefix = {
        "resolve": "RESOLVED",
        "acknowledge": f"ACK by {acked_by or 'a lead'}",
        "escalate": "ESCALATED",
        "update": "UPDATE",
        "repeat": "STILL OPEN",
    }.get(event, "OPEN")
    return f"[{prefix}] {' '.join(parts)}"


def dispatcher_lines(incident: Incident) -> list[str]:
    """What the dispatcher did and what waits for approval, newest first (at most 3)."""
    lines = []
    for action in sorted(incident.actions, key=lambda a: a.changed_at, reverse=True)[:3]:
        what = action.summary or ", ".join(str(c.get("type")) for c in action.commands)
        state = "waiting for approval" if action.state == "proposed" else action.state
        lines.append(f"{what}: {state}")
    return lines


def links(incident: Incident, lead: str, config: NotifyConfig, key: bytes, now: float) -> Links:
    pending = [a for a in incident.alerts if a.acked_by is None and a.state == "active"]
    ack = alert_id = None
    if pending:
        alert_id = max(pending, key=lambda a: a.raised_at).alert_id
        ack = ack_link(config.api_url, key, alert_id, lead, now, config.ack_link_ttl_s)
    proposed = [a for a in incident.actions if a.state == "proposed"]
    approve = max(proposed, key=lambda a: a.created_at).action_id if proposed else None
    page = page_link(config.api_url, key, incident.incident_id, now, config.page_link_ttl_s)
    return Links(ack, alert_id, page, approve)


def text(incident: Incident, push: Push, acked_by: str | None, ls: Links) -> str:
    """The plain-text body of a push (SMS, Slack fallback)."""
    lines = [headline(incident, push.event, acked_by), *dispatcher_lines(incident)]
    if ls.ack is not None:
        lines.append(f"Ack: {ls.ack}")
    lines.append(f"Details: {ls.page}")
    return "\n".join(lines)


def dedup_key(incident: Incident) -> str:
    """The PagerDuty dedup key: the incident id, safe characters, well within 255."""
    return incident.incident_id[:PD_DEDUP_MAX]


def slack_blocks(incident: Incident, push: Push, acked_by: str | None, ls: Links) -> list[Any]:
    """Block Kit: the headline, what the dispatcher did, and one-tap buttons."""
    body = "\n".join(f"• {line}" for line in dispatcher_lines(incident)) or "No action yet."
    buttons: list[dict[str, Any]] = []  # Any: Block Kit JSON
    if ls.ack_alert is not None:
        ack = {"type": "plain_text", "text": "Ack"}
        buttons.append({"type": "button", "action_id": "ack", "style": "primary",
                        "text": ack, "value": ls.ack_alert})  # fmt: skip
    if ls.approve_action is not None:
        buttons.append({"type": "button", "action_id": "approve", "value": ls.approve_action,
                        "text": {"type": "plain_text", "text": "Approve plan"}})  # fmt: skip
    buttons.append({"type": "button", "action_id": "open", "url": ls.page,
                    "text": {"type": "plain_text", "text": "Open incident"}})  # fmt: skip
    title = headline(incident, push.event, acked_by)[:3000]
    return [
        {"type": "section", "text": {"type": "plain_text", "text": title}},
        {"type": "section", "text": {"type": "plain_text", "text": body[:3000]}},
        {"type": "actions", "block_id": incident.incident_id, "elements": buttons},
    ]  # fmt: skip


def build(
    push: Push,
    incident: Incident,
    channel: Channel,
    config: NotifyConfig,
    key: bytes,
    acked_by: str | None,
    now: float,
) -> Request:
    """The HTTP request for one push through one channel, built at the time of the attempt."""
    ls = links(incident, push.lead, config, key, now)
    json = {"content-type": "application/json"}
    if channel.type == "pagerduty":
        action = PD_ACTION.get(push.event, "trigger")
        event: dict[str, Any] = {  # Any: PagerDuty Events API v2 JSON
            "routing_key": channel.routing_key,
            "event_action": action,
            "dedup_key": dedup_key(incident),
        }
        if action == "trigger":
            breach = any(a.kind == "sl_breach" and a.state == "active" for a in incident.alerts)
            event["payload"] = {
                "summary": headline(incident, push.event, acked_by)[:1024],
                "source": f"floorwatch/{incident.queue_id}"[:255],
                "severity": "critical" if breach or incident.tier >= 3 else "error",
                "custom_details": {**incident.numbers_now, "tier": incident.tier,
                                   "dispatcher": dispatcher_lines(incident), "ack": ls.ack},
            }  # fmt: skip
            event["links"] = [{"href": ls.page, "text": "incident"},
                              {"href": config.board_url, "text": "wall board"}]  # fmt: skip
        return Request(channel.url, json, orjson.dumps(event))
    if channel.type == "slack":
        message = {
            "text": text(incident, push, acked_by, ls),
            "blocks": slack_blocks(incident, push, acked_by, ls),
        }
        return Request(channel.url, json, orjson.dumps(message))
    if channel.type == "sms":
        sid = quote(channel.account_sid, safe="")
        url = f"{channel.url.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        form = {"To": channel.to_number, "From": channel.from_number,
                "Body": text(incident, push, acked_by, ls)[:1600]}  # fmt: skip
        auth = base64.b64encode(f"{channel.account_sid}:{channel.auth_token}".encode()).decode()
        headers = {"content-type": "application/x-www-form-urlencoded",
                   "authorization": f"Basic {auth}"}  # fmt: skip
        body = "&".join(f"{k}={quote(v, safe='')}" for k, v in form.items()).encode()
        return Request(url, headers, body)
    payload = orjson.dumps(
        {
            "type": f"floorwatch.incident.{push.event}",
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat(),
            "data": {
                "incident_id": incident.incident_id,
                "queue_id": incident.queue_id,
                "tier": incident.tier,
                "state": incident.state,
                "numbers": incident.numbers_now,
                "lead": push.lead,
                "news": list(push.news),
                "dispatcher": dispatcher_lines(incident),
                "ack_url": ls.ack,
                "incident_url": ls.page,
                "board_url": config.board_url,
                "summary": headline(incident, push.event, acked_by),
            },
        }
    )
    stamp = datetime.fromtimestamp(int(now), UTC)
    signature = Webhook(channel.secret).sign(push.delivery_id, stamp, payload.decode())
    headers = {
        **json,
        "webhook-id": push.delivery_id,  # safe characters only (see Pager)
        "webhook-timestamp": str(int(now)),
        "webhook-signature": signature,
    }
    return Request(channel.url, headers, payload)
