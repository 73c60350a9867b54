"""The monitor's tick loop ends when cancelled, even when the cancellation comes as a tick
finishes (Python 3.11's `asyncio.wait_for` dropped it there, and the loop went on
ticking through the service's shutdown with the producer and Redis it had closed)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from services.monitor.service import MonitorShell, tick_forever


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
