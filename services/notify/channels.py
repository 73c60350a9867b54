"""What each channel is sent: a signed Standard Webhook, a Slack message, a PagerDuty event."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from services.notify.incidents import Incident, Push
from shared.notify_config import Channel, NotifyConfig

PD_ACTION = {"acknowledge": "acknowledge", "resolve": "resolve"}  # every other event triggers


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes


def _pct(value: object) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, int | float) else "n/a"


def headline(incident: Incident, event: str) -> str:
    """One line a lead can act on from a phone's lock screen."""
    n = incident.numbers
    if incident.kind == "surge":
        what = (
            f"{incident.queue_id}: surge tier {incident.tier}, {_pct(n.get('ratio'))} of forecast"
        )
    else:
        what = f"{incident.queue_id}: answer rate {_pct(n.get('answer_rate_live'))}"
    what += f", answer rate {_pct(n.get('answer_rate_live'))}" if incident.kind == "surge" else ""
    prefix = {
        "resolve": "RESOLVED",
        "acknowledge": f"ACK by {incident.acked_by}",
        "escalate": "ESCALATED",
    }
    return f"[{prefix.get(event, incident.state.upper())}] {what}"


def signing_key(secret: str) -> bytes:
    """Standard Webhooks: `whsec_` + base64 key; any other secret is used as it is."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (Standard Webhooks)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def build(
    push: Push, incident: Incident, channel: Channel, config: NotifyConfig, now: int
) -> Request:
    """The HTTP request for one push through one channel."""
    ack_url = f"{config.api_url}/v1/alerts/{incident.incident_id}/ack"
    board = config.board_url
    if channel.type == "pagerduty":
        action = PD_ACTION.get(push.event, "trigger")
        event: dict[str, Any] = {
            "routing_key": channel.routing_key,
            "event_action": action,
            "dedup_key": incident.incident_id,
        }
        if action == "trigger":
            severity = "critical" if incident.kind == "sl_breach" or incident.tier >= 3 else "error"
            event["payload"] = {
                "summary": headline(incident, push.event),
                "source": f"floorwatch/{incident.queue_id}",
                "severity": severity,
                "custom_details": {**incident.numbers, "tier": incident.tier, "ack": ack_url},
            }
            event["links"] = [{"href": board, "text": "wall board"}]
        return Request(channel.url, {"content-type": "application/json"}, orjson.dumps(event))
    if channel.type == "slack":
        how = f"Acknowledge: POST {ack_url} (or the board's ack button) · <{board}|wall board>"
        text = f"{headline(incident, push.event)}\n{how}"
        return Request(
            channel.url, {"content-type": "application/json"}, orjson.dumps({"text": text})
        )
    body = orjson.dumps(
        {
            "type": f"floorwatch.incident.{push.event}",
            "timestamp": now,
            "data": {
                "incident_id": incident.incident_id,
                "kind": incident.kind,
                "queue_id": incident.queue_id,
                "tier": incident.tier,
                "state": incident.state,
                "numbers": incident.numbers,
                "lead": push.lead,
                "ack_url": ack_url,
                "board_url": board,
                "summary": headline(incident, push.event),
            },
        }
    )
    headers = {
        "content-type": "application/json",
        "webhook-id": push.delivery_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(channel.secret, push.delivery_id, now, body),
    }
    return Request(channel.url, headers, body)
