"""The services' background loops (ticks, the leader, the watchdog, the topic guard, the
notifier's outbox) end when cancelled, even when the cancellation comes as a tick
finishes (Python 3.11's `asyncio.wait_for` dropped it there) or a client turns it into
its own error that the loop catches: either way a loop went on running through its
service's shutdown with the producer and Redis it had closed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from services.dispatcher.service import DispatcherShell
from services.dispatcher.service import tick_forever as dispatcher_loop
from services.ingest.topics import TopicGuard
from services.monitor.service import MonitorMetrics, MonitorShell, tick_forever
from services.monitor.settings import MonitorSettings
from services.notify.outbox import Outbox, OutboxMetrics
from services.notify.service import NotifyShell
from shared.leader import Leader, Lease
from shared.settings import CommonSettings
from shared.store import Keys


async def ends_cancelled(task: asyncio.Task[None], timeout_s: float = 1.0) -> bool:
    """Whether `task` ended, cancelled, within `timeout_s`; one still running is cancelled
    here (a loop that went on is stopped; a no-op once it ended)."""
    try:
        done, _ = await asyncio.wait([task], timeout=timeout_s)
        return task in done and task.cancelled()
    finally:
        task.cancel()


class Shell:
    """Ticks and measures lag; its second tick cancels the loop as it finishes."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.loop: asyncio.Task[None] | None = None

    async def tick(self, now: float) -> None:
        self.ticks.append(now)
        if len(self.ticks) == 2 and self.loop is not None:
            self.loop.cancel()  # the shutdown's cancel, as this tick's work is done

    async def update_lag(self) -> None:
        return None


@pytest.mark.asyncio
async def test_a_cancel_that_comes_as_a_tick_finishes_stops_the_loop() -> None:
    shell = Shell()
    clock = iter(float(t) for t in range(100))
    loop = asyncio.create_task(tick_forever(cast(MonitorShell, shell), 0.01, lambda: next(clock)))
    shell.loop = loop
    assert await ends_cancelled(loop)
    assert shell.ticks == [0.0, 1.0]  # no tick after the cancel


class Swallower:
    """Its second tick is cancelled while it waits on a client that turns the cancellation
    into its own error, which the tick catches and goes on from (as redis-py may: the
    monitor's `refresh_from_redis` keeps ticking on a RedisError)."""

    def __init__(self) -> None:
        self.ticks = 0
        self.loop: asyncio.Task[None] | None = None
        self.settings = SimpleNamespace(notify_tick_s=0.01)

    async def tick(self, _now: float | None = None) -> None:
        self.ticks += 1
        if self.ticks == 2 and self.loop is not None:
            self.loop.cancel()  # the shutdown's cancel, while the tick waits on a client
            try:
                await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                pass  # the client's own error, caught by the tick: the cancel is spent

    async def update_lag(self) -> None:
        return None


@pytest.mark.asyncio
@pytest.mark.parametrize("service", ["monitor", "dispatcher", "notify"])
async def test_a_cancel_a_client_swallowed_still_stops_the_loop(service: str) -> None:
    """Before: the loop went on ticking after the shutdown had cancelled it, then used the
    producer and Redis the shutdown closed (ProducerClosed never retrieved, an unclosed
    Redis connection: the integration tests' rare failure)."""
    shell = Swallower()
    loops = {
        "monitor": lambda: tick_forever(cast(MonitorShell, shell), 0.01),
        "dispatcher": lambda: dispatcher_loop(cast(DispatcherShell, shell), 0.01),
        "notify": lambda: NotifyShell.tick_forever(cast(NotifyShell, shell)),
    }
    loop = asyncio.create_task(loops[service]())
    shell.loop = loop
    assert await ends_cancelled(loop)
    assert shell.ticks == 2  # no tick after the cancel


class SwallowingLease:
    """A lease whose Redis turns the task's cancellation into its own error (as redis-py
    may): `acquire` waits on the "connection" and raises RedisError when cancelled."""

    name = "dispatcher"
    ttl_ms = 6000

    def __init__(self) -> None:
        self.attempts = 0

    async def acquire(self) -> int | None:
        self.attempts += 1
        try:
            await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            raise RedisError("connection closed by the cancellation") from None
        return None


@pytest.mark.asyncio
async def test_a_cancel_the_lease_client_swallowed_still_stops_the_leader() -> None:
    """Before: `Leader.step` took the RedisError for an unreachable lease and `run` went on
    chasing it, so a shutdown (and the integration test that cancels two contenders and
    waits for them) waited forever."""
    lease = SwallowingLease()
    leader = Leader(cast(Lease, lease), retry_s=0.01)
    run = asyncio.create_task(leader.run())
    await asyncio.sleep(0.05)  # inside the first attempt
    run.cancel()
    assert await ends_cancelled(run)
    assert lease.attempts == 1  # no attempt after the cancel


class SwallowingCall:
    """A client call that turns the task's cancellation into the client's own error."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0
        self.loop: asyncio.Task[None] | None = None

    async def __call__(self, *_args: object) -> object:
        self.calls += 1
        if self.calls == 2 and self.loop is not None:
            self.loop.cancel()  # the shutdown's cancel, while the call waits on its client
        try:
            await asyncio.sleep(1.0 if self.calls == 2 else 0.0)
        except asyncio.CancelledError:
            raise self.error from None
        raise self.error  # the client away: the loop waits and tries again


def _watchdog(call: SwallowingCall) -> Coroutine[Any, Any, None]:
    shell = MonitorShell(MonitorSettings(), aioredis.Redis(), MonitorMetrics(CollectorRegistry()))
    shell.consumer = SimpleNamespace(  # type: ignore[assignment]
        assignment=lambda: [TopicPartition("floorwatch.events", 0)], end_offsets=call
    )
    return shell.watchdog(every_s=0.01)


def _topics(call: SwallowingCall) -> Coroutine[Any, Any, None]:
    guard = TopicGuard(CommonSettings())
    guard.check = call  # type: ignore[method-assign,assignment]
    return guard.watch(0.01)


def _outbox(call: SwallowingCall) -> Coroutine[Any, Any, None]:
    box = Outbox(
        aioredis.Redis(), Keys("t."), cast(Any, None), OutboxMetrics(CollectorRegistry()),
        poll_s=0.01,
    )  # fmt: skip
    box.poll = call  # type: ignore[method-assign,assignment]
    return box.run()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("loop_of", "error"),
    [(_watchdog, KafkaError()), (_topics, KafkaError()), (_outbox, RedisError())],
    ids=["monitor-watchdog", "ingest-topics", "notify-outbox"],
)
async def test_a_cancel_a_client_swallowed_still_stops_the_background_loops(
    loop_of: Callable[[SwallowingCall], Coroutine[Any, Any, None]], error: Exception
) -> None:
    """Each loop takes its client's error for an outage and goes on: before, a cancel the
    client turned into that error left it running through the shutdown."""
    call = SwallowingCall(error)
    loop = asyncio.create_task(loop_of(call))
    call.loop = loop
    assert await ends_cancelled(loop, timeout_s=3.0)
    assert call.calls == 2  # no call after the cancel
