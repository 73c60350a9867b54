"""The services' tick loops end when cancelled, even when the cancellation comes as a tick
finishes (Python 3.11's `asyncio.wait_for` dropped it there) or a client turns it into
its own error that the tick catches: either way a loop went on ticking through its
service's shutdown with the producer and Redis it had closed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest

from services.dispatcher.service import DispatcherShell
from services.dispatcher.service import tick_forever as dispatcher_loop
from services.monitor.service import MonitorShell, tick_forever
from services.notify.service import NotifyShell


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
    try:
        done, _ = await asyncio.wait([loop], timeout=1.0)
        assert loop in done and loop.cancelled()
        assert shell.ticks == [0.0, 1.0]  # no tick after the cancel
    finally:
        loop.cancel()  # a loop that went on is stopped here (a no-op once it ended)


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
    try:
        done, _ = await asyncio.wait([loop], timeout=1.0)
        assert loop in done and loop.cancelled()
        assert shell.ticks == 2  # no tick after the cancel
    finally:
        loop.cancel()
