"""Stopping a service's tasks ends even when a task will not: it is named, not waited on
forever (a hung shutdown holds a rolling deploy and a test run alike)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from shared.tasks import TaskGroup, cancel_all


async def stubborn(started: asyncio.Event, release: asyncio.Event) -> None:
    """A task that swallows every cancellation (as a client library sometimes does)
    until the test releases it."""
    started.set()
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def obedient(started: asyncio.Event) -> None:
    started.set()
    await asyncio.sleep(3600)


async def test_cancel_all_gives_up_on_a_task_that_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started, release = [asyncio.Event(), asyncio.Event()], asyncio.Event()
    stuck = asyncio.create_task(stubborn(started[0], release), name="stuck")
    fine = asyncio.create_task(obedient(started[1]), name="fine")
    await asyncio.gather(*(e.wait() for e in started))
    began = time.monotonic()
    with caplog.at_level(logging.ERROR):
        left = await cancel_all([stuck, fine], timeout_s=0.3)
    took = time.monotonic() - began
    assert left == ["stuck"]
    assert fine.cancelled()
    assert not stuck.done()
    assert 0.3 <= took < 2.0
    assert "stuck" in caplog.text
    release.set()
    await stuck


async def test_a_task_group_stops_in_bounded_time_and_names_what_would_not_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = TaskGroup(stop_timeout_s=0.3)
    started, release = [asyncio.Event(), asyncio.Event()], asyncio.Event()
    group.start("consume", obedient(started[0]))
    stuck = group.start("outbox", stubborn(started[1], release))
    await asyncio.gather(*(e.wait() for e in started))
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(group.stop(), timeout=5)
    assert "outbox" in caplog.text
    assert "consume" not in caplog.text
    assert group.failed == {}
    release.set()
    await stuck
