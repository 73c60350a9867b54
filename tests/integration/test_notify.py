"""Pushes to on-call leads through real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response

from services.notify.service import NotifySettings, create_app
from shared.localstack import LocalStack
from tests.integration.conftest import serve

SECRET = "whsec_" + base64.b64encode(b"a-very-secret-signing-key").decode()


class Receivers:
    """Four endpoints: a Standard Webhooks verifier, PagerDuty, a flaky Slack, a slow hook."""

    def __init__(self) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {
            "hook": [],
            "pd": [],
            "flaky": [],
            "slow": [],
        }
        self.flaky_failures = 0
        app = FastAPI()

        @app.post("/{name}")
        async def receive(name: str, request: Request) -> Response:
            body = await request.body()
            self.calls[name].append(
                {
                    "headers": dict(request.headers),
                    "body": orjson.loads(body),
                    "at": time.monotonic(),
                }
            )
            if name == "hook" and not verify(request.headers, body):
                return Response(status_code=401)
            if name == "flaky" and self.flaky_failures < 2:
                self.flaky_failures += 1
                return Response(status_code=500)
            if name == "slow":
                await asyncio.sleep(2.0)
            return Response(status_code=202 if name == "pd" else 200)

        self.app = app


def verify(headers: Any, body: bytes) -> bool:
    """Standard Webhooks verification, written from the spec, not from our signer."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    sent = [
        s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")
    ]
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
    return fresh and any(hmac.compare_digest(expected, s) for s in sent)


def config(url: str, ack_timeout_s: float) -> dict[str, Any]:
    return {
        "leads": [
            {"name": "ann", "channels": [{"type": "webhook", "url": f"{url}/hook", "secret": SECRET},
                                         {"type": "pagerduty", "url": f"{url}/pd", "routing_key": "R1"}]},
            {"name": "bob", "channels": [{"type": "slack", "url": f"{url}/flaky"}]},
            {"name": "cy", "channels": [{"type": "webhook", "url": f"{url}/slow", "secret": SECRET}]},
        ],
        "rotas": {"default": {"timezone": "Europe/London", "handovers": [{"weekday": 0, "at": "00:00", "leads": ["ann", "bob", "cy"]}]}},
        "ack_timeout_s": ack_timeout_s, "repeat_every_s": 100, "reopen_within_s": 0.5,
        "board_url": "http://board.test/", "api_url": "http://api.test",
    }  # fmt: skip


def change(transition: str, tier: int, **extra: Any) -> dict[str, Any]:
    return {"alert_id": "surge:billing:1", "kind": "surge", "queue_id": "billing", "transition": transition,
            "tier": tier, "from_tier": 0, "at": datetime.now(UTC).isoformat(),
            "numbers": {"ratio": 1.62, "expected": 100.0, "arrivals": 162, "answer_rate_live": 0.71}, **extra}  # fmt: skip


