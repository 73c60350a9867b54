"""The monitor service's composition root: settings, clients, core and tasks."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge

from services.monitor.service import MonitorMetrics, MonitorShell, tick_forever
from services.monitor.settings import MonitorSettings
from shared.http import stack_ready
from shared.service import Running, build_app
from shared.store import new_redis
from shared.tasks import TaskGroup


def create_app(settings: MonitorSettings | None = None) -> FastAPI:
    """Build the monitor app; its lifespan owns the consumers and the tick loop."""
    settings = settings or MonitorSettings()
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    capped = Gauge(
        "floorwatch_monitor_events_capped",
        "events forgotten because the monitor held its most (FLOORWATCH_MONITOR_MAX_EVENTS)",
        registry=registry,
    )

    async def start(app: FastAPI, tasks: TaskGroup) -> Running:
        client = new_redis(settings)
        shell = MonitorShell(settings, client, metrics, tasks=tasks)
        app.state.shell = shell
        engine = shell.monitor.engine
        engine.max_events = settings.monitor_max_events
        capped.set_function(lambda: float(engine.capped_events))
        await shell.start()
        assert shell.agents is not None  # noqa: S101  # started
        shell.start_consuming()
        tasks.start("consume-agents", shell.consume(shell.agents, commit=False))
        tasks.start("watchdog", shell.watchdog())
        tasks.start("tick", tick_forever(shell, settings.tick_s))

        async def stop() -> None:
            await shell.stop()
            await client.aclose()

        async def ready() -> dict[str, bool]:
            return {**await stack_ready(settings, client), "ticking": shell.last_tick is not None}

        return Running(stop, ready)

    return build_app("floorwatch monitor", registry, start)
