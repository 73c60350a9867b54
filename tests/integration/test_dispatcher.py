"""The dispatcher on the real broker and Redis: alert in, commands out; approval; restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from services.api.actions import router as actions_router
from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.dispatcher.app import create_app
from services.dispatcher.settings import DispatcherSettings
from shared.core.tiers import QueueAlertState
from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port
from shared.messages.actions import Action, ActionRequest
from tests.integration.conftest import produce_events as produce
from tests.integration.conftest import serve
from tests.integration.test_ingest import read_topic


def stamp(offset_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def floor() -> list[dict[str, Any]]:
    """Billing: 30 calls in 5 min on 2 agents. Sales: 10 agents, 4 idle, 3 also skilled for billing."""
    out: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        out.append(
            {
                "event_id": f"f{len(out)}",
                "type": kind,
                "ts": stamp(-250 + len(out) * 0.01),
                **fields,
            }
        )

    for i in range(2):
        add("agent.skills", agent_id=f"b{i}", skills=[{"queue_id": "billing", "level": 8}])
        add("agent.state", agent_id=f"b{i}", state="busy")
    for i in range(10):
        skills = [{"queue_id": "sales", "level": 8}]
        if i < 3:
            skills.append({"queue_id": "billing", "level": 9 - i})
        add("agent.skills", agent_id=f"s{i}", skills=skills, serving=["sales"])
        add("agent.state", agent_id=f"s{i}", state="available" if i < 4 else "busy")
    for i in range(30):
        add("call.queued", call_id=f"c{i}", queue_id="billing")
    for i in range(5):
        add("call.ended", call_id=f"old{i}", queue_id="billing", agent_id="b0", talk_s=200.0)
    return out


# each test on a loop of its own: a dispatcher's clients left over from one test then
# cannot hold up the shutdown of the next one's on a shared loop
pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(loop_scope="function")
async def surge(
    stack: LocalStack, prefix: str
) -> AsyncIterator[tuple[DispatcherSettings, aioredis.Redis]]:
    settings = DispatcherSettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix, tick_s=0.2
    )
    await ensure_topics(settings)
    await produce(stack, prefix, floor())
    redis = aioredis.Redis.from_url(stack.redis_url)
    yield settings, redis
    await redis.aclose()


TIER2 = QueueAlertState(tier=2, since=time.time(), surge_id="surge:billing:2")


async def commands(
    stack: LocalStack, prefix: str, expect: int, settle_s: float = 1.5
) -> list[tuple[str, str, str]]:
    """(type, agent, from queue) of every command on the topic."""
    records = await read_topic(stack.bootstrap, prefix + "commands", expect, settle_s=settle_s)
    return sorted(
        (str(v["type"]), str(v["agent_id"]), str(v.get("from_queue"))) for _, v in records
    )


# tier 2 pulls standby (none here), cross_skill and partner (none): the three idle sales
# agents skilled for billing; sales lends at most 0.3 of its 10, so exactly those three
EXPECTED = [("agent.reassign", a, "sales") for a in ("s0", "s1", "s2")]


async def send(
    stack: LocalStack, topic: str, value: bytes, key: bytes = b"billing"
) -> tuple[int, int]:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value, key=key)
        return meta.partition, meta.offset
    finally:
        await producer.stop()


def request(verb: str, **fields: Any) -> bytes:
    body = ActionRequest(request_id=f"r-{verb}", verb=verb, by="lead-ann",  # type: ignore[arg-type]
                         at=datetime.now(UTC), **fields)  # fmt: skip
    return body.model_dump_json().encode()


async def eventually_staffing(
    redis: aioredis.Redis, prefix: str, done: Any, within_s: float = 15.0
) -> dict[str, dict[str, Any]]:
    """The dispatcher's staffing hash once `done(staffing)` holds."""
    deadline = time.monotonic() + within_s
    staffing: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        raw = await redis.hgetall(f"{prefix}staffing")
        staffing = {k.decode(): orjson.loads(v) for k, v in raw.items()}
        if "billing" in staffing and done(staffing):
            return staffing
        await asyncio.sleep(0.1)
    raise AssertionError(f"staffing never as expected: {staffing}")


