"""The API service's composition root: settings, clients, routes, the board's fan-out."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge

from services.api import actions, agents, board, docs, incidents, intervals, routes
from services.api.auth import Tokens
from services.api.fanout import Fanout, board_consumer, follow
from services.api.settings import ApiSettings
from services.api.state import ApiState
from shared.consume import DeadLetters
from shared.http import stack_ready
from shared.kafka import ensure_topics, new_producer
from shared.service import Running, build_app
from shared.store import Keys, new_redis
from shared.tasks import TaskGroup

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the API app; settings are read here, never at import."""
    settings = settings or ApiSettings()
    registry = CollectorRegistry()
    fanout = Fanout(client_queue=settings.api_client_queue)
    Gauge(
        "floorwatch_api_board_clients", "connected board websockets", registry=registry
    ).set_function(lambda: len(fanout.clients))

    async def start(app: FastAPI, tasks: TaskGroup) -> Running:
        client = new_redis(settings)
        api = ApiState(
            settings, client, Tokens(settings.tokens()), Keys(settings.topic_prefix), fanout
        )
        app.state.api = api
        for snap in await api.snapshots():
            fanout.remember(snap)
        await ensure_topics(settings)
        api.producer = new_producer(settings)
        await api.producer.start()
        consumer = board_consumer(settings)
        await consumer.start()
        topics = (settings.topic(n) for n in ("metrics", "alerts", "actions"))
        dlq = DeadLetters(api.producer, settings.topic("dlq"))
        tasks.start("board-fanout", follow(fanout, consumer, dlq, *topics))

        async def stop() -> None:
            await consumer.stop()
            if api.producer is not None:
                await api.producer.stop()
            await client.aclose()

        async def ready() -> dict[str, bool]:
            return await stack_ready(settings, client)

        return Running(stop, ready)

    app = build_app(
        "floorwatch API",
        registry,
        start,
        description="Queues, alerts, actions, settings, forecasts and staffing for floor "
        "managers and on-call leads. Every route takes `Authorization: Bearer <token>`.",
        read_timeout_s=settings.api_read_timeout_s,
    )
    app.include_router(agents.router)  # before /queues/{queue_id:path} would take .../agents
    app.include_router(routes.router)
    app.include_router(actions.router)
    app.include_router(incidents.router)
    app.include_router(intervals.router)
    app.include_router(board.router)
    docs.install(app)
    return app
