"""The outbox against real receivers and Redis: what is retried, what is not, 410 and 429,
and deliveries left pending by a crash."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry

from services.notify.channels import Request as Outgoing
from services.notify.outbox import Outbox, OutboxMetrics
from shared.localstack import LocalStack, free_port
from shared.store import Keys
from shared.tasks import cancel_all
from tests.integration.conftest import serve

# what each endpoint answers, attempt after attempt
SCRIPTS: dict[str, list[tuple[int, dict[str, str]]]] = {
    "ok": [(200, {})],
    "bad": [(400, {})],
    "gone": [(410, {})],
    "busy": [(429, {"Retry-After": "1"}), (200, {})],
    "timeout": [(408, {}), (503, {}), (200, {})],
}


def receivers(calls: dict[str, list[float]]) -> FastAPI:
    app = FastAPI()

    @app.post("/{name}")
    async def receive(name: str, request: Request) -> Response:
        calls.setdefault(name, []).append(time.monotonic())
        script = SCRIPTS[name]
        status, headers = script[min(len(calls[name]), len(script)) - 1]
        return Response(status_code=status, headers=headers)

    return app


async def test_outcomes_follow_the_answers_and_pending_deliveries_survive_a_crash(
    stack: LocalStack, prefix: str
) -> None:
    calls: dict[str, list[float]] = {}
    redis = aioredis.Redis.from_url(stack.redis_url)
    keys = Keys(prefix)
    registry = CollectorRegistry()
    async with serve(receivers(calls)) as url:

        async def build(record: dict[str, Any]) -> tuple[Outgoing | None, str, str]:
            target = record["push"]["target"]
            return Outgoing(f"{url}/{target}", {}, b"{}"), "webhook", ""

        outbox = Outbox(redis, keys, build, OutboxMetrics(registry), timeout_s=1.0, scale=0.01)
        pipe = redis.pipeline(transaction=True)
        for name in SCRIPTS:
            outbox.add(
                pipe, name, {"push": {"target": name}, "status": "pending", "attempts": 0}, 0
            )
        await pipe.execute()
        # a delivery whose attempt was cut short by a crash: pending, but out of the outbox
        crashed = {"push": {"target": "ok"}, "status": "pending", "attempts": 1}
        await redis.hset(keys.notify_deliveries, "crashed", orjson.dumps(crashed))
        await outbox.start()
        task = asyncio.create_task(outbox.run())
        try:
            for _ in range(100):
                records = {
                    k.decode(): orjson.loads(v)
                    for k, v in (await redis.hgetall(keys.notify_deliveries)).items()
                }
                if all(r["status"] != "pending" for r in records.values()):
                    break
                await asyncio.sleep(0.05)
            # another push to the endpoint that said 410 is not sent at all
            pipe = redis.pipeline(transaction=True)
            outbox.add(
                pipe,
                "gone-again",
                {"push": {"target": "gone"}, "status": "pending", "attempts": 0},
                0,
            )
            await pipe.execute()
            await asyncio.sleep(0.3)
        finally:
            await cancel_all([task])
            await outbox.stop()
    records = {
        k.decode(): orjson.loads(v)
        for k, v in (await redis.hgetall(keys.notify_deliveries)).items()
    }
    await redis.aclose()
    got = {k: (r["status"], r["attempts"], r["last_error"]) for k, r in records.items()}
    assert got == {
        "ok": ("delivered", 1, None),
        "crashed": ("delivered", 2, None),
        "bad": ("failed", 1, "HTTP 400: refused, not retried"),
        "gone": ("disabled", 1, "HTTP 410: endpoint gone, disabled"),
        "gone-again": ("disabled", 0, "endpoint disabled after a 410"),
        "busy": ("delivered", 2, None),
        "timeout": ("delivered", 3, None),
    }  # fmt: skip
    assert {k: len(v) for k, v in calls.items()} == {
        "ok": 2,
        "bad": 1,
        "gone": 1,
        "busy": 2,
        "timeout": 3,
    }
    assert calls["busy"][1] - calls["busy"][0] >= 1.0  # Retry-After: 1, over the 0.05 s schedule
    gaps = [b - a for a, b in zip(calls["timeout"], calls["timeout"][1:], strict=False)]
    assert 0.05 <= gaps[0] < 1.0 and gaps[1] >= 3.0  # 5 s then 5 min, scaled by 0.01

    def count(outcome: str) -> float | None:
        return registry.get_sample_value(
            "floorwatch_notify_deliveries_total", {"channel": "webhook", "outcome": outcome}
        )

    assert [count(o) for o in ("delivered", "retry", "failed", "disabled")] == [4.0, 3.0, 1.0, 2.0]


async def test_a_redis_outage_pauses_the_outbox_instead_of_ending_it(prefix: str) -> None:
    unreachable = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2
    )

    async def build(record: dict[str, Any]) -> tuple[Outgoing | None, str, str]:
        return None, "webhook", "never called"

    outbox = Outbox(
        unreachable, Keys(prefix), build, OutboxMetrics(CollectorRegistry()), poll_s=0.01
    )
    task = asyncio.create_task(outbox.run())
    await asyncio.sleep(1.5)
    assert not task.done()  # still polling, so deliveries resume when Redis is back
    await cancel_all([task])
    await unreachable.aclose()
