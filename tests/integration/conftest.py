"""Helpers for tests that run services in-process against the real broker and Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.monitor.settings import MonitorSettings
from shared.events import encode_event, event_key, is_agent_event, parse_event
from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run an app with uvicorn on a free 127.0.0.1 port; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
        timeout_graceful_shutdown=5,
    )  # fmt: skip
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


async def produce_events(stack: LocalStack, prefix: str, raws: list[dict[str, Any]]) -> None:
    """Write raw events to their topics as ingest would (validated, keyed)."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for raw in raws:
            e = parse_event(raw)
            topic = prefix + ("agents" if is_agent_event(e) else "events")
            await producer.send_and_wait(topic, encode_event(e), key=event_key(e).encode())
    finally:
        await producer.stop()


def monitor_settings(stack: LocalStack, prefix: str) -> MonitorSettings:
    """A monitor of its own topics and group, ticking every 0.2 s."""
    return MonitorSettings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        topic_prefix=prefix,
        tick_s=0.2,
        monitor_group_id=f"{prefix}monitor",
    )


@contextlib.asynccontextmanager
async def monitor_and_api(
    stack: LocalStack, prefix: str, api_tokens: str
) -> AsyncIterator[tuple[MonitorSettings, str]]:
    """The topics made, an API with these tokens served: the monitor's settings (each
    test starts the monitor when its events are in) and the API's URL."""
    settings = monitor_settings(stack, prefix)
    await ensure_topics(settings)
    api = ApiSettings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        topic_prefix=prefix,
        api_tokens=api_tokens,
    )
    async with serve(create_api(api)) as url:
        yield settings, url
