"""The dispatcher service's composition root: settings, clients, core and tasks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from services.dispatcher.service import DispatcherShell, tick_forever
from services.dispatcher.settings import DispatcherSettings
from shared.http import stack_ready
from shared.kafka import ensure_topics
from shared.leader import Fence, Leader, Lease, instance_id, while_leading
from shared.service import Running, build_app
from shared.store import new_redis
from shared.tasks import TaskGroup

log = logging.getLogger(__name__)


def create_app(settings: DispatcherSettings | None = None) -> FastAPI:
    """Build the dispatcher app; its lifespan owns the consumers, the tick and the outbox."""
    settings = settings or DispatcherSettings()
    registry = CollectorRegistry()

    async def start(app: FastAPI, tasks: TaskGroup) -> Running:
        client = new_redis(settings)
        shell = DispatcherShell(settings, client, registry)
        app.state.shell = shell
        await ensure_topics(settings)
        await shell.start()
        http = httpx.AsyncClient()
        tasks.start("consume-floor", shell.floor_loop().run())
        # every instance follows the floor; the lease holder plans, takes requests, sends
        leader = Leader(
            Lease(client, settings.topic_prefix, "dispatcher", instance_id(), settings.lease_ttl_ms)
        )
        shell.fence = Fence(client, leader.lease.keys)
        app.state.leader = leader

        async def act() -> Callable[[], Awaitable[None]]:
            token = leader.token()
            if token is None:  # lost between the check and now: the next poll retries
                return shell.follow
            try:
                await shell.lead(token)
            except (KafkaError, RedisError, OSError):
                # the broker or Redis away mid-takeover: undone, the lease given up, and
                # taken again (by this instance or another) once they answer
                log.warning("taking over failed; the lease is given up", exc_info=True)
                await shell.follow()
                await leader.resign()
                return shell.follow
            except BaseException:
                await shell.follow()  # cancelled half way: undone
                raise
            tasks.start("consume-requests", shell.requests_loop().run())
            tasks.start("tick", tick_forever(shell, settings.tick_s))
            tasks.start("outbox", shell.outbox.deliver_forever(http))

            async def stop_acting() -> None:
                for name in ("tick", "consume-requests", "outbox"):
                    await tasks.cancel(name)
                await shell.follow()

            return stop_acting

        tasks.start("lease", leader.run())
        tasks.start("lead", while_leading(leader, act))

        async def stop() -> None:
            await tasks.cancel("lead")  # stops acting first
            await leader.resign()
            await shell.stop()
            await http.aclose()
            await client.aclose()

        async def ready() -> dict[str, bool]:
            return {**await stack_ready(settings, client), "caught_up": shell.caught_up}

        return Running(stop, ready)

    return build_app("floorwatch dispatcher", registry, start)
