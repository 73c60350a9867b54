"""The one app builder every service uses: lifespan, tasks, health routes, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import FloorwatchError
from shared.http import JsonResponse, health_router, json_response
from shared.tasks import TaskGroup, within


@dataclass
class Running:
    """What a service's composition root hands back once its clients are started."""

    stop: Callable[[], Awaitable[None]]
    ready: Callable[[], Awaitable[dict[str, bool]]]


# the composition root: given the app and its task group, start clients and tasks
Starter = Callable[[FastAPI, TaskGroup], Awaitable[Running]]

log = logging.getLogger(__name__)


class ReadTimeout:
    """ASGI middleware: a client that sends its request body slower than `timeout_s` per
    chunk is treated as gone, so a slow client cannot hold a worker's request open."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def bounded() -> Message:
            try:
                return await within(receive(), self.timeout_s)
            except TimeoutError:
                return {"type": "http.disconnect"}

        await self.app(scope, bounded, send)


def build_app(
    title: str,
    registry: CollectorRegistry,
    start: Starter,
    description: str = "",
    read_timeout_s: float = 10.0,
) -> FastAPI:
    """A FastAPI app whose lifespan runs `start`, then stops its tasks and clients in
    reverse; `/readyz` reports the service's checks and any task that died."""
    tasks = TaskGroup()
    running: list[Running] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await start(app, tasks)
        running.append(service)
        try:
            yield
        finally:
            await tasks.stop()
            try:
                async with asyncio.timeout(tasks.stop_timeout_s):
                    await service.stop()
            except TimeoutError:
                log.error("%s: clients did not close within %.0f s", title, tasks.stop_timeout_s)
            running.clear()

    app = FastAPI(title=title, version="2", lifespan=lifespan, description=description)
    app.state.tasks = tasks
    app.add_middleware(ReadTimeout, timeout_s=read_timeout_s)

    async def ready() -> dict[str, bool]:
        return await running[0].ready() if running else {"started": False}

    app.include_router(health_router(registry, ready, tasks))
    install_error_handlers(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Every error is `{"error": ...}` with its status, 404 and 422 included."""

    @app.exception_handler(FloorwatchError)
    async def floorwatch_error(_: Request, exc: FloorwatchError) -> JsonResponse:
        return json_response(exc.as_json(), exc.status, exc.headers)

    @app.exception_handler(RedisError)
    async def redis_error(_: Request, exc: RedisError) -> JsonResponse:
        log.warning("redis unavailable: %s", type(exc).__name__)
        body = {"error": "Redis unavailable; try again shortly"}
        return json_response(body, 503, {"Retry-After": "2"})

    @app.exception_handler(KafkaError)
    async def kafka_error(_: Request, exc: KafkaError) -> JsonResponse:
        log.warning("broker unavailable: %s", type(exc).__name__)
        body = {"error": "broker unavailable; try again shortly"}
        return json_response(body, 503, {"Retry-After": "2"})

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JsonResponse:
        return json_response({"error": str(exc.detail)}, exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JsonResponse:
        errors = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return json_response({"error": "invalid request", "errors": errors}, 422)
