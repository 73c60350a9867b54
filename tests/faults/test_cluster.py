"""A cluster on one machine: 3 monitors, 2 dispatchers and 2 APIs as processes on one
broker and Redis. Mid-surge the leading dispatcher and a monitor are killed (SIGKILL):
the numbers still equal a recount of the events, every command is sent exactly once,
and the other dispatcher takes over (the takeover time is recorded)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from shared.leader import LeaseKeys
from shared.localstack import LocalStack
from shared.messages.actions import Action
from tests.faults.harness import (
    API_SECRET,
    FaultStack,
    Proc,
    Sender,
    mismatches,
    read_all,
    record,
    settled_queues,
    stamp,
    wait_ready,
)

pytestmark = pytest.mark.faults

ADMIN = {"Authorization": f"Bearer {API_SECRET}"}
LEASE_TTL_MS = 3000


@pytest.fixture
async def cluster() -> AsyncIterator[FaultStack]:
    local = LocalStack().start()
    fault = FaultStack(local)
    try:
        fault.start()  # ingest, api, monitor
        extra = {"FLOORWATCH_LEASE_TTL_MS": str(LEASE_TTL_MS)}
        added = [
            fault.add("api-2", "services.api", "FLOORWATCH_API_PORT"),
            fault.add("monitor-2", "services.monitor", "FLOORWATCH_MONITOR_PORT"),
            fault.add("monitor-3", "services.monitor", "FLOORWATCH_MONITOR_PORT"),
            fault.add("dispatcher", "services.dispatcher", "FLOORWATCH_DISPATCHER_PORT", **extra),
            fault.add("dispatcher-2", "services.dispatcher", "FLOORWATCH_DISPATCHER_PORT", **extra),
        ]
        for proc in added:
            wait_ready(proc)
        yield fault
    finally:
        fault.stop()
        local.stop()


def billing_floor(now: datetime) -> list[dict[str, Any]]:
    """Billing: 2 agents, both busy, and 40 calls waiting. Sales: 10 agents, 4 idle, 3 of
        them also skilled for billing (the cross-skilled agents the playbook moves). Support:
    4 idle agents, one also skilled for sales (the one a lead asks for by hand)."""
    out: list[dict[str, Any]] = []

    def add(kind: str, **fields: Any) -> None:
        at = now - timedelta(seconds=60) + timedelta(milliseconds=10 * len(out))
        out.append({"event_id": f"floor{len(out)}", "type": kind, "ts": stamp(at), **fields})

    for i in range(2):
        add("agent.skills", agent_id=f"b{i}", skills=[{"queue_id": "billing", "level": 8}])
        add("agent.state", agent_id=f"b{i}", state="busy")
    for i in range(10):
        skills = [{"queue_id": "sales", "level": 8}]
        if i < 3:
            skills.append({"queue_id": "billing", "level": 9 - i})
        add("agent.skills", agent_id=f"s{i}", skills=skills, serving=["sales"])
        add("agent.state", agent_id=f"s{i}", state="available" if i < 4 else "busy")
    for i in range(4):  # support, calm: one of them can also take sales calls
        skills = [{"queue_id": "support", "level": 8}]
        if i == 0:
            skills.append({"queue_id": "sales", "level": 7})
        add("agent.skills", agent_id=f"t{i}", skills=skills, serving=["support"])
        add("agent.state", agent_id=f"t{i}", state="available")
    for i in range(3):
        add("call.queued", call_id=f"sale{i}", queue_id="sales")
    for i in range(40):
        add("call.queued", call_id=f"bill{i}", queue_id="billing")
    return out


async def lease_holder(redis: aioredis.Redis, prefix: str) -> str | None:
    raw = await redis.get(LeaseKeys(prefix, "dispatcher").lease)
    return None if raw is None else raw.decode().partition("|")[2]


def leader_of(stack: FaultStack, holder: str) -> Proc:
    """The dispatcher process whose pid is in the lease holder's id (`host:pid:random`)."""
    pid = int(holder.split(":")[1])
    [proc] = [
        p
        for n, p in stack.procs.items()
        if n.startswith("dispatcher") and p.proc is not None and p.proc.pid == pid
    ]
    return proc


