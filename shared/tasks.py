"""Background tasks with an owner: a task that dies is logged once and makes its service
not ready (`/readyz` names it); every task is cancelled and awaited on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

# Any: a coroutine's send and throw types are irrelevant to its owner
Job = Coroutine[Any, Any, None]

T = TypeVar("T")

STOP_TIMEOUT_S = 10.0  # how long a stop waits for cancelled tasks before naming them


class TaskGroup:
    """The long-running tasks of one service."""

    def __init__(self, stop_timeout_s: float = STOP_TIMEOUT_S) -> None:
        self.stop_timeout_s = stop_timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failed: dict[str, str] = {}  # task name -> what killed it
        self._stopping = False

    def start(self, name: str, job: Job) -> asyncio.Task[None]:
        """Run `job` as the task `name`; its unexpected end is recorded and logged once."""
        task = asyncio.create_task(job, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping or self._tasks.get(task.get_name()) is not task:
            return  # stopped by its owner, or replaced by a new task of the same name
        name = task.get_name()
        exc = None if task.cancelled() else task.exception()
        if task.cancelled():
            reason = "cancelled"
        else:
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else "returned"
        self.failed[name] = reason[:500]
        log.error("task %s died", name, exc_info=exc)

    async def cancel(self, name: str) -> None:
        """Stop one task on purpose (e.g. to start it anew): not counted as dead."""
        task = self._tasks.pop(name, None)
        if task is not None:
            await cancel_all([task], self.stop_timeout_s)

    def readiness(self) -> dict[str, bool]:
        """`task:<name>` False for each task that died (merged into `/readyz`)."""
        return {f"task:{name}": False for name in self.failed}

    async def stop(self) -> None:
        """Cancel every task and wait for it, at most `stop_timeout_s`."""
        self._stopping = True
        await cancel_all(list(self._tasks.values()), self.stop_timeout_s)
        self._tasks.clear()


def supervised(name: str, job: Job) -> asyncio.Task[None]:
    """A short-lived task whose failure is logged (one delivery, one retry loop)."""

    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s died", name, exc_info=task.exception())

    task = asyncio.create_task(job, name=name)
    task.add_done_callback(done)
    return task


async def cancel_all(
    tasks: list[asyncio.Task[None]], timeout_s: float = STOP_TIMEOUT_S
) -> list[str]:
    """Cancel tasks and wait for them to finish, at most `timeout_s`; return (and log)
    the names of those that would not end, so one stuck task cannot hang a shutdown."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in tasks:
        if task.done() and not task.cancelled():
            with contextlib.suppress(Exception):
                task.exception()  # retrieved: its owner logged it already
    left = sorted(task.get_name() for task in pending)
    if left:
        log.error("tasks did not end %.0f s after cancel: %s", timeout_s, ", ".join(left))
    return left


def stop_if_cancelled() -> None:
    """Raise CancelledError when the running task is being cancelled. Clients (redis-py,
    aiokafka) may turn a task's cancellation into their own error, which the code around
    them catches and goes on from: a loop calls this once a round, so it still stops."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def within(work: Awaitable[T], timeout_s: float) -> T:
    """`await work`, at most `timeout_s` (then TimeoutError): `asyncio.wait_for` without
    its flaw on Python 3.11, which drops a cancellation that comes as the work finishes,
    so a loop cancelled at that moment went on running through its service's shutdown."""
    async with asyncio.timeout(timeout_s):
        return await work
