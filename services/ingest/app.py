"""The ingest service's composition root: settings, clients and routes (contract 2)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.ingest.service import IngestMetrics, IngestService, router
from services.ingest.settings import IngestSettings
from shared.http import stack_ready
from shared.kafka import BrokerUnavailable
from shared.service import Running, build_app
from shared.store import new_redis
from shared.tasks import TaskGroup

log = logging.getLogger(__name__)


def create_app(
    settings: IngestSettings | None = None, clock: Callable[[], float] = time.time
) -> FastAPI:
    """Build the ingest app; settings are read here, never at import. `clock` is the
    clock `ts` is bounded against (contract 1)."""
    settings = settings or IngestSettings()
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)

    async def start(app: FastAPI, tasks: TaskGroup) -> Running:
        client = new_redis(settings)
        ingest = IngestService(settings, client, metrics, clock)
        app.state.ingest = ingest
        try:
            await ingest.get_producer()
        except BrokerUnavailable:
            log.warning("broker unreachable at start; retried on the first request")
        # a broker that lost its topics (the local one keeps them in memory) gets them
        # back as floorwatch makes them, within this long of its return
        tasks.start("topics", ingest.topics.watch(settings.ingest_topics_check_s))

        async def stop() -> None:
            await ingest.close()
            await client.aclose()

        async def ready() -> dict[str, bool]:
            return await stack_ready(settings, client)

        return Running(stop, ready)

    app = build_app(
        "floorwatch ingest",
        registry,
        start,
        description="Telephony events in (`POST /v1/events` and the vendor adapters), "
        "validated, deduplicated and written to Kafka. Bearer token of the sending system.",
    )
    app.include_router(router)
    return app