async def commands_quiet(stack: FaultStack, quiet_s: float, at_least: int) -> list[dict[str, Any]]:
    """The commands topic once it holds `at_least` commands and none came for `quiet_s`."""
    seen = -1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = await read_all(stack.local.bootstrap, f"{stack.prefix}commands", settle_s=0.3)
        if len(records) >= at_least and len(records) == seen:
            return records
        seen = len(records)
        await asyncio.sleep(quiet_s)
    raise AssertionError(f"commands never settled: {seen} on the topic")


async def hand_action_sent(redis: aioredis.Redis, prefix: str, asked_at: float) -> float:
    """Seconds from the lead's request until its action is stored as sent."""
    while time.monotonic() - asked_at < 60:
        for raw in (await redis.hgetall(f"{prefix}actions")).values():
            action = Action.model_validate_json(raw)
            if action.kind == "hand" and action.state == "sent":
                return time.monotonic() - asked_at
        await asyncio.sleep(0.1)
    raise AssertionError("the lead's request was never acted on")


async def test_leader_and_a_monitor_killed_mid_surge(cluster: FaultStack) -> None:
    stack, prefix = cluster, cluster.prefix
    api, api_2 = stack.procs["api"].url, stack.procs["api-2"].url
    redis = aioredis.Redis.from_url(stack.local.redis_url)
    sender = Sender(stack.procs["ingest"].url)
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    forecast = {
        "queue_id": "billing",
        "start": stamp(start),
        "interval_s": 900,
        "arrivals": [3] * 12,
    }
    async with httpx.AsyncClient(timeout=15) as client:
        r = await client.put(f"{api}/v1/forecast", json=forecast, headers=ADMIN)
        assert r.status_code == 200
        assert await sender.post(client, billing_floor(now)) == 202
        await sender.rounds(client, 6)
        # billing: 40 calls against 1 expected in 5 min: the top tier, and a plan
        first = await commands_quiet(stack, 2.0, at_least=1)
        holder = await lease_holder(redis, prefix)
        assert holder is not None
        leading = leader_of(stack, holder)
        killed_at = time.monotonic()
        leading.kill()
        stack.procs["monitor-2"].kill()
        await sender.rounds(client, 4)  # the surge goes on while one is away
        while (now_holder := await lease_holder(redis, prefix)) in (None, holder):
            assert time.monotonic() - killed_at < 30, "no dispatcher took over"
            await asyncio.sleep(0.05)
        took_over_s = time.monotonic() - killed_at
        # a lead asks for a support agent on sales through the other API: the new leader
        r = await client.post(
            f"{api_2}/v1/actions",
            json={"queue_id": "sales", "lever": "cross_skill", "count": 1},
            headers=ADMIN,
        )
        assert r.status_code == 202
        asked_at = time.monotonic()
        await sender.rounds(client, 4)
        hand_s = await hand_action_sent(redis, prefix, asked_at)
    after = await commands_quiet(stack, 2.0, at_least=len(first) + 1)
    stored = [
        Action.model_validate_json(v) for v in (await redis.hgetall(f"{prefix}actions")).values()
    ]
    await redis.aclose()

    ids = Counter(str(c["command_id"]) for c in after)
    assert [i for i, n in ids.items() if n > 1] == []  # nothing sent twice
    known = {a.action_id for a in stored}
    assert {str(c["action_id"]) for c in after} <= known  # nothing sent that is not stored
    sent = {c.command_id for a in stored if a.sent_at is not None for c in a.commands}
    assert sent <= set(ids)  # everything stored as sent is on the topic
    hand = [a for a in stored if a.kind == "hand"]
    assert [(a.queue_id, a.state, a.changed_by) for a in hand] == [("sales", "sent", "ops")]
    assert [(c.type, c.agent_id) for c in hand[0].commands] == [("agent.reassign", "t0")]
    assert now_holder is not None and now_holder != holder
    assert leader_of(stack, now_holder).name != leading.name

    shown = await settled_queues(api, time.time() + 1.0)
    wrong = mismatches(shown, sender.acked)
    record(
        "cluster: leading dispatcher and a monitor SIGKILL mid-surge",
        acked=len(sender.acked),
        commands=len(after),
        commands_before_kill=len(first),
        actions=len(stored),
        takeover_s=round(took_over_s, 2),
        request_answered_s=round(hand_s, 2),
        lease_ttl_ms=LEASE_TTL_MS,
        mismatches=len(wrong),
        first_mismatches=wrong[:20],
    )
    assert wrong == []
    print(f"takeover {took_over_s:.2f} s, request {hand_s:.2f} s, {len(after)} commands")  # noqa: T201
