"""Redis plumbing: the client and the key names every service agrees on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from shared.settings import CommonSettings

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)


def new_redis(settings: CommonSettings) -> aioredis.Redis:
    """An asyncio Redis client with short timeouts, so an outage is seen quickly."""
    return aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=False
    )


class Keys:
    """Redis key names, all under the topic prefix so several stacks can share a server."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def dedup(self, source: str, event_id: str) -> str:
        return f"{self.prefix}dedup:{source}:{event_id}"

    def snapshot(self, queue_id: str) -> str:
        return f"{self.prefix}snapshot:{queue_id}"

    @property
    def snapshots(self) -> str:
        return f"{self.prefix}snapshots"

    @property
    def snapshots_as_of(self) -> str:
        return f"{self.prefix}snapshots:as_of"

    @property
    def alert_states(self) -> str:
        return f"{self.prefix}alert_states"

    @property
    def queue_settings(self) -> str:
        return f"{self.prefix}settings:queues"

    @property
    def forecasts(self) -> str:
        return f"{self.prefix}forecasts"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def notify_config(self) -> str:
        """The on-call configuration (the API writes it, the notifier reads it)."""
        return f"{self.prefix}notify:config"

    @property
    def notify_state(self) -> str:
        return f"{self.prefix}notify:state"

    @property
    def notify_deliveries(self) -> str:
        return f"{self.prefix}notify:deliveries"

    @property
    def actions(self) -> str:
        return f"{self.prefix}actions"


class JsonHash(Generic[Model]):
    """A Redis hash of JSON documents (settings, forecasts) read every tick, each
    document parsed only when it changed; an invalid one is logged and left out."""

    def __init__(self, model: type[Model], key: str) -> None:
        self.model = model
        self.key = key
        self._parsed: dict[str, tuple[bytes, Model]] = {}

    async def load(self, client: aioredis.Redis) -> dict[str, Model]:
        parsed: dict[str, tuple[bytes, Model]] = {}
        for field, raw in (await client.hgetall(self.key)).items():
            name, data = text(field), raw if isinstance(raw, bytes) else raw.encode()
            cached = self._parsed.get(name)
            if cached is not None and cached[0] == data:
                parsed[name] = cached
                continue
            try:
                parsed[name] = (data, self.model.model_validate_json(data))
            except ValidationError:
                log.warning("invalid document in redis", extra={"key": self.key, "field": name})
        self._parsed = parsed
        return {name: value for name, (_, value) in parsed.items()}


def text(value: bytes | str) -> str:
    """A Redis key or value as text, whether the client decodes or not."""
    return value.decode() if isinstance(value, bytes) else value


async def redis_reachable(client: aioredis.Redis, timeout_s: float = 2.0) -> bool:
    """True when Redis answers PING within the bound."""
    try:
        return bool(await asyncio.wait_for(client.ping(), timeout_s))
    except (TimeoutError, RedisError, OSError):
        return False


async def atomic_update(
    client: aioredis.Redis,
    key: str,
    field: str,
    change: Callable[[bytes | None], bytes | None],
) -> bytes | None:
    """Read, change and write one hash field with no lost update (WATCH/MULTI).

    `change` gets the stored value (None when absent) and returns the new one, or None
    to leave it as it is; it may run more than once when another writer got in first.
    """

    async def attempt(pipe: Pipeline) -> bytes | None:
        stored = await pipe.hget(key, field)
        current = stored.encode() if isinstance(stored, str) else stored
        new = change(current)
        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        if new is not None:
            pipe.hset(key, field, new)
        return new if new is not None else current

    result: bytes | None = await client.transaction(attempt, key, value_from_callable=True)
    return result
