"""Redis plumbing: the client and the key names every service agrees on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from shared.settings import CommonSettings
from shared.tasks import within

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)


def new_redis(settings: CommonSettings) -> aioredis.Redis:
    """An asyncio Redis client with short timeouts, so an outage is seen quickly.

    The pool blocks (up to 5 s) when all its connections are in use, rather than failing:
    a reconnect storm of board clients waits its turn instead of getting errors.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=5.0,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        decode_responses=False,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: closed with it


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
    def staffing(self) -> str:
        """The dispatcher's staffing per queue (needed, have, lent, borrowed; contract 7),
        written by the leader each tick, read into the snapshots by the monitor."""
        return f"{self.prefix}staffing"

    @property
    def agent_lists(self) -> str:
        """Each queue's agents list (`shared.core.roster.QueueAgents.as_json`), written by
        the monitor that owns the queue when the list or its overdue agents change."""
        return f"{self.prefix}agents:queues"

    @property
    def agent_counts(self) -> str:
        """Per queue: agents staffed and overdue, in all and by site (`counts_json`),
        written with the queue's agents list."""
        return f"{self.prefix}agents:counts"

    @property
    def centre_parts(self) -> str:
        """Each monitor's part of the centre totals, by instance (`shared.core.centre`)."""
        return f"{self.prefix}centre:parts"

    def intervals(self, queue_id: str, site: str | None = None) -> str:
        """A queue's closed intervals (contract 4), or those of one site of it: JSON
        members of a sorted set scored by the interval's start (epoch seconds)."""
        if site is None:
            return f"{self.prefix}intervals:queue:{queue_id}"
        return f"{self.prefix}intervals:site:{len(site)}:{site}:{queue_id}"

    @property
    def intervals_closed(self) -> str:
        """Per queue: the end (epoch seconds) of the last interval the monitor closed."""
        return f"{self.prefix}intervals:closed"

    @property
    def audit(self) -> str:
        """Every change made through the API, newest first (contract 7)."""
        return f"{self.prefix}audit"

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

    @property
    def incidents(self) -> str:
        """Incidents by id (contract 7): the notifier writes them, the API reads them."""
        return f"{self.prefix}incidents"

    @property
    def notify_outbox(self) -> str:
        """Deliveries waiting for their next attempt, scored by when it is due."""
        return f"{self.prefix}notify:outbox"

    @property
    def notify_disabled(self) -> str:
        """Endpoints that answered 410 Gone: nothing more is sent to them."""
        return f"{self.prefix}notify:disabled"

    @property
    def notify_inbox(self) -> str:
        """The demo lead's received pushes (newest first), shown by the inbox page."""
        return f"{self.prefix}notify:inbox"

    @property
    def link_key(self) -> str:
        """The key that signs one-tap links (made once by whichever service needs it first)."""
        return f"{self.prefix}notify:link_key"


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
        return bool(await within(client.ping(), timeout_s))
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
