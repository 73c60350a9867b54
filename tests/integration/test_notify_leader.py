"""Two notifiers, one acting: the page goes out once, and once more after a takeover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from services.notify.app import create_app
from shared.localstack import LocalStack
from tests.integration.conftest import serve
from tests.integration.test_notify import Receivers, change, config, send, settings_for, until


@pytest.fixture
async def redis(stack: LocalStack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


async def test_one_notifier_pages_and_the_next_takes_over_without_repeating(
    stack: LocalStack, prefix: str, redis: aioredis.Redis
) -> None:
    receivers = Receivers()
    first = create_app(settings_for(stack, prefix, lease_ttl_ms=1000))
    second = create_app(settings_for(stack, prefix, lease_ttl_ms=1000))
    async with serve(receivers.app) as url:
        await redis.set(f"{prefix}notify:config", orjson.dumps(config(url)))
        running_first = serve(first)
        await running_first.__aenter__()  # first starts first, so it takes the lease
        await until(lambda: first.state.leader.token() is not None)
        async with serve(second):
            await send(stack, prefix + "alerts", change("raised"))
            await until(lambda: len(receivers.calls["hook"]) == 1, within_s=20)
            assert second.state.leader.token() is None  # exactly one acts
            await running_first.__aexit__(None, None, None)  # it stops and gives the lease up
            began = time.monotonic()
            await until(lambda: second.state.leader.token() is not None, within_s=10)
            takeover_s = time.monotonic() - began
            await send(stack, prefix + "alerts", change("escalated", tier=3, from_tier=2))
            await until(lambda: len(receivers.calls["hook"]) == 2, within_s=20)
            await asyncio.sleep(1.0)  # a page sent twice would have arrived by now
    assert takeover_s < 2.0  # a clean stop releases the lease at once
    bodies = [c["body"] for c in receivers.calls["hook"]]
    assert len({b["data"]["incident_id"] for b in bodies}) == 1  # one incident, paged, updated
    assert len(receivers.calls["hook"]) == 2  # the page, then its update: nothing twice
