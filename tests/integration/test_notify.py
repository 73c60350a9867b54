"""Pushes to on-call leads through real HTTP receivers on 127.0.0.1, verified with the
vendors' own libraries; the notifier on the real broker and Redis."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook, WebhookVerificationError

from services.api import incidents as incident_routes
from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.notify.app import create_app
from services.notify.pager import lead_tag
from services.notify.service import NotifySettings
from shared.core.incidents import incident_id
from shared.localstack import LocalStack, free_port
from shared.messages.incidents import Incident
from tests.integration.conftest import serve
from tests.integration.test_ingest import read_topic

SECRET = "whsec_" + base64.b64encode(b"a-very-secret-signing-key-of-32b").decode()
QUEUE = "Soporte Técnico/" + "x" * 230  # non-ASCII, and too long for a 255-byte dedup key
LEAD = "Zoë Ñúñez"


class Receivers:
    """A Standard Webhooks receiver (verified with the official package) and PagerDuty."""

    def __init__(self) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {"hook": [], "pd": []}
        app = FastAPI()

        @app.post("/{name}")
        async def receive(name: str, request: Request) -> Response:
            body = await request.body()
            call = {"headers": dict(request.headers), "body": orjson.loads(body), "verified": False}
            if name == "hook":
                try:
                    Webhook(SECRET).verify(body, dict(request.headers))
                    call["verified"] = True
                except WebhookVerificationError:
                    return Response(status_code=401)
            self.calls[name].append(call)
            return Response(status_code=202 if name == "pd" else 200)

        self.app = app


def config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "leads": [{"name": LEAD, "channels": [{"type": "webhook", "url": f"{url}/hook", "secret": SECRET},
                                              {"type": "pagerduty", "url": f"{url}/pd", "routing_key": "R1"}]}],
        "rotas": {"default": {"handovers": [{"weekday": 0, "at": "00:00", "leads": [LEAD]}]}},
        "ack_timeout_s": 600, "min_update_s": 0.5, "api_url": "http://api.test", **extra,
    }  # fmt: skip


def change(transition: str, kind: str = "surge", tier: int = 2, **extra: Any) -> dict[str, Any]:
    return {"alert_id": f"{kind}:{QUEUE}:1", "kind": kind, "queue_id": QUEUE, "transition": transition,
            "tier": tier, "at": datetime.now(UTC).isoformat(),
            "numbers": {"ratio": 1.62, "expected": 100.0, "arrivals": 162, "answer_rate_live": 0.71}, **extra}  # fmt: skip


def snapshot(rate: float) -> dict[str, Any]:
    return {"queue_id": QUEUE, "as_of": datetime.now(UTC).isoformat(), "callbacks_pending": 0,
            "windows": {"300": {"answer_rate_live": rate, "abandon_rate": 0.2}},
            "surge": {"ratio": 2.4, "expected": 100.0, "arrivals": 240}, "agents": {"staffed": 9}}  # fmt: skip


async def send(stack: LocalStack, topic: str, *bodies: dict[str, Any] | bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for body in bodies:
            value = body if isinstance(body, bytes) else orjson.dumps(body)
            await producer.send_and_wait(topic, value, key=QUEUE.encode(), partition=0)
    finally:
        await producer.stop()


async def until(check: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def settings_for(stack: LocalStack, prefix: str, **extra: Any) -> NotifySettings:
    return NotifySettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix,
        notify_group_id=f"{prefix}notify", notify_timeout_s=0.5, notify_retry_scale=0.01,
        notify_tick_s=0.05, notify_sample_every_s=0.01, **extra,
    )  # fmt: skip


@pytest.fixture
async def redis(stack: LocalStack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


async def deliveries(redis: aioredis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    raw = await redis.hgetall(f"{prefix}notify:deliveries")
    return {k.decode(): orjson.loads(v) for k, v in raw.items()}


async def test_one_signed_page_per_incident_then_updates_with_the_numbers_now(
    stack: LocalStack, prefix: str, redis: aioredis.Redis
) -> None:
    receivers = Receivers()
    iid = incident_id(QUEUE, f"surge:{QUEUE}:1")
    async with serve(receivers.app) as url, serve(create_app(settings_for(stack, prefix))):
        await redis.set(f"{prefix}notify:config", orjson.dumps(config(url)))
        # surge and breach at the same instant: one incident, one page
        await send(
            stack, prefix + "alerts", change("raised"), change("raised", kind="sl_breach", tier=0)
        )
        # the page, then one update, on both channels
        await until(lambda: len(receivers.calls["hook"]) == len(receivers.calls["pd"]) == 2)
        page, update = receivers.calls["hook"]
        assert page["verified"] and update["verified"]
        assert page["headers"]["webhook-id"] == f"{iid}.1.trigger.{lead_tag(LEAD)}.0"
        assert page["body"]["type"] == "floorwatch.incident.trigger"
        data = page["body"]["data"]
        assert (data["incident_id"], data["queue_id"], data["lead"], data["tier"]) == (
            iid,
            QUEUE,
            LEAD,
            2,
        )
        assert (
            data["summary"]
            == f"[OPEN] {QUEUE}: surge tier 2, 162% of expected, answer rate 71% now"
        )
        # acks the incident's latest alert, whichever of the two was read when it was sent
        assert re.match(
            r"http://api\.test/ack/(surge|sl_breach)%3ASoporte%20T%C3%A9cnico%2Fxxx",
            data["ack_url"],
        )
        assert update["headers"]["webhook-id"] == f"{iid}.2.update.{lead_tag(LEAD)}.0"
        assert update["body"]["data"]["news"] == ["answer rate breach"]
        pd = receivers.calls["pd"][0]["body"]
        assert (pd["event_action"], pd["dedup_key"], len(pd["dedup_key"])) == ("trigger", iid, 24)
        pd_update = receivers.calls["pd"][1]["body"]
        assert (pd_update["dedup_key"], pd_update["payload"]["severity"]) == (iid, "critical")
        assert len(receivers.calls["pd"]) == 2

        # the numbers now, and what the dispatcher proposes: one more update, 0.5 s later
        for _ in range(100):  # a snapshot a tick, as the monitor sends them, until one is read
            await send(stack, prefix + "metrics", snapshot(0.05))
            raw = await redis.hget(f"{prefix}incidents", iid)
            if raw and Incident.model_validate_json(raw).numbers_now.get("ratio") == 2.4:
                break
            await asyncio.sleep(0.1)
        action = {"action_id": "act-1", "queue_id": QUEUE, "state": "proposed", "summary": "move 3 from billing",
                  "created_at": datetime.now(UTC).isoformat(), "plan": [{"type": "agent.reassign"}] * 3}  # fmt: skip
        await send(stack, prefix + "actions", action)
        await until(lambda: len(receivers.calls["hook"]) == 3)
        third = receivers.calls["hook"][2]["body"]["data"]
        assert (
            third["summary"]
            == f"[UPDATE] {QUEUE}: surge tier 2, 240% of expected, answer rate 5% now"
        )
        assert third["news"] == ["move 3 from billing: waiting for approval"]
        assert third["dispatcher"] == ["move 3 from billing: waiting for approval"]
        raw = await redis.hget(f"{prefix}incidents", iid)
        assert raw is not None
        stored = orjson.loads(raw)
        assert [e["kind"] for e in stored["timeline"]] == ["alert", "alert", "action"]
        await asyncio.sleep(1.0)
        assert [len(receivers.calls[k]) for k in ("hook", "pd")] == [3, 3]  # nothing more
    log = await deliveries(redis, prefix)
    assert sorted((d["event"], d["channel"], d["status"], d["attempts"]) for d in log.values()) == [
        ("trigger", "pagerduty", "delivered", 1), ("trigger", "webhook", "delivered", 1),
        ("update", "pagerduty", "delivered", 1), ("update", "pagerduty", "delivered", 1),
        ("update", "webhook", "delivered", 1), ("update", "webhook", "delivered", 1),
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def serve_on(app: FastAPI, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def test_a_receiver_that_is_down_still_gets_the_page_on_the_schedule(
    stack: LocalStack, prefix: str, redis: aioredis.Redis
) -> None:
    receivers = Receivers()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    await redis.set(f"{prefix}notify:config", orjson.dumps(config(url)))
    async with serve(create_app(settings_for(stack, prefix))):
        await send(stack, prefix + "alerts", change("raised"))
        # down: the attempts at 0 and 5 s (0.05 s at scale 0.01) fail; the third is due
        # at 5 min (3 s here), so the deliveries wait with 2 attempts made
        deadline = time.monotonic() + 10
        tried: list[tuple[str, int]] = []
        while tried != [("pending", 2)] * 2:
            assert time.monotonic() < deadline, f"never two failed attempts each: {tried}"
            await asyncio.sleep(0.05)
            log = await deliveries(redis, prefix)
            tried = sorted((d["status"], d["attempts"]) for d in log.values())
        assert receivers.calls["hook"] == []
        async with serve_on(receivers.app, port):  # back: the third attempt (5 min) gets it
            await until(
                lambda: len(receivers.calls["hook"]) == 1 and len(receivers.calls["pd"]) == 1
            )
            await asyncio.sleep(0.3)
    log = await deliveries(redis, prefix)
    assert sorted((d["status"], d["attempts"]) for d in log.values()) == [("delivered", 3)] * 2
    assert receivers.calls["hook"][0]["verified"]


async def test_a_poison_alert_goes_to_the_dlq_and_the_next_one_is_handled(
    stack: LocalStack, prefix: str, redis: aioredis.Redis
) -> None:
    receivers = Receivers()
    async with serve(receivers.app) as url, serve(create_app(settings_for(stack, prefix))):
        await redis.set(f"{prefix}notify:config", orjson.dumps(config(url)))
        await send(
            stack,
            prefix + "alerts",
            b"{not json",
            {**change("raised"), "kind": "fire"},
            change("raised"),
        )
        await until(lambda: len(receivers.calls["hook"]) == 1)
        dlq = await read_topic(stack.bootstrap, prefix + "dlq", 2)
    got = sorted((v["topic"], v["partition"], v["offset"]) for _, v in dlq)  # type: ignore[type-var]
    assert got == [(prefix + "alerts", 0, 0), (prefix + "alerts", 0, 1)]
    reasons = [str(v["reason"]) for _, v in sorted(dlq, key=lambda r: str(r[1]["offset"]))]
    assert reasons[0].startswith(": Invalid JSON") and reasons[1].startswith(
        "kind: Input should be"
    )
    assert receivers.calls["hook"][0]["body"]["data"]["incident_id"] == incident_id(
        QUEUE, f"surge:{QUEUE}:1"
    )


async def test_the_demo_inbox_receives_signed_pushes_and_shows_them(
    stack: LocalStack, prefix: str, redis: aioredis.Redis
) -> None:
    settings = settings_for(stack, prefix, notify_inbox_secret=SECRET)
    api_settings = ApiSettings(kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url,
                               topic_prefix=prefix, api_tokens="ops:viewer:v-secret")  # fmt: skip
    api = create_api(api_settings)
    if not any(getattr(r, "path", "") == "/inbox" for r in api.routes):
        api.include_router(incident_routes.router)
    async with serve(create_app(settings)) as notify_url, serve(api) as api_url:
        demo = config(notify_url, api_url=api_url)
        demo["leads"][0]["channels"] = [
            {"type": "webhook", "url": f"{notify_url}/inbox/hook", "secret": SECRET}
        ]
        await redis.set(f"{prefix}notify:config", orjson.dumps(demo))
        async with httpx.AsyncClient() as http:
            forged = await http.post(f"{notify_url}/inbox/hook", json={"data": {}},
                                     headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"})  # fmt: skip
            assert (forged.status_code, forged.json()) == (
                401,
                {"error": "Standard Webhooks signature missing or wrong"},
            )
            await send(stack, prefix + "alerts", change("raised"))
            for _ in range(200):
                if await redis.llen(f"{prefix}notify:inbox"):
                    break
                await asyncio.sleep(0.05)
            page = await http.get(f"{api_url}/inbox?token=v-secret")
            assert (await http.get(f"{api_url}/inbox")).status_code == 401
    assert page.status_code == 200
    [item] = re.findall(r'<li class="push">.*?<ul>.*?</ul></li>', page.text)
    assert f"[OPEN] {QUEUE}: surge tier 2, 162% of expected, answer rate 71% now" in item
    assert f'<a href="{api_url}/ack/surge%3ASoporte%20T%C3%A9cnico' in item
    assert f'<a href="{api_url}/incidents/{incident_id(QUEUE, f"surge:{QUEUE}:1")}?sig=' in item
