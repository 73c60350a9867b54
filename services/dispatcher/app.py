"""The dispatcher service's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.dispatcher.service import DispatcherShell, tick_forever
from services.dispatcher.settings import DispatcherSettings
from shared.http import health_router, stack_ready
from shared.kafka import ensure_topics
from shared.store import new_redis
from shared.tasks import cancel_all, supervised


def create_app(settings: DispatcherSettings | None = None) -> FastAPI:
    settings = settings or DispatcherSettings()
    registry = CollectorRegistry()
    holder: dict[str, DispatcherShell] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = new_redis(settings)
        shell = DispatcherShell(settings, client, registry)
        holder["shell"] = shell
        app.state.shell = shell
        await ensure_topics(settings)
        await shell.start()
        tasks = [
            supervised("dispatcher-events", shell.follow_events()),
            supervised("dispatcher-approvals", shell.follow_approvals()),
            supervised("dispatcher-tick", tick_forever(shell, settings.tick_s)),
        ]
        try:
            yield
        finally:
            await cancel_all(tasks)
            await shell.stop()
            await client.aclose()

    app = FastAPI(title="floorwatch dispatcher", version="1", lifespan=lifespan)

    async def ready() -> dict[str, bool]:
        shell = holder["shell"]
        return {**await stack_ready(settings, shell.redis), "caught_up": shell.caught_up}

    app.include_router(health_router(registry, ready))
    return app
