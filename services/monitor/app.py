"""The monitor service's composition root: settings, clients, core and tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.monitor.service import MonitorMetrics, MonitorShell, tick_forever
from services.monitor.settings import MonitorSettings
from shared.http import health_router, stack_ready
from shared.store import new_redis
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
        assert shell.agents is not None  # noqa: S101  # started
        shell.start_consuming()
        tasks = [
            supervised("consume-agents", shell.consume(shell.agents, commit=False)),
            supervised("watchdog", shell.watchdog()),
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
        return {**await stack_ready(settings, shell.redis), "ticking": shell.last_tick is not None}

    app.include_router(health_router(registry, ready))
    return app
