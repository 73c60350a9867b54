"""The real local broker and Redis, started once per test session on free ports."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from fastapi import FastAPI

from shared.localstack import LocalStack, free_port


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    local = LocalStack().start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def prefix() -> str:
    """A topic and key prefix of its own for each test, so tests never see each other."""
    return f"t{uuid.uuid4().hex[:10]}."


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run an app with uvicorn on a free 127.0.0.1 port; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
