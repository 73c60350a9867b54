"""Slack button taps and PagerDuty v3 webhooks flowing back as acks and approvals, signed as
the vendors document (Slack v0 through slack_sdk's own signer, PagerDuty's HMAC by hand)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import redis.asyncio as aioredis
from slack_sdk.signature import SignatureVerifier

from services.notify.app import create_app
from shared.core.incidents import incident_id
from shared.localstack import LocalStack
from shared.messages.alerts import AlertRecord
from tests.integration.conftest import serve
from tests.integration.test_ingest import read_topic
from tests.integration.test_notify import QUEUE, change, config, redis, send, settings_for

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PD_SECRET = "pd-webhook-secret"
__all__ = ["redis"]  # the fixture


def slack_request(payload: dict[str, Any], at: float, secret: str = SLACK_SECRET) -> dict[str, Any]:
    body = "payload=" + quote(orjson.dumps(payload).decode())
    stamp = str(int(at))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"content": body.encode(), "headers": {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp, "x-slack-signature": signature or ""}}  # fmt: skip


def tap(action_id: str, value: str) -> dict[str, Any]:
    return {"type": "block_actions", "user": {"id": "U1", "username": "zoë.m"},
            "actions": [{"action_id": action_id, "value": value}]}  # fmt: skip


def pd_request(event: dict[str, Any], secret: str = PD_SECRET) -> dict[str, Any]:
    body = orjson.dumps({"event": event})
    good = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # two signatures, as PagerDuty sends while a secret is being rotated
    return {"content": body, "headers": {"content-type": "application/json",
            "x-pagerduty-signature": f"v1={'0' * 64},v1={good}"}}  # fmt: skip


async def acked_by(redis: aioredis.Redis, prefix: str, alert_id: str) -> str | None:
    raw = await redis.hget(f"{prefix}alerts", alert_id)
    assert raw is not None
    return AlertRecord.model_validate_json(raw).acknowledged_by


async def test_slack_and_pagerduty_acks_and_approvals_are_verified_and_flow_back(
    stack: LocalStack, prefix: str, redis: aioredis.Redis
) -> None:
    surge, breach = f"surge:{QUEUE}:1", f"sl_breach:{QUEUE}:1"
    iid = incident_id(QUEUE, surge)
    now = time.time()
    for alert_id, kind in ((surge, "surge"), (breach, "sl_breach")):  # as the monitor keeps them
        record = AlertRecord(
            alert_id=alert_id, kind=kind, queue_id=QUEUE, raised_at=now, updated_at=now
        )
        await redis.hset(f"{prefix}alerts", alert_id, record.model_dump_json())
    action = {"action_id": "act-1", "queue_id": QUEUE, "state": "proposed", "history": []}
    await redis.hset(f"{prefix}actions", "act-1", orjson.dumps(action))
    cfg = config(
        "http://127.0.0.1:9", slack_signing_secret=SLACK_SECRET, pagerduty_webhook_secret=PD_SECRET
    )
    await redis.set(f"{prefix}notify:config", orjson.dumps(cfg))
    async with (
        serve(create_app(settings_for(stack, prefix))) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        await send(
            stack, prefix + "alerts", change("raised"), change("raised", kind="sl_breach", tier=0)
        )
        await until_incident(redis, prefix, iid)

        # refused: a wrong signature, a signature older than 5 minutes, another secret
        bad = slack_request(tap("ack", surge), time.time())
        bad["headers"]["x-slack-signature"] = "v0=" + "0" * 64
        for request in (bad, slack_request(tap("ack", surge), time.time() - 301),
                        slack_request(tap("ack", surge), time.time(), "other")):  # fmt: skip
            answer = await http.post("/slack/interactions", **request)
            assert (answer.status_code, answer.json()) == (
                401, {"error": "Slack signature missing, wrong or older than 5 minutes"})  # fmt: skip
        assert await acked_by(redis, prefix, surge) is None

        answer = await http.post(
            "/slack/interactions", **slack_request(tap("ack", surge), time.time())
        )
        assert answer.json()["text"] == "acknowledged by zoë.m"
        assert await acked_by(redis, prefix, surge) == "zoë.m"
        answer = await http.post(
            "/slack/interactions", **slack_request(tap("approve", "act-1"), time.time())
        )
        assert answer.json()["text"] == "plan approved by zoë.m"
        stored = orjson.loads(await redis.hget(f"{prefix}actions", "act-1") or b"")
        assert (stored["state"], stored["changed_by"], stored["history"][0]["state"]) == (
            "approved",
            "zoë.m",
            "approved",
        )

        # PagerDuty: a bad signature is refused; an acknowledge acks what is left
        event = {"id": "01", "event_type": "incident.acknowledged", "agent": {"summary": "Zoë Ñúñez"},
                 "data": {"id": "PABC", "type": "incident", "incident_key": iid}}  # fmt: skip
        answer = await http.post("/pagerduty/webhook", **pd_request(event, "wrong"))
        assert (answer.status_code, answer.json()) == (
            401,
            {"error": "PagerDuty signature missing or wrong"},
        )
        answer = await http.post("/pagerduty/webhook", **pd_request(event))
        assert answer.json() == {"acknowledged": [breach], "by": "Zoë Ñúñez"}
        assert await acked_by(redis, prefix, breach) == "Zoë Ñúñez"
        other = {**event, "data": {"incident_key": "inc_someone_else"}}
        answer = await http.post("/pagerduty/webhook", **pd_request(other))
        assert answer.json() == {"ignored": "not an incident floorwatch opened"}

        # the acks went out as facts; the notifier's own incident hears of them
        await until_acked(redis, prefix, iid, {surge: "zoë.m", breach: "Zoë Ñúñez"})
    facts = await read_topic(stack.bootstrap, prefix + "alerts", 4)
    acks = sorted((v["alert_id"], v["by"]) for _, v in facts if v["transition"] == "acknowledged")  # type: ignore[type-var]
    assert acks == [(breach, "Zoë Ñúñez"), (surge, "zoë.m")]
    approvals = await read_topic(stack.bootstrap, prefix + "actions", 1)
    assert [(v["action_id"], v["state"]) for _, v in approvals] == [("act-1", "approved")]


async def until_incident(redis: aioredis.Redis, prefix: str, iid: str) -> None:
    for _ in range(300):
        if await redis.hexists(f"{prefix}incidents", iid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no incident")


async def until_acked(
    redis: aioredis.Redis, prefix: str, iid: str, expected: dict[str, str]
) -> None:
    got: dict[str, str | None] = {}
    for _ in range(300):
        raw = await redis.hget(f"{prefix}incidents", iid)
        got = {a["alert_id"]: a["acked_by"] for a in orjson.loads(raw or b"{}").get("alerts", [])}
        if got == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"incident acks {got} != {expected}")
