"""The API service's composition root: settings, clients, routes, the board's fan-out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry, Gauge

from services.api import board, routes
from services.api.auth import AuthError, Tokens
from services.api.fanout import Fanout, follow
from services.api.settings import ApiSettings
from services.api.state import ApiState
from shared.http import JsonResponse, health_router, json_response, stack_ready
from shared.kafka import ensure_topics, new_consumer, new_producer
from shared.store import Keys, new_redis
from shared.tasks import cancel_all, supervised

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the API app; settings are read here, never at import."""
    settings = settings or ApiSettings()
    registry = CollectorRegistry()
    fanout = Fanout(client_queue=settings.api_client_queue)
    Gauge(
        "floorwatch_api_board_clients", "connected board websockets", registry=registry
    ).set_function(lambda: len(fanout.clients))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
        consumer = new_consumer(settings, group_id=None, auto_offset_reset="latest")
        await consumer.start()
        tasks = [
            supervised(
                "board-fanout",
                follow(
                    fanout,
                    consumer,
                    settings.topic("metrics"),
                    settings.topic("alerts"),
                    settings.topic("actions"),
                ),
            )
        ]
        try:
            yield
        finally:
            await cancel_all(tasks)
            await consumer.stop()
            await api.producer.stop()
            await client.aclose()

    app = FastAPI(
        title="floorwatch API",
        version="1",
        lifespan=lifespan,
        description="Queues, alerts, actions, settings, forecasts and staffing for floor "
        "managers and on-call leads. Every route takes `Authorization: Bearer <token>`.",
    )

    @app.exception_handler(AuthError)
    async def auth_error(_: Request, exc: AuthError) -> JsonResponse:
        return json_response({"error": exc.message}, exc.status)

    @app.exception_handler(routes.ApiError)
    async def api_error(_: Request, exc: routes.ApiError) -> JsonResponse:
        body: dict[str, object] = {"error": exc.message}
        if exc.details:
            body["errors"] = exc.details
        return json_response(body, exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JsonResponse:
        errors = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return json_response({"error": "invalid request", "errors": errors}, 422)

    async def ready() -> dict[str, bool]:
        api: ApiState = app.state.api
        return await stack_ready(settings, api.redis)

    app.include_router(health_router(registry, ready))
    app.include_router(routes.router)
    app.include_router(board.router)
    return app
