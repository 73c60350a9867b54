"""Background tasks with an owner: logged loudly when they die, cancelled on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


def supervised(name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Start `coro` as a task whose unexpected end is logged with its exception."""
    # Any: the coroutine's send and throw types are irrelevant here

    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s died", name, exc_info=task.exception())

    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(done)
    return task


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel tasks and wait for them to finish."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