async def send(stack: LocalStack, prefix: str, body: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(prefix + "alerts", orjson.dumps(body), key=b"billing")
    finally:
        await producer.stop()


async def until(check: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def world(
    stack: LocalStack, prefix: str
) -> AsyncIterator[tuple[Receivers, str, aioredis.Redis, NotifySettings]]:
    receivers = Receivers()
    redis = aioredis.Redis.from_url(stack.redis_url)
    settings = NotifySettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix,
        notify_group_id=f"{prefix}notify", notify_timeout_s=0.5, notify_attempts=3, notify_backoff_s=0.1,
        notify_tick_s=0.05,
    )  # fmt: skip
    async with serve(receivers.app) as url:
        yield receivers, url, redis, settings
    await redis.aclose()


async def deliveries(redis: aioredis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    raw = await redis.hgetall(f"{prefix}notify:deliveries")
    return {k.decode(): orjson.loads(v) for k, v in raw.items()}


async def test_trigger_escalate_retry_timeout_ack_and_resolve(
    world: tuple[Receivers, str, aioredis.Redis, NotifySettings], stack: LocalStack, prefix: str
) -> None:
    receivers, url, redis, settings = world
    await redis.set(f"{prefix}notify:config", orjson.dumps(config(url, ack_timeout_s=1.0)))
    async with serve(create_app(settings)):
        await send(stack, prefix, change("raised", 2))
        await until(lambda: len(receivers.calls["hook"]) == 1 and len(receivers.calls["pd"]) == 1)
        hook = receivers.calls["hook"][0]
        assert hook["body"]["type"] == "floorwatch.incident.trigger"
        assert hook["body"]["data"] == {
            "incident_id": "surge:billing:1", "kind": "surge", "queue_id": "billing", "tier": 2, "state": "open",
            "numbers": {"ratio": 1.62, "expected": 100.0, "arrivals": 162, "answer_rate_live": 0.71}, "lead": "ann",
            "ack_url": "http://api.test/v1/alerts/surge:billing:1/ack", "board_url": "http://board.test/",
            "summary": "[OPEN] billing: surge tier 2, 162% of forecast, answer rate 71%",
        }  # fmt: skip
        assert hook["headers"]["webhook-id"] == "surge:billing:1|1|trigger|ann|0"
        pd = receivers.calls["pd"][0]["body"]
        assert (pd["routing_key"], pd["event_action"], pd["dedup_key"]) == (
            "R1",
            "trigger",
            "surge:billing:1",
        )
        assert (
            pd["payload"]["severity"] == "error" and pd["payload"]["source"] == "floorwatch/billing"
        )
        triggered = receivers.calls["hook"][0]["at"]

        # no ack within 1 s: bob, through a Slack hook that fails twice before it takes it
        await until(lambda: len(receivers.calls["flaky"]) == 3)
        first, third = receivers.calls["flaky"][0]["at"], receivers.calls["flaky"][2]["at"]
        assert (
            first - triggered >= 0.9
        )  # 1 s after the trigger was sent, which it received a little later
        assert third - first >= 0.1 + 0.2  # backoff 0.1 s, then 0.2 s
        assert receivers.calls["flaky"][2]["body"]["text"].startswith(
            "[ESCALATED] billing: surge tier 2"
        )
        # then cy, whose endpoint is slower than the 0.5 s timeout: three attempts, failed
        await until(lambda: len(receivers.calls["slow"]) == 3)
        for _ in range(100):  # the third attempt's timeout, then the record
            log = await deliveries(redis, prefix)
            if any(d["status"] == "failed" for d in log.values()):
                break
            await asyncio.sleep(0.05)
        by_lead = {
            (d["lead"], d["event"], d["push"]["channel"]): (d["status"], d["attempts"])
            for d in log.values()
            if d["event"] != "repeat"
        }
        assert by_lead == {
            ("ann", "trigger", 0): ("delivered", 1), ("ann", "trigger", 1): ("delivered", 1),
            ("bob", "escalate", 0): ("delivered", 3), ("cy", "escalate", 0): ("failed", 3),
        }  # fmt: skip
        # past the last lead, everyone told so far is told again until someone owns it
        await until(lambda: len(receivers.calls["hook"]) >= 2)
        assert receivers.calls["hook"][1]["body"]["type"] == "floorwatch.incident.repeat"

        # an escalation of the alert updates the same incident
        await send(stack, prefix, change("escalated", 3))
        await until(
            lambda: any(
                c["body"]["payload"]["severity"] == "critical" for c in receivers.calls["pd"]
            )
        )
        update = next(
            c["body"]
            for c in receivers.calls["pd"]
            if c["body"]["payload"]["severity"] == "critical"
        )
        assert (update["event_action"], update["dedup_key"]) == ("trigger", "surge:billing:1")

        # the ack stops the escalation and acknowledges in PagerDuty
        def pd(action: str) -> list[dict[str, Any]]:
            return [c["body"] for c in receivers.calls["pd"] if c["body"]["event_action"] == action]

        await send(stack, prefix, change("acknowledged", 3, by="bob"))
        await until(lambda: len(pd("acknowledge")) == 1)
        assert pd("acknowledge") == [
            {"routing_key": "R1", "event_action": "acknowledge", "dedup_key": "surge:billing:1"}
        ]
        # the clear resolves, once the reopen window has passed
        await send(stack, prefix, change("cleared", 0))
        await until(lambda: len(pd("resolve")) == 1)
        assert pd("resolve") == [
            {"routing_key": "R1", "event_action": "resolve", "dedup_key": "surge:billing:1"}
        ]
        await asyncio.sleep(2.5)  # let the slow endpoint's last attempts finish
        calls_before = {k: len(v) for k, v in receivers.calls.items()}
        await asyncio.sleep(1.5)
        assert {k: len(v) for k, v in receivers.calls.items()} == calls_before  # nothing more


async def test_a_restart_mid_escalation_sends_nothing_twice(
    world: tuple[Receivers, str, aioredis.Redis, NotifySettings], stack: LocalStack, prefix: str
) -> None:
    receivers, url, redis, settings = world
    receivers.flaky_failures = 2  # bob's hook works at once here
    await redis.set(f"{prefix}notify:config", orjson.dumps(config(url, ack_timeout_s=2.0)))
    async with serve(create_app(settings)):
        await send(stack, prefix, change("raised", 2))
        await until(lambda: len(receivers.calls["hook"]) == 1 and len(receivers.calls["pd"]) == 1)
    async with serve(create_app(settings)):  # restarted before bob's turn
        await until(lambda: len(receivers.calls["flaky"]) == 1)
        await asyncio.sleep(1.0)
    assert [len(receivers.calls[k]) for k in ("hook", "pd", "flaky")] == [1, 1, 1]
    ids = [c["headers"]["webhook-id"] for c in receivers.calls["hook"]]
    assert ids == ["surge:billing:1|1|trigger|ann|0"]
