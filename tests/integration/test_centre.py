"""`GET /v1/centre` from the monitor's parts equals the centre of a recount of the events."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import redis.asyncio as aioredis

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.monitor.app import create_app as create_monitor
from shared.core.engine import Engine
from shared.core.monitor import centre_snapshot
from shared.events import parse_event
from shared.kafka import ensure_topics
from shared.localstack import LocalStack
from shared.timefmt import parse_ts
from tests.integration.conftest import monitor_settings, produce_events, serve
from tests.integration.test_monitor import trace


async def test_centre_totals_equal_a_recount(stack: LocalStack, prefix: str) -> None:
    settings = monitor_settings(stack, prefix)
    await ensure_topics(settings)
    raws = trace(60)
    await produce_events(stack, prefix, raws)
    redis = aioredis.Redis.from_url(stack.redis_url)
    api_settings = ApiSettings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        topic_prefix=prefix,
        api_tokens="ops:admin:centre-admin,q:viewer:scoped-1:queue=a",
    )
    try:
        async with serve(create_monitor(settings)), serve(create_api(api_settings)) as url:
            deadline = time.monotonic() + 15
            part: dict[str, object] = {}
            while time.monotonic() < deadline:  # a tick with every event counted
                parts = await redis.hgetall(f"{prefix}centre:parts")
                part = orjson.loads(next(iter(parts.values()))) if parts else {}
                windows = part.get("windows", {})
                if windows and windows["300"]["arrivals"] == 60:  # type: ignore[index]
                    break
                await asyncio.sleep(0.1)
            async with httpx.AsyncClient(base_url=url) as client:
                r = await client.get("/v1/centre", headers={"Authorization": "Bearer centre-admin"})
                scoped = await client.get(
                    "/v1/centre", headers={"Authorization": "Bearer scoped-1"}
                )
    finally:
        await redis.aclose()
    body = r.json()
    engine = Engine()
    engine.add_many(parse_event(e) for e in raws)
    # at the response's own time: a tick may have come between the part read and the GET
    expected = centre_snapshot(engine.centre(engine.compute(parse_ts(body["as_of"]))))
    assert body == expected.model_dump(mode="json")
    assert (body["queues"], body["windows"]["300"]["arrivals"], body["agents"]["staffed"]) == (
        2,
        60,
        1,
    )
    assert scoped.status_code == 404
