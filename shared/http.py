"""HTTP pieces every service shares: bearer tokens, health routes, Prometheus."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.kafka import broker_reachable
from shared.logs import setup_logging
from shared.runtime import tune_gc
from shared.settings import CommonSettings
from shared.store import redis_reachable
from shared.tasks import TaskGroup


class JsonResponse(Response):
    """A JSON response rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:  # Any: any JSON-serialisable value
        return orjson.dumps(content)


def json_response(
    content: object, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> JsonResponse:
    return JsonResponse(content, status_code=status_code, headers=headers)


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def health_router(
    registry: CollectorRegistry,
    ready: Callable[[], Awaitable[dict[str, bool]]],
    tasks: TaskGroup | None = None,
) -> APIRouter:
    """`/healthz` (process up), `/readyz` (dependencies reachable, no task dead), `/metrics`."""
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JsonResponse:
        checks = await ready()
        if tasks is not None:
            checks.update(tasks.readiness())
        ok = all(checks.values())
        body: dict[str, object] = {"ready": ok, **checks}
        if tasks is not None and tasks.failed:
            body["failed_tasks"] = dict(tasks.failed)
        return json_response(body, status_code=200 if ok else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


async def stack_ready(settings: CommonSettings, client: aioredis.Redis) -> dict[str, bool]:
    """The checks every service's `/readyz` starts from: its broker and its Redis."""
    broker, cache = await asyncio.gather(broker_reachable(settings), redis_reachable(client))
    return {"broker": broker, "redis": cache}


GRACE_S = 10  # open connections (board streams) get this long to close on shutdown


def serve_forever(app: FastAPI, settings: CommonSettings, host: str, port: int) -> None:
    """Run a service's app with uvicorn and JSON logs (a service's `__main__`)."""
    setup_logging(settings.log_level)
    tune_gc()
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=GRACE_S)
