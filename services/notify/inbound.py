"""What comes back from the leads' tools, each request verified by its vendor's signature:
Slack button taps (Ack, Approve plan), PagerDuty v3 webhooks (acknowledge, resolve), and
the demo inbox's Standard Webhooks."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook, WebhookVerificationError

from services.notify.acks import acknowledge, approve
from services.notify.service import NotifyShell
from shared.errors import BadRequest, NotFound, TooLarge, Unauthorized
from shared.http import JsonResponse, json_response
from shared.messages.incidents import Incident

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
router = APIRouter()


def shell_of(request: Request) -> NotifyShell:
    shell: NotifyShell = request.app.state.shell
    return shell


async def body_of(request: Request) -> bytes:
    """The raw body (signatures are over the bytes), bounded."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise TooLarge(f"body over {MAX_BODY} bytes")
    return body


def pagerduty_signed(secret: str, body: bytes, header: str) -> bool:
    """PagerDuty v3: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the body>[,v1=...]`."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    sent = [s.strip().removeprefix("v1=") for s in header.split(",") if s.strip().startswith("v1=")]
    return bool(secret) and any(hmac.compare_digest(expected, s) for s in sent)


@router.post("/slack/interactions", summary="Slack button taps (signed by Slack)")
async def slack_interaction(request: Request) -> JsonResponse:
    shell = shell_of(request)
    body = await body_of(request)
    config = await shell.config()
    stamp = request.headers.get("x-slack-request-timestamp", "")
    if (
        not config.slack_signing_secret
        or not (stamp.isdigit() and len(stamp) < 12)
        or not SignatureVerifier(config.slack_signing_secret).is_valid(
            body, stamp, request.headers.get("x-slack-signature")
        )
    ):
        raise Unauthorized("Slack signature missing, wrong or older than 5 minutes")
    try:
        payload: dict[str, Any] = orjson.loads(parse_qs(body.decode())["payload"][0])  # Any: JSON
    except (KeyError, IndexError, UnicodeDecodeError, orjson.JSONDecodeError):
        raise BadRequest("expected a form with a JSON payload") from None
    user = payload.get("user") or {}
    who = str(user.get("username") or user.get("name") or user.get("id") or "slack")[:200]
    done = []
    for action in payload.get("actions") or []:
        kind, value = action.get("action_id"), str(action.get("value") or "")[:600]
        if kind == "ack" and value:
            record, _ = await acknowledge(shell.redis, shell.producer, shell.settings, value, who)
            if record is None:
                done.append("alert not found")
            else:
                done.append(f"acknowledged by {record.acknowledged_by}")
        elif kind == "approve" and value:
            state = await approve(shell.redis, shell.producer, shell.settings, value, who)
            done.append(f"plan {state} by {who}" if state else "plan not found")
    return json_response({"response_type": "in_channel", "replace_original": False,
                          "text": "; ".join(done) or "nothing to do"})  # fmt: skip


@router.post("/pagerduty/webhook", summary="PagerDuty v3 webhooks (signed): acks flow back")
async def pagerduty_webhook(request: Request) -> JsonResponse:
    shell = shell_of(request)
    body = await body_of(request)
    config = await shell.config()
    header = request.headers.get("x-pagerduty-signature", "")
    if not pagerduty_signed(config.pagerduty_webhook_secret, body, header):
        raise Unauthorized("PagerDuty signature missing or wrong")
    try:
        event = orjson.loads(body)["event"]
        kind, data = str(event["event_type"]), event.get("data") or {}
    except (KeyError, TypeError, orjson.JSONDecodeError):
        raise BadRequest("expected a PagerDuty v3 webhook event") from None
    if kind not in ("incident.acknowledged", "incident.resolved"):
        return json_response({"ignored": kind[:100]})
    agent = event.get("agent") or {}
    who = str(agent.get("summary") or agent.get("id") or "pagerduty")[:200]
    key = str(data.get("incident_key") or "")[:255]
    raw = await shell.redis.hget(shell.keys.incidents, key) if key else None
    if raw is None:
        return json_response({"ignored": "not an incident floorwatch opened"})
    incident = Incident.model_validate_json(raw)
    acked = []
    for alert in incident.alerts:
        if alert.acked_by is None:
            _, now_acked = await acknowledge(
                shell.redis, shell.producer, shell.settings, alert.alert_id, who
            )
            if now_acked:
                acked.append(alert.alert_id)
    return json_response({"acknowledged": acked, "by": who})


@router.post("/inbox/hook", summary="The demo lead's inbox: receives signed pushes")
async def inbox_hook(request: Request) -> JsonResponse:
    shell = shell_of(request)
    if not shell.settings.notify_inbox_secret:
        raise NotFound("the demo inbox is off")
    body = await body_of(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        Webhook(shell.settings.notify_inbox_secret).verify(body, headers)
    except WebhookVerificationError:
        raise Unauthorized("Standard Webhooks signature missing or wrong") from None
    await shell.inbox(body, headers)
    return json_response({"received": True})
