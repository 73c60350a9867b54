"""The ingest service: telephony events over HTTP into Kafka (contract 2), composition root."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.exceptions import RedisError

from services.ingest.adapters import asterisk_lines, taskrouter_event, twilio_signature
from services.ingest.batch import Batch, RequestError, split_body, split_lines, validate_items
from services.ingest.settings import IngestSettings
from shared.events import encode_event, event_key, is_agent_event
from shared.http import JsonResponse, bearer_token, health_router, json_response, stack_ready
from shared.kafka import BrokerUnavailable, ensure_topics, new_producer, send_all
from shared.store import Keys, new_redis

log = logging.getLogger(__name__)


class IngestMetrics:
    """Prometheus series of one ingest process (one registry per app, for tests)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "floorwatch_ingest_events",
            "events by source, type and outcome",
            ["source", "type", "outcome"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "floorwatch_ingest_batch_size",
            "events per request",
            buckets=(1, 10, 50, 100, 250, 500, 1000),
            registry=registry,
        )
        self.produce_seconds = Histogram(
            "floorwatch_ingest_produce_seconds",
            "time from the first send to Kafka's last ack",
            registry=registry,
        )


@dataclass
class Ingest:
    """What the routes need: settings, the Kafka producer and Redis."""

    settings: IngestSettings
    redis: aioredis.Redis
    metrics: IngestMetrics
    keys: Keys
    producer: AIOKafkaProducer | None = None
    lock: asyncio.Lock | None = None

    async def get_producer(self) -> AIOKafkaProducer:
        """The producer, started on first use and after a broker outage."""
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:
            if self.producer is None:
                bound = self.settings.ingest_produce_timeout_s
                producer = new_producer(self.settings, bound)
                try:
                    # a broker that came back may have lost its topics: create them first
                    await asyncio.wait_for(ensure_topics(self.settings), bound)
                    await asyncio.wait_for(producer.start(), bound)
                except Exception as exc:  # noqa: BLE001  # any start failure means "unavailable"
                    await _close_quietly(producer)
                    raise BrokerUnavailable(f"broker unreachable: {exc!r}") from exc
                self.producer = producer
            return self.producer

    async def drop_producer(self) -> None:
        """Discard the producer after an outage, so unacknowledged records are not resent."""
        producer, self.producer = self.producer, None
        if producer is not None:
            await _close_quietly(producer)

    async def claim(self, batch: Batch) -> tuple[set[int], list[str]]:
        """Mark the batch's ids as seen (SET NX, one round trip): the indexes seen before,
        and the keys this call claimed, to give back with `release` if Kafka says no.
        Empty when Redis is down: duplicates are then left to the monitor's dedup."""
        if not batch.events:
            return set(), []
        keys = [self.keys.dedup(e.source or "", e.event_id) for _, e in batch.events]
        ttl = self.settings.ingest_dedup_ttl_s
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, b"1", nx=True, ex=ttl)
            claimed = await pipe.execute()
        except (RedisError, OSError):
            log.warning("redis unreachable: duplicates are left to the monitor's dedup")
            return set(), []
        seen = {index for (index, _), new in zip(batch.events, claimed, strict=True) if not new}
        mine = [key for key, new in zip(keys, claimed, strict=True) if new]
        return seen, mine

    async def release(self, keys: list[str]) -> None:
        """Forget ids claimed for events Kafka did not acknowledge: a retry is not a repeat."""
        if not keys:
            return
        try:
            await self.redis.delete(*keys)
        except (RedisError, OSError):
            log.warning("redis unreachable: a retried batch may be reported as duplicates")


