"""A durable outbox in Redis: every push is written before it is sent and retried on the
Standard Webhooks schedule until delivered or given up, across restarts.

Each delivery is a JSON record in the deliveries hash (what `GET /v1/notifications`
lists) and, while an attempt is due, a member of the outbox sorted set scored by when.
An attempt first removes its member (only one instance wins), then writes the outcome
and the next due time. A record left `pending` outside the set (a crash between the
two) is put back at start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.exceptions import RedisError

from services.notify.channels import Request
from shared.kafka import dumps
from shared.store import Keys, text
from shared.tasks import cancel_all, stop_if_cancelled, supervised
from shared.timefmt import iso_ms

log = logging.getLogger(__name__)

# Standard Webhooks: attempt n + 1 waits SCHEDULE_S[n] after attempt n fails
# (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)
SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
Status = Literal["delivered", "retry", "failed", "disabled"]
# Any: a delivery record as JSON; builds the request, or None (with why) when it cannot be
Builder = Callable[[dict[str, Any]], Awaitable[tuple[Request | None, str, str]]]


@dataclass(frozen=True)
class Outcome:
    status: Status
    error: str | None = None
    retry_after_s: float | None = None


def classify(status_code: int | None, retry_after: str | None, error: str | None) -> Outcome:
    """What an HTTP answer (or a transport error, `status_code` None) means for the delivery."""
    if status_code is None:
        return Outcome("retry", error)
    if 200 <= status_code < 300:
        return Outcome("delivered")
    what = f"HTTP {status_code}"
    if status_code == 410:
        return Outcome("disabled", f"{what}: endpoint gone, disabled")
    if status_code == 429:
        wait = float(retry_after) if retry_after and retry_after.strip().isdigit() else None
        return Outcome("retry", what, wait)
    if 400 <= status_code < 500 and status_code != 408:
        return Outcome("failed", f"{what}: refused, not retried")
    return Outcome("retry", what)


def next_due(attempts: int, now: float, scale: float, outcome: Outcome) -> float | None:
    """When attempt `attempts + 1` is due, or None once the schedule is spent."""
    if attempts >= len(SCHEDULE_S):
        return None
    delay = SCHEDULE_S[attempts] * scale
    if outcome.retry_after_s is not None:  # 429: the receiver said when
        delay = max(delay, outcome.retry_after_s)
    return now + delay


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "floorwatch_notify_deliveries",
            "delivery attempts by channel and outcome (delivered, retry, failed, disabled)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.due = Gauge(
            "floorwatch_notify_outbox", "deliveries waiting for an attempt", registry=registry
        )


@dataclass
class Outbox:
    redis: aioredis.Redis
    keys: Keys
    build: Builder
    metrics: OutboxMetrics
    timeout_s: float = 5.0
    scale: float = 1.0  # multiplies the schedule (tests run it in seconds)
    poll_s: float = 0.05
    parallel: int = 16
    clock: Callable[[], float] = time.time
    http: httpx.AsyncClient | None = None
    recover_every_s: float = 30.0
    inflight: dict[asyncio.Task[None], str] = field(default_factory=dict)

    async def start(self) -> None:
        self.http = httpx.AsyncClient(timeout=self.timeout_s)
        await self.recover()

    async def recover(self) -> None:
        """Put back every pending delivery that is neither due nor being attempted (an
        attempt cut short by a crash or by Redis going away mid-way)."""
        members: Any = await self.redis.zrange(self.keys.notify_outbox, 0, -1)  # Any: bytes
        due = {text(m) for m in members} | set(self.inflight.values())
        now = self.clock()
        for delivery_id, raw in (await self.redis.hgetall(self.keys.notify_deliveries)).items():
            name = text(delivery_id)
            if orjson.loads(raw).get("status") == "pending" and name not in due:
                await self.redis.zadd(self.keys.notify_outbox, {name: now}, nx=True)

    async def stop(self) -> None:
        await cancel_all(list(self.inflight))
        if self.http is not None:
            await self.http.aclose()

    def add(self, pipe: Any, delivery_id: str, record: dict[str, Any], now: float) -> None:
        """Queue one delivery in `pipe` (written with the state that made it)."""
        pipe.hsetnx(self.keys.notify_deliveries, delivery_id, dumps(record))
        pipe.zadd(self.keys.notify_outbox, {delivery_id: now}, nx=True)

    async def run(self) -> None:
        """Attempt every due delivery, a few at a time, until cancelled; a Redis outage
        only pauses it."""
        recovered = self.clock()
        while True:
            stop_if_cancelled()  # one a client swallowed last round (its error is caught)
            try:
                await self.poll()
                if self.clock() - recovered >= self.recover_every_s:
                    recovered = self.clock()
                    await self.recover()
            except (RedisError, OSError):
                log.warning("outbox paused: Redis unreachable", exc_info=True)
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.poll_s)

    async def poll(self) -> None:
        """Start an attempt for each delivery due now (as many as there is room for)."""
        room = self.parallel - len(self.inflight)
        due: Any = []  # Any: redis-py types members loosely; bytes here
        if room > 0:
            due = await self.redis.zrangebyscore(
                self.keys.notify_outbox, "-inf", self.clock(), start=0, num=room
            )
        for member in due:
            delivery_id = text(member)
            if await self.redis.zrem(self.keys.notify_outbox, delivery_id) != 1:
                continue  # another instance took it
            task = supervised(f"deliver {delivery_id}", self.attempt(delivery_id))
            self.inflight[task] = delivery_id
            task.add_done_callback(lambda t: self.inflight.pop(t, None))
        self.metrics.due.set(await self.redis.zcard(self.keys.notify_outbox))

    async def attempt(self, delivery_id: str) -> None:
        """One attempt of one delivery; its outcome and next due time are written back."""
        raw = await self.redis.hget(self.keys.notify_deliveries, delivery_id)
        if raw is None:
            return
        record: dict[str, Any] = orjson.loads(raw)  # Any: JSON
        if record.get("status") != "pending":
            return
        request, channel, why = await self.build(record)
        record["channel"] = channel
        now = self.clock()
        if request is None:
            outcome = Outcome("failed", why)
        elif await self.redis.sismember(self.keys.notify_disabled, request.url):
            outcome = Outcome("disabled", "endpoint disabled after a 410")
        else:
            outcome = await self._post(request)
            record["attempts"] = int(record.get("attempts", 0)) + 1
            now = self.clock()
        record["last_error"] = outcome.error
        record["last_attempt_at"] = iso_ms(now)
        due = None
        if outcome.status == "delivered":
            record.update(status="delivered", delivered_at=iso_ms(now), next_at=None)
        elif outcome.status == "retry":
            due = next_due(int(record["attempts"]), now, self.scale, outcome)
            record.update(status="pending" if due else "failed", next_at=due and iso_ms(due))
        else:
            record.update(status=outcome.status, next_at=None)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.notify_deliveries, delivery_id, dumps(record))
        if due is not None:
            pipe.zadd(self.keys.notify_outbox, {delivery_id: due})
        if outcome.status == "disabled" and request is not None:
            pipe.sadd(self.keys.notify_disabled, request.url)
        await pipe.execute()
        self.metrics.outcomes.labels(channel, outcome.status).inc()
        if record["status"] in ("failed", "disabled"):
            log.error(
                "delivery given up",
                extra={"delivery_id": delivery_id, "channel": channel, "error": outcome.error},
            )

    async def _post(self, request: Request) -> Outcome:
        assert self.http is not None  # noqa: S101  # started first
        try:
            response = await self.http.post(
                request.url, content=request.body, headers=request.headers
            )
        except httpx.HTTPError as exc:
            return classify(None, None, f"{type(exc).__name__}: {exc}"[:500])
        return classify(response.status_code, response.headers.get("retry-after"), None)
