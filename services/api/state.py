"""What the API's routes share: Redis, the producer, tokens, the board's fan-out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from services.api.auth import Principal, Tokens
from services.api.fanout import Fanout
from services.api.settings import ApiSettings
from shared.errors import NotFound, TooMany
from shared.kafka import dumps
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings
from shared.store import Keys
from shared.timefmt import iso_ms


@dataclass
class ApiState:
    settings: ApiSettings
    redis: aioredis.Redis
    tokens: Tokens
    keys: Keys
    fanout: Fanout
    producer: AIOKafkaProducer | None = None
    clock: Callable[[], float] = field(default=time.time)
    # per API process: N instances behind a balancer allow N times the rate, at most
    limiter: MovingWindowRateLimiter = field(
        default_factory=lambda: MovingWindowRateLimiter(MemoryStorage())
    )

    async def admit(self, principal: Principal) -> None:
        """Count one request against the token's rate limit; 429 beyond it."""
        rate = self.settings.api_rate_per_s
        limit = RateLimitItemPerSecond(max(1, round(rate * 10)), 10)  # bursts of 10x
        if not await self.limiter.hit(limit, principal.name):
            stats = await self.limiter.get_window_stats(limit, principal.name)
            wait = max(1.0, stats.reset_time - time.time())
            raise TooMany(f"rate limit of {rate:g} requests/s for this token exceeded", wait)

    async def audit(
        self, who: Principal, what: str, target: str, before: object, after: object
    ) -> None:
        """Keep one change in the audit log (`GET /v1/audit`): who, what, when, before, after."""
        entry = {
            "at": iso_ms(self.clock()),
            "who": who.name,
            "role": who.role,
            "what": what,
            "target": target,
            "before": before,
            "after": after,
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.keys.audit, dumps(entry))
        pipe.ltrim(self.keys.audit, 0, self.settings.audit_keep - 1)
        await pipe.execute()

    async def audit_log(self, limit: int) -> list[dict[str, Any]]:
        return [orjson.loads(v) for v in await self.redis.lrange(self.keys.audit, 0, limit - 1)]

    def visible(self, who: Principal, snapshot: dict[str, Any]) -> bool:
        """Whether a scoped token sees this queue (by its id, or the sites it serves)."""
        if not who.scoped:
            return True
        return who.sees(str(snapshot.get("queue_id")), snapshot.get("by_site") or {})

    async def check_queue(self, who: Principal, queue_id: str) -> None:
        """404 for a queue outside the token's scope, as if it did not exist."""
        if not who.scoped:
            return
        raw = await self.redis.hget(self.keys.snapshots, queue_id)
        snapshot = orjson.loads(raw) if raw else {"queue_id": queue_id}
        if not self.visible(who, snapshot):
            raise NotFound(f"queue {queue_id!r} not found")

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