async def test_alert_in_one_action_out_and_a_restart_repeats_nothing(
    surge: tuple[DispatcherSettings, aioredis.Redis], stack: LocalStack, prefix: str
) -> None:
    settings, redis = surge
    await redis.hset(f"{prefix}alert_states", "billing", orjson.dumps(TIER2.as_json()))
    async with serve(create_app(settings)):
        assert await commands(stack, prefix, 3) == EXPECTED
        # billing: 30 calls in 5 min (0.1/s), AHT 200 s, patience 120 s: Erlang A says 23
        # for 90% in 30 s; 2 working; the 3 reassigned agents are borrowed, sales lent them
        staffing = await eventually_staffing(redis, prefix, lambda s: s["billing"]["borrowed"] == 3)
        assert staffing["billing"] == {"needed": 23, "have": 2.0, "lent": 0, "borrowed": 3}
        assert (staffing["sales"]["lent"], staffing["sales"]["borrowed"]) == (3, 0)
    stored = [
        Action.model_validate_json(v) for v in (await redis.hgetall(f"{prefix}actions")).values()
    ]
    assert [(a.queue_id, a.kind, a.state, a.levers, len(a.commands)) for a in stored] == [
        ("billing", "plan", "sent", ["cross_skill"], 3)
    ]
    assert [c.command_id for c in stored[0].commands] == [
        f"{stored[0].action_id}:{i}" for i in range(3)
    ]
    assert stored[0].reason.alert_id == "surge:billing:2"
    async with serve(create_app(settings)):  # restarted mid-surge: the same floor, the same alert
        await asyncio.sleep(2.0)
    assert await commands(stack, prefix, 3) == EXPECTED
    actions = await read_topic(stack.bootstrap, prefix + "actions", 1)
    assert len(actions) == 1


async def test_approve_mode_holds_the_plan_until_a_lead_approves(
    surge: tuple[DispatcherSettings, aioredis.Redis], stack: LocalStack, prefix: str
) -> None:
    settings, redis = surge
    await redis.hset(f"{prefix}alert_states", "billing", orjson.dumps(TIER2.as_json()))
    held = settings.model_copy(update={"dispatch_mode": "approve"})
    async with serve(create_app(held)):
        proposed = await read_topic(stack.bootstrap, prefix + "actions", 1)
        assert [(v["state"], len(v["commands"])) for _, v in proposed] == [("proposed", 3)]  # type: ignore[arg-type]
        assert await read_topic(stack.bootstrap, prefix + "commands", 0, settle_s=1.0) == []
        action_id = str(proposed[0][1]["action_id"])
        await send(stack, prefix + "actions", request("approve", action_id=action_id))
        assert await commands(stack, prefix, 3) == EXPECTED
    stored = Action.model_validate_json(await redis.hget(f"{prefix}actions", action_id) or b"{}")
    assert [(h.state, h.by) for h in stored.history] == [
        ("proposed", "dispatcher"), ("approved", "lead-ann"), ("sent", "dispatcher"),
    ]  # fmt: skip


async def test_poison_goes_to_the_dlq_with_its_offset_and_the_next_record_is_handled(
    surge: tuple[DispatcherSettings, aioredis.Redis], stack: LocalStack, prefix: str
) -> None:
    """On the floor topics and on the actions topic alike. No alert: nothing planned,
    until a lead proposes by hand after a poison request."""
    settings, _ = surge
    app = create_app(settings)
    async with serve(app):
        shell = app.state.shell
        await asyncio.wait_for(shell.taking_requests.wait(), 20)  # it leads, at the log end
        bad_event = await send(stack, prefix + "events", b"{not json")
        wrong_agent = await send(stack, prefix + "agents", orjson.dumps({"type": "agent.state"}))
        await produce(stack, prefix, [{"event_id": "late", "type": "agent.state", "ts": stamp(0),
                                      "agent_id": "newcomer", "state": "available"}])  # fmt: skip
        bad_request = await send(stack, prefix + "actions", b'{"message": "request"}')
        await send(stack, prefix + "actions",
                   request("propose", queue_id="billing", lever="cross_skill", count=2))  # fmt: skip
        assert await commands(stack, prefix, 2) == EXPECTED[:2]
        assert shell.engine.agents["newcomer"].state == "available"
    dlq = await read_topic(stack.bootstrap, prefix + "dlq", 3)
    kept = sorted((str(v["topic"]), v["partition"], v["offset"]) for _, v in dlq)  # type: ignore[type-var]
    assert kept == sorted([
        (prefix + "events", *bad_event), (prefix + "agents", *wrong_agent),
        (prefix + "actions", *bad_request),
    ])  # fmt: skip