async def _close_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), 2.0)
    except Exception:  # noqa: BLE001  # a dead broker makes stop() fail in many ways
        log.warning("producer did not stop cleanly", exc_info=True)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as more than `limit` bytes have been read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"body of {declared} bytes; at most {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    """Build the ingest app; settings are read here, never at import."""
    settings = settings or IngestSettings()
    tokens = settings.tokens()
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    holder: dict[str, Ingest] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        client = new_redis(settings)
        ingest = Ingest(settings, client, metrics, Keys(settings.topic_prefix))
        holder["ingest"] = ingest
        try:
            await ingest.get_producer()
        except BrokerUnavailable:
            log.warning("broker unreachable at start; retried on the first request")
        try:
            yield
        finally:
            await ingest.drop_producer()
            await client.aclose()

    app = FastAPI(title="floorwatch ingest", version="1", lifespan=lifespan)

    def source_of(request: Request) -> str | None:
        token = bearer_token(request)
        if token is None:
            return None
        for secret, source in tokens.items():
            if hmac.compare_digest(secret.encode(), token.encode()):
                return source
        return None

    async def ready() -> dict[str, bool]:
        ingest = holder["ingest"]
        return await stack_ready(settings, ingest.redis)

    app.include_router(health_router(registry, ready))

    async def sender_and_body(request: Request) -> tuple[str, bytes]:
        """The sender named by the bearer token, and the body (401, 413 as RequestError)."""
        source = source_of(request)
        if source is None:
            raise RequestError(401, "missing or wrong bearer token")
        return source, await read_body(request, settings.ingest_max_body_bytes)

    @app.post("/v1/events", status_code=202)
    async def post_events(request: Request) -> JsonResponse:
        """Accept one event or an array of at most 1000; 202 once Kafka has them all."""
        try:
            source, body = await sender_and_body(request)
            items = split_body(body, settings.ingest_max_events)
        except RequestError as exc:
            return json_response({"error": exc.message}, exc.status)
        return await accept(holder["ingest"], items, source)

    @app.post("/v1/adapters/asterisk/queue_log", status_code=202)
    async def post_queue_log(request: Request) -> JsonResponse:
        """Lines of Asterisk's queue_log (text); same answers as `/v1/events`, by line."""
        try:
            source, body = await sender_and_body(request)
            lines = split_lines(body, settings.ingest_max_events)
        except RequestError as exc:
            return json_response({"error": exc.message}, exc.status)
        return await accept(holder["ingest"], list(asterisk_lines(lines)), source)

    @app.post("/v1/adapters/twilio/taskrouter", status_code=202)
    async def post_taskrouter(request: Request) -> JsonResponse:
        """A TaskRouter event callback (form fields), checked with X-Twilio-Signature."""
        if not settings.twilio_auth_token:
            return json_response({"error": "the Twilio adapter is off (no auth token set)"}, 404)
        try:
            body = await read_body(request, settings.ingest_max_body_bytes)
        except RequestError as exc:
            return json_response({"error": exc.message}, exc.status)
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        url = settings.twilio_callback_url or str(request.url)
        expected = twilio_signature(settings.twilio_auth_token, url, params)
        given = request.headers.get("x-twilio-signature", "")
        if not hmac.compare_digest(expected, given):
            return json_response({"error": "missing or wrong X-Twilio-Signature"}, 401)
        return await accept(holder["ingest"], [taskrouter_event(params)], "twilio")

    return app


async def accept(ingest: Ingest, items: list[object], source: str) -> JsonResponse:
    """Validate, drop duplicates, produce, and answer with the contract's body."""
    settings, metrics = ingest.settings, ingest.metrics
    metrics.batch_size.observe(len(items))
    batch = validate_items(items, source)
    known, claimed = await ingest.claim(batch)
    fresh = [(i, e) for i, e in batch.events if i not in known]
    duplicates = len(known) + batch.repeats
    if fresh:
        topic_events, topic_agents = settings.topic("events"), settings.topic("agents")
        records = [
            (
                topic_agents if is_agent_event(e) else topic_events,
                event_key(e).encode(),
                encode_event(e),
            )
            for _, e in fresh
        ]
        started = time.perf_counter()
        try:
            producer = await ingest.get_producer()
            await send_all(producer, records, settings.ingest_produce_timeout_s)
        except BrokerUnavailable as exc:
            await ingest.release(claimed)
            await ingest.drop_producer()
            log.warning("broker unavailable", extra={"source": source, "events": len(records)})
            return json_response(
                {"error": f"broker unavailable, nothing acknowledged: {exc}"},
                503,
                headers={"Retry-After": str(settings.ingest_retry_after_s)},
            )
        metrics.produce_seconds.observe(time.perf_counter() - started)
    for _, e in fresh:
        metrics.events.labels(source, e.type, "accepted").inc()
    for i, e in batch.events:
        if i in known:
            metrics.events.labels(source, e.type, "duplicate").inc()
    if batch.repeats:
        metrics.events.labels(source, "repeat", "duplicate").inc(batch.repeats)
    if batch.rejected:
        metrics.events.labels(source, "invalid", "rejected").inc(len(batch.rejected))
    body = {
        "accepted": len(fresh),
        "duplicates": duplicates,
        "rejected": [r.as_json() for r in batch.rejected],
    }
    # 422 only when something was wrong and nothing got through; an empty batch is no error
    status = 422 if batch.rejected and not fresh and not duplicates else 202
    return json_response(body, status)
