"""The dispatcher on the real broker and Redis: alert in, commands out; approval; restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from services.dispatcher.app import create_app
from services.dispatcher.settings import DispatcherSettings
from shared.core.tiers import QueueAlertState
from shared.kafka import ensure_topics
from shared.localstack import LocalStack
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


@pytest.fixture
async def surge(
    stack: LocalStack, prefix: str
) -> AsyncIterator[tuple[DispatcherSettings, aioredis.Redis]]:
    settings = DispatcherSettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix, tick_s=0.2
    )
    await ensure_topics(settings)
    await produce(stack, prefix, floor())
    redis = aioredis.Redis.from_url(stack.redis_url)
    state = QueueAlertState(tier=1, since=time.time(), surge_id="surge:billing:1")
    await redis.hset(f"{prefix}alert_states", "billing", orjson.dumps(state.as_json()))
    yield settings, redis
    await redis.aclose()


async def commands(
    stack: LocalStack, prefix: str, expect: int, settle_s: float = 1.5
) -> list[tuple[str, str, str]]:
    records = await read_topic(stack.bootstrap, prefix + "commands", expect, settle_s=settle_s)
    return sorted((v["type"], v["agent_id"], v["command_id"].split(":")[2]) for _, v in records)


EXPECTED = [("agent.reassign", a, a) for a in ("s0", "s1", "s2")]


async def test_alert_in_commands_out_and_a_restart_repeats_nothing(
    surge: tuple[DispatcherSettings, aioredis.Redis], stack: LocalStack, prefix: str
) -> None:
    settings, redis = surge
    async with serve(create_app(settings)):
        assert await commands(stack, prefix, 3) == EXPECTED  # the fourth idle one has no skill
    stored = {
        k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(f"{prefix}actions")).items()
    }
    assert sorted((a["agent_id"], a["state"], a["plan"][0]["from_queue"]) for a in stored.values()) == [
        ("s0", "sent", "sales"), ("s1", "sent", "sales"), ("s2", "sent", "sales"),
    ]  # fmt: skip
    async with serve(create_app(settings)):  # restarted mid-surge: the same floor, the same alert
        await asyncio.sleep(2.0)
    assert await commands(stack, prefix, 3) == EXPECTED
    actions = await read_topic(stack.bootstrap, prefix + "actions", 3)
    assert len(actions) == 3


async def test_approve_mode_holds_commands_until_a_lead_approves(
    surge: tuple[DispatcherSettings, aioredis.Redis], stack: LocalStack, prefix: str
) -> None:
    settings, redis = surge
    held = settings.model_copy(update={"dispatch_mode": "approve"})
    async with serve(create_app(held)):
        proposed = await read_topic(stack.bootstrap, prefix + "actions", 3)
        assert sorted((v["agent_id"], v["state"]) for _, v in proposed) == [
            ("s0", "proposed"), ("s1", "proposed"), ("s2", "proposed"),
        ]  # fmt: skip
        assert await read_topic(stack.bootstrap, prefix + "commands", 0, settle_s=1.0) == []
        chosen = next(v for _, v in proposed if v["agent_id"] == "s1")
        approval = {
            **chosen,
            "state": "approved",
            "changed_by": "lead-ann",
        }  # as the API publishes it
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(prefix + "actions", orjson.dumps(approval), key=b"billing")
        finally:
            await producer.stop()
        assert await commands(stack, prefix, 1) == [("agent.reassign", "s1", "s1")]
    stored = orjson.loads(await redis.hget(f"{prefix}actions", str(chosen["action_id"])) or b"{}")
    assert [h["state"] for h in stored["history"]] == ["proposed", "approved", "sent"]
    assert stored["history"][1]["by"] == "lead-ann"
