"""The notifier's I/O shell: alerts from Kafka, state and delivery log in Redis, HTTP out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field, ValidationError

from services.notify.channels import build
from services.notify.incidents import Notifier, Push
from shared.http import health_router, stack_ready
from shared.kafka import dumps, ensure_topics, new_consumer
from shared.notify_config import NotifyConfig
from shared.settings import CommonSettings
from shared.store import Keys, new_redis
from shared.tasks import cancel_all, supervised
from shared.timefmt import iso_ms, parse_ts

log = logging.getLogger(__name__)


class NotifySettings(CommonSettings):
    """`FLOORWATCH_NOTIFY_*` and the common settings."""

    notify_host: str = "127.0.0.1"
    notify_port: int = 8005
    notify_group_id: str = "floorwatch-notify"
    notify_timeout_s: float = Field(5.0, gt=0, description="per HTTP attempt")
    notify_attempts: int = Field(4, ge=1, le=10)
    notify_backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles")
    notify_tick_s: float = Field(0.5, gt=0)
    notify_max_age_s: float = Field(600.0, gt=0, description="older alert changes are not pushed")


@dataclass
class NotifyShell:
    settings: NotifySettings
    redis: aioredis.Redis
    registry: CollectorRegistry
    notifier: Notifier = field(default_factory=Notifier)
    http: httpx.AsyncClient | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        keys = Keys(self.settings.topic_prefix)
        self.config_key, self.state_key = keys.notify_config, keys.notify_state
        self.log_key = keys.notify_deliveries
        self.sent = Counter(
            "floorwatch_notify_deliveries",
            "deliveries by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )

    async def config(self) -> NotifyConfig:
        raw = await self.redis.get(self.config_key)
        if raw is None:
            return NotifyConfig()
        try:
            return NotifyConfig.model_validate_json(raw)
        except ValidationError:
            log.warning("invalid notify config in redis; using the defaults")
            return NotifyConfig()

    async def start(self) -> None:
        raw = await self.redis.get(self.state_key)
        if raw is not None:
            self.notifier = Notifier.from_json(orjson.loads(raw))
        self.http = httpx.AsyncClient(timeout=self.settings.notify_timeout_s)
        for value in (await self.redis.hgetall(self.log_key)).values():
            record = orjson.loads(value)
            if record["status"] == "pending":  # cut short by a restart: finish them
                self.deliver(Push(**record["push"]))

    async def stop(self) -> None:
        await cancel_all(list(self.tasks))
        if self.http is not None:
            await self.http.aclose()

    async def record(self, pushes: list[Push]) -> None:
        """The new state and the pending deliveries, written together before anything is sent."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.state_key, dumps(self.notifier.as_json()))
        for push in pushes:
            record = {
                "push": push.as_json(),
                "status": "pending",
                "attempts": 0,
                "created_at": iso_ms(push.at),
                "event": push.event,
                "lead": push.lead,
                "incident_id": push.incident_id,
            }
            pipe.hsetnx(self.log_key, push.delivery_id, dumps(record))
        await pipe.execute()
        for push in pushes:
            self.deliver(push)

    def deliver(self, push: Push) -> None:
        task = supervised(f"deliver {push.delivery_id}", self._deliver(push))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, push: Push) -> None:
        config = await self.config()
        lead = config.lead(push.lead)
        incident = self.notifier.incidents.get(push.incident_id)
        raw = await self.redis.hget(self.log_key, push.delivery_id)
        record: dict[str, Any] = (
            orjson.loads(raw) if raw else {"push": push.as_json(), "attempts": 0}
        )
        if record.get("status") == "delivered" or lead is None or incident is None:
            return
        channel = lead.channels[push.channel]
        record["channel"] = channel.type
        assert self.http is not None  # noqa: S101  # started first
        for attempt in range(record["attempts"], self.settings.notify_attempts):
            request = build(push, incident, channel, config, int(time.time()))
            record["attempts"] = attempt + 1
            try:
                response = await self.http.post(
                    request.url, content=request.body, headers=request.headers
                )
                ok, error = response.is_success, f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
            if ok:
                record.update(status="delivered", delivered_at=iso_ms(time.time()), last_error=None)
                await self.redis.hset(self.log_key, push.delivery_id, dumps(record))
                self.sent.labels(channel.type, "delivered").inc()
                return
            record["last_error"] = error
            await self.redis.hset(self.log_key, push.delivery_id, dumps(record))
            await asyncio.sleep(self.settings.notify_backoff_s * 2**attempt)
        record["status"] = "failed"
        await self.redis.hset(self.log_key, push.delivery_id, dumps(record))
        self.sent.labels(channel.type, "failed").inc()
        log.error(
            "delivery failed",
            extra={"delivery_id": push.delivery_id, "error": record.get("last_error")},
        )

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for rec in records:
                    change = orjson.loads(rec.value)
                    if (
                        time.time() - parse_ts(str(change.get("at")))
                        > self.settings.notify_max_age_s
                    ):
                        continue  # history (a new consumer group starts at the beginning)
                    async with self.lock:
                        pushes = self.notifier.on_change(change, await self.config(), time.time())
                        await self.record(pushes)
            if batches:
                await consumer.commit()

    async def tick_forever(self) -> None:
        while True:
            async with self.lock:
                pushes = self.notifier.on_tick(await self.config(), time.time())
                if pushes:
                    await self.record(pushes)
            await asyncio.sleep(self.settings.notify_tick_s)


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    registry = CollectorRegistry()
    holder: dict[str, NotifyShell] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = new_redis(settings)
        shell = NotifyShell(settings, client, registry)
        holder["shell"] = shell
        await ensure_topics(settings)
        await shell.start()
        consumer = new_consumer(
            settings,
            settings.topic("alerts"),
            group_id=settings.notify_group_id,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        tasks = [
            supervised("notify-follow", shell.follow(consumer)),
            supervised("notify-tick", shell.tick_forever()),
        ]
        try:
            yield
        finally:
            await cancel_all(tasks)
            await consumer.stop()
            await shell.stop()
            await client.aclose()

    app = FastAPI(title="floorwatch notifier", version="1", lifespan=lifespan)

    async def ready() -> dict[str, bool]:
        shell = holder["shell"]
        return await stack_ready(settings, shell.redis)

    app.include_router(health_router(registry, ready))
    return app
