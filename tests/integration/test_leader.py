"""The leader lease on the real Redis: one leader, takeover after it dies, stale writes refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shared.leader import Fence, Leader, Lease, StaleLeader
from shared.localstack import LocalStack, free_port

pytestmark = pytest.mark.integration

TTL_MS = 1500


@pytest.fixture
async def client(stack: LocalStack) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


def contender(redis: aioredis.Redis, prefix: str, holder: str) -> Leader:
    return Leader(Lease(redis, prefix, "dispatcher", holder, ttl_ms=TTL_MS), retry_s=0.05)


async def chase(leader: Leader) -> int:
    """Try to take the lease every 20 ms until it is ours; its token."""
    while True:
        token = await leader.step()
        if token is not None:
            return token
        await asyncio.sleep(0.02)


async def test_of_two_contenders_exactly_one_leads(client: aioredis.Redis, prefix: str) -> None:
    a, b = contender(client, prefix, "a"), contender(client, prefix, "b")
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        await asyncio.sleep(TTL_MS / 1000 * 2)  # two lease times: several renewals each
        tokens = [a.token(), b.token()]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # the first lease ever taken gets token 1, kept through every renewal
    assert sorted(tokens, key=str) == [1, None]
    holder = "a" if tokens[0] == 1 else "b"
    assert await a.lease.holder_now() == (1, holder)
    assert a.changes + b.changes == 1


async def test_a_follower_takes_over_within_the_lease_time(
    client: aioredis.Redis, prefix: str
) -> None:
    a, b = contender(client, prefix, "a"), contender(client, prefix, "b")
    assert await a.step() == 1
    assert await b.step() is None
    died = time.monotonic()  # a stops renewing from here: its process is gone
    assert await chase(b) == 2
    took_over = time.monotonic()
    assert await b.lease.holder_now() == (2, "b")
    # not before Redis let the old lease run out, and within one retry after it did
    assert TTL_MS / 1000 - 0.1 <= took_over - died <= TTL_MS / 1000 + 1.0


async def test_a_holder_that_cannot_renew_stops_acting_before_the_lease_passes(
    client: aioredis.Redis, prefix: str
) -> None:
    now = [0.0]
    a = Leader(Lease(client, prefix, "dispatcher", "a", ttl_ms=TTL_MS), clock=lambda: now[0])
    b = contender(client, prefix, "b")
    assert await a.step() == 1
    now[0] = 1.29  # a paused for 1.29 s by its own clock: still inside ttl - margin (1.3 s)
    assert a.token() == 1
    now[0] = 1.3  # at the deadline: a acts no more, though Redis still shows its lease
    assert a.token() is None
    assert await a.lease.holder_now() == (1, "a")
    await asyncio.sleep(TTL_MS / 1000 + 0.1)  # the lease expires in Redis
    assert await b.step() == 2
    assert await a.step() is None  # the old holder comes back and finds it taken
    assert a.token() is None
    assert await b.lease.holder_now() == (2, "b")


async def test_a_leader_cut_off_from_redis_acts_until_its_deadline_only(
    client: aioredis.Redis, prefix: str
) -> None:
    now = [0.0]
    a = Leader(Lease(client, prefix, "dispatcher", "a", ttl_ms=TTL_MS), clock=lambda: now[0])
    assert await a.step() == 1
    # nothing listens there; no retries, so the test does not wait on backoff
    dead = aioredis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    a.lease.redis = dead
    try:
        now[0] = 0.5
        assert await a.step() == 1  # the renewal failed, but the lease is still ours
        now[0] = 1.3
        assert await a.step() is None  # past ttl - margin: acts no more
        assert a.token() is None
    finally:
        await dead.aclose()


async def test_a_stale_leaders_write_is_refused(client: aioredis.Redis, prefix: str) -> None:
    a, b = contender(client, prefix, "a"), contender(client, prefix, "b")
    fence = Fence(client, a.lease.keys)
    actions = f"{prefix}actions"
    old = await a.step()
    assert old == 1
    await fence.hset(old, actions, "q1", "from a")
    await client.delete(a.lease.keys.lease)  # a's lease runs out while a is paused
    new = await b.step()
    assert new == 2
    await fence.hset(new, actions, "q1", "from b")
    with pytest.raises(StaleLeader):
        await fence.hset(old, actions, "q1", "from a, late")
    assert await client.hget(actions, "q1") == b"from b"
    assert await fence.highest() == 2
    await fence.hset(new, actions, "q2", "from b again")  # the leader's own token passes
    assert await client.hgetall(actions) == {b"q1": b"from b", b"q2": b"from b again"}


async def test_a_resigning_leader_hands_over_at_once(client: aioredis.Redis, prefix: str) -> None:
    a, b = contender(client, prefix, "a"), contender(client, prefix, "b")
    assert await a.step() == 1
    await a.resign()
    assert a.token() is None
    assert await b.step() == 2
    assert await a.lease.release(1) is False  # releasing someone else's lease does nothing
    assert await b.lease.holder_now() == (2, "b")
