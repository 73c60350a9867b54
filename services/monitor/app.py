"""The monitor service's composition root: settings, clients, core and tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.monitor.service import MonitorMetrics, MonitorShell, tick_forever
from services.monitor.settings import MonitorSettings
from shared.http import health_router
from shared.kafka import broker_reachable
from shared.store import new_redis, redis_reachable
from shared.tasks import cancel_all, supervised


def create_app(settings: MonitorSettings | None = None) -> FastAPI:
    """Build the monitor app; its lifespan owns the consumers and the tick loop."""
    settings = settings or MonitorSettings()
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    holder: dict[str, MonitorShell] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = new_redis(settings)
        shell = MonitorShell(settings, client, metrics)
        holder["shell"] = shell
        app.state.shell = shell
        await shell.start()
        assert shell.consumer is not None and shell.agents is not None  # noqa: S101  # started
        tasks = [
            supervised("consume-events", shell.consume(shell.consumer, commit=True)),
            supervised("consume-agents", shell.consume(shell.agents, commit=False)),
            supervised("tick", tick_forever(shell, settings.tick_s)),
        ]
        try:
            yield
        finally:
            await cancel_all(tasks)
            await shell.stop()
            await client.aclose()

    app = FastAPI(title="floorwatch monitor", version="1", lifespan=lifespan)

    async def ready() -> dict[str, bool]:
        shell = holder["shell"]
        broker, cache = await asyncio.gather(
            broker_reachable(settings), redis_reachable(shell.redis)
        )
        return {"broker": broker, "redis": cache, "ticking": shell.last_tick is not None}

    app.include_router(health_router(registry, ready))
    return app