async def test_a_dead_endpoint_never_delays_planning(
    surge: tuple[DispatcherSettings, aioredis.Redis], stack: LocalStack, prefix: str
) -> None:
    """The endpoint refuses every connection: the commands are on the topic at once, and
    the outbox keeps retrying behind the tick's back."""
    settings, redis = surge
    await redis.hset(f"{prefix}alert_states", "billing", orjson.dumps(TIER2.as_json()))
    dead = settings.model_copy(update={"dispatch_endpoint": f"http://127.0.0.1:{free_port()}/c",
                                       "dispatch_endpoint_retries": 10})  # fmt: skip
    app = create_app(dead)
    async with serve(app):
        began = time.monotonic()
        assert await commands(stack, prefix, 3, settle_s=0.2) == EXPECTED
        assert time.monotonic() - began < 10
        shell = app.state.shell
        ticks = shell.ticks
        await asyncio.sleep(1.0)
        assert shell.ticks >= ticks + 3  # 0.2 s ticks go on
        assert len(shell.outbox) >= 1  # still trying to deliver


async def test_a_lead_proposes_by_hand_then_undoes_through_the_api(
    surge: tuple[DispatcherSettings, aioredis.Redis], stack: LocalStack, prefix: str
) -> None:
    """No alert: the lead asks for 5 cross-skilled agents for billing; sales lends its
    three idle billing-skilled ones (0.3 of 10), then the lead undoes it: all three back."""
    settings, redis = surge
    api_settings = ApiSettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix,
        api_tokens="ann:lead:lead-secret,val:viewer:viewer-secret",
    )  # fmt: skip
    api = create_api(api_settings)
    if not any(getattr(r, "path", "") == "/v1/actions/{action_id:path}/undo" for r in api.routes):
        api.include_router(actions_router)  # until the API's composition root includes it
    lead = {"Authorization": "Bearer lead-secret"}
    dispatcher = create_app(settings)
    async with serve(dispatcher), serve(api) as url, httpx.AsyncClient(base_url=url) as client:
        shell = dispatcher.state.shell
        deadline = time.monotonic() + 15
        while not (shell.caught_up and shell.ticks > 0):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.wait_for(shell.taking_requests.wait(), 20)  # it leads, at the log end
        bad = await client.post(
            "/v1/actions", json={"queue_id": "billing", "lever": "x"}, headers=lead
        )
        assert bad.status_code == 422
        viewer = await client.post("/v1/actions", json={"queue_id": "billing", "lever": "standby"},
                                   headers={"Authorization": "Bearer viewer-secret"})  # fmt: skip
        assert viewer.status_code == 403
        r = await client.post("/v1/actions", json={"queue_id": "billing", "lever": "cross_skill",
                                                    "count": 5}, headers=lead)  # fmt: skip
        assert r.status_code == 202 and r.json()["state"] == "requested"
        assert await commands(stack, prefix, 3) == EXPECTED
        [stored] = [
            Action.model_validate_json(v)
            for v in (await redis.hgetall(f"{prefix}actions")).values()
        ]
        assert (stored.kind, stored.state, stored.changed_by) == ("hand", "sent", "ann")
        r = await client.post(f"/v1/actions/{stored.action_id}/undo", headers=lead)
        assert r.status_code == 202
        released = sorted(
            (str(v["type"]), str(v["agent_id"]))
            for _, v in await read_topic(stack.bootstrap, prefix + "commands", 6)
            if v["type"] == "agent.release"
        )
        assert released == [("agent.release", a) for a in ("s0", "s1", "s2")]
        again = await client.post(f"/v1/actions/{stored.action_id}/undo", headers=lead)
        assert (again.status_code, again.json()) == (
            409, {"error": f"action {stored.action_id!r} is reverted, not sent"},
        )  # fmt: skip


async def test_a_killed_outbox_turns_readyz_503_and_the_leader_still_plans(
    surge: tuple[DispatcherSettings, aioredis.Redis], stack: LocalStack, prefix: str
) -> None:
    """The outbox dies (not stopped by its owner): `/readyz` names it, the tick goes on,
    and the app still shuts down in bounded time."""
    settings, redis = surge
    await redis.hset(f"{prefix}alert_states", "billing", orjson.dumps(TIER2.as_json()))
    app = create_app(settings)
    began = time.monotonic()
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        shell = app.state.shell
        await asyncio.wait_for(shell.taking_requests.wait(), 20)
        [outbox] = [t for t in asyncio.all_tasks() if t.get_name() == "outbox"]
        outbox.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await outbox
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["failed_tasks"] == {"outbox": "cancelled"}
        assert await commands(stack, prefix, 3) == EXPECTED  # planning never needed it
        ticks = shell.ticks
        await asyncio.sleep(0.6)
        assert shell.ticks >= ticks + 2
    assert time.monotonic() - began < 60
