"""What the API's routes share: Redis, the producer, tokens, the board's fan-out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from services.api.auth import Tokens
from services.api.fanout import Fanout
from services.api.settings import ApiSettings
from shared.kafka import dumps
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings
from shared.store import Keys


@dataclass
class ApiState:
    settings: ApiSettings
    redis: aioredis.Redis
    tokens: Tokens
    keys: Keys
    fanout: Fanout
    producer: AIOKafkaProducer | None = None
    clock: Callable[[], float] = field(default=time.time)

    async def snapshots(self) -> list[dict[str, Any]]:  # Any: snapshot JSON
        raw = await self.redis.hgetall(self.keys.snapshots)
        return [orjson.loads(raw[k]) for k in sorted(raw)]

    async def alerts(self, active_only: bool) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.alerts)
        records = [orjson.loads(v) for v in raw.values()]
        if active_only:
            records = [r for r in records if r["state"] == "active"]
        return sorted(records, key=lambda r: str(r["raised_at"]), reverse=True)

    async def actions(self) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(self.keys.actions)
        records = [orjson.loads(v) for v in raw.values()]
        return sorted(records, key=lambda r: str(r.get("created_at", "")), reverse=True)

    async def queue_settings(self, queue_id: str) -> QueueSettings:
        raw = await self.redis.hget(self.keys.queue_settings, queue_id)
        if raw is None:
            return DEFAULT_QUEUE_SETTINGS.model_copy(update={"mode": self.settings.dispatch_mode})
        return QueueSettings.model_validate_json(raw)

    async def publish(self, topic: str, key: str, body: dict[str, Any]) -> None:
        if self.producer is None:
            raise RuntimeError("producer not started")
        await self.producer.send_and_wait(self.settings.topic(topic), dumps(body), key=key.encode())
