"""Ingest's I/O shell (contract 2): credentials, admission, dedup, the queue cap, Kafka.

A request is admitted before any work is done (a bound on events in flight, then the
token's rate limit), validated by the pure `batch`, stripped of ids Kafka already
acknowledged, checked against the cap on distinct queues, produced, and only then are
its ids remembered as seen: a request that fails at any point leaves nothing claimed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import parse_qsl

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, Request
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic_core import PydanticSerializationError
from redis.exceptions import RedisError

from services.ingest.adapters import AdapterMemory
from services.ingest.asterisk import decode_body, parse_lines
from services.ingest.batch import (
    Batch,
    Bounds,
    Rejection,
    is_flat,
    queues_named,
    split_body,
    split_lines,
    validate_items,
)
from services.ingest.connect import SECRET_HEADER, connect_items, secret_matches
from services.ingest.produce import send_batched
from services.ingest.settings import IngestSettings
from services.ingest.topics import TopicGuard
from services.ingest.twilio import signature, taskrouter_items
from shared.errors import NotFound, TooLarge, TooMany, Unauthorized, Unavailable
from shared.events import AgentEvent, CallEvent, event_key, is_agent_event
from shared.http import JsonResponse, bearer_token, json_response
from shared.kafka import BrokerUnavailable, ensure_topics, new_producer
from shared.store import Keys
from shared.tasks import within

log = logging.getLogger(__name__)

Indexed = tuple[int, CallEvent | AgentEvent]

# contract 1: a new queue id is known once the set has room; atomic, so the cap holds
# under concurrent requests. ARGV[1] the cap, ARGV[2..] queue ids; 1 known, 0 refused.
ADMIT_QUEUES = """
local count = redis.call('SCARD', KEYS[1])
local cap = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
    out[#out + 1] = 1
  elseif count < cap then
    redis.call('SADD', KEYS[1], ARGV[i])
    count = count + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# ids Kafka acknowledged, remembered in one command (500 pipelined SETs cost ingest more
# CPU to encode and parse than validating the events); ARGV[1] the TTL in seconds, ARGV[2]
# the keys' common prefix, ARGV[3] the rest of each key, one a line: one argument to
# encode rather than one a key (a source and an event id never hold a line break)
REMEMBER = """
local n = 0
for rest in string.gmatch(ARGV[3], '[^\\n]+') do
  redis.call('SET', ARGV[2] .. rest, '1', 'EX', ARGV[1])
  n = n + 1
end
return n
"""

# which of these ids Kafka already acknowledged: ARGV[1] the keys' common prefix, ARGV[2]
# the rest of each, one a line; the 0-based positions of those found (mostly none)
SEEN = """
local found = {}
local i = 0
for rest in string.gmatch(ARGV[2], '[^\\n]+') do
  if redis.call('EXISTS', ARGV[1] .. rest) == 1 then
    found[#found + 1] = i
  end
  i = i + 1
end
return found
"""


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
        self.refused = Counter(
            "floorwatch_ingest_refused_requests",
            "requests refused before any work, by reason",
            ["reason"],
            registry=registry,
        )


class Credentials:
    """Bearer secrets held as SHA-256 digests, compared in constant time, never logged."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self._digests = [(self._digest(secret), source) for secret, source in secrets.items()]

    @staticmethod
    def _digest(secret: str) -> bytes:
        return hashlib.sha256(secret.encode()).digest()

    def source_of(self, token: str | None) -> str:
        """The source a token belongs to; every digest is compared, whichever matches."""
        given = self._digest(token or "")
        found = None
        for digest, source in self._digests:
            if hmac.compare_digest(digest, given) and token:
                found = source
        if found is None:
            raise Unauthorized("missing or wrong bearer token")
        return found


@dataclass
class InFlight:
    """A bound on events being worked on at once, so that those admitted finish well
    within the produce timeout: a request waits at most `wait_s` for room (not a
    queue that grows), then is refused (429) with nothing done."""

    limit: int
    wait_s: float
    events: int = 0
    freed: asyncio.Event = field(default_factory=asyncio.Event)

    def has_room(self, n: int) -> bool:
        # an idle process always takes one request, whatever its size
        return not self.events or self.events + n <= self.limit

    async def room_for(self, n: int) -> bool:
        """True once `n` events fit (take them at once, before any other await)."""
        deadline = time.monotonic() + self.wait_s
        while not self.has_room(n):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.freed.clear()
            try:
                await within(self.freed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    @contextmanager
    def hold(self, n: int) -> Iterator[None]:
        self.events += n
        try:
            yield
        finally:
            self.events -= n
            self.freed.set()


class RateLimits:
    """Each token's rate (contract 2): `rate_per_s` events a second on average over any
    `burst` seconds, so up to `burst` seconds' worth may come at once.

    `limits`' moving window in Redis (one script call a request, on ingest's own pool):
    every ingest process behind one address shares each token's window, and its cost
    is one list push per event with no periodic sweep. (The in-process moving window
    copies every token's list on a timer thread up to a hundred times a second, which
    at thousands of events a second over many tokens costs more than the work itself.)
    While Redis is unreachable the limit is not enforced (and a warning logged): ingest
    keeps taking events through an outage, as it does for duplicates."""

    def __init__(
        self, client: aioredis.Redis, url: str, prefix: str, rate: int, burst: int
    ) -> None:
        self.item = RateLimitItemPerSecond(rate * burst, burst)
        storage = RedisStorage(
            "async+" + url,
            implementation="redispy",
            key_prefix=f"{prefix}ratelimit",
            wrap_exceptions=True,
            # limits types its options narrowly; redis-py's client takes a pool here
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
        )
        self.limiter = MovingWindowRateLimiter(storage)

    async def take(self, source: str, n: int) -> float | None:
        """Count `n` events against `source`; None, or the seconds until there is room."""
        try:
            if not n or await self.limiter.hit(self.item, source, cost=n):
                return None
            reset, _ = await self.limiter.get_window_stats(self.item, source)
        except StorageError:
            log.warning("redis unreachable: rate limits are not enforced")
            return None
        return max(1.0, math.ceil(reset - time.time()))


@dataclass
class IngestService:
    """What the routes need: settings, the Kafka producer, Redis, admission and metrics."""

    settings: IngestSettings
    redis: aioredis.Redis
    metrics: IngestMetrics
    clock: Callable[[], float] = time.time
    producer: AIOKafkaProducer | None = None
    keys: Keys = field(init=False)
    credentials: Credentials = field(init=False)
    in_flight: InFlight = field(init=False)
    rates: RateLimits = field(init=False)
    known_queues: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    topics: TopicGuard = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.topics = TopicGuard(s, s.ingest_produce_timeout_s)
        self.keys = Keys(s.topic_prefix)
        self.credentials = Credentials(s.tokens())
        self.in_flight = InFlight(s.ingest_max_in_flight, s.ingest_admit_wait_s)
        self.rates = RateLimits(
            self.redis, s.redis_url, s.topic_prefix, s.ingest_rate_per_s, s.ingest_rate_burst
        )
        self.admit_script = self.redis.register_script(ADMIT_QUEUES)
        self.remember_script = self.redis.register_script(REMEMBER)
        self.seen_script = self.redis.register_script(SEEN)

    @property
    def queues_key(self) -> str:
        return f"{self.settings.topic_prefix}ingest:queues"

    # ---- the request as a whole ----------------------------------------------------

    def sender(self, request: Request) -> str:
        """The source named by the bearer token (401 otherwise)."""
        return self.credentials.source_of(bearer_token(request))

    async def read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as more than the limit has been read."""
        limit = self.settings.ingest_max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"body of {declared} bytes; at most {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def accept(self, items: list[object], source: str, flat: bool = False) -> JsonResponse:
        """Admit (429 before any work), validate, drop duplicates, produce, answer.
        `flat`: no item nests objects or arrays (`is_flat`)."""
        n = len(items)
        if not await self.in_flight.room_for(n):
            self.metrics.refused.labels("capacity").inc()
            busy = self.in_flight.events
            raise TooMany(f"ingest is at capacity ({busy} events in flight); nothing done", 1.0)
        with self.in_flight.hold(n):
            wait = await self.rates.take(source, n)
            if wait is not None:
                self.metrics.refused.labels("rate").inc()
                per_s = self.settings.ingest_rate_per_s
                raise TooMany(f"rate limit of {per_s} events/s for {source} exceeded", wait)
            return await self._accept(items, source, flat)

    # ---- the work ------------------------------------------------------------------

    async def _accept(self, items: list[object], source: str, flat: bool) -> JsonResponse:
        settings, metrics = self.settings, self.metrics
        metrics.batch_size.observe(len(items))
        bounds = Bounds(self.clock(), settings.ingest_max_future_skew_s, settings.ingest_max_age_s)
        batch = validate_items(items, source, bounds, flat)
        known = await self.seen(batch)
        fresh = [(i, e) for i, e in batch.events if i not in known]
        fresh = await self.within_queue_cap(fresh, batch)
        records, fresh = self.encode(fresh, batch)
        if records:
            started = time.perf_counter()
            await self.produce(records, source)
            metrics.produce_seconds.observe(time.perf_counter() - started)
            await self.remember(fresh)  # only now: Kafka has acknowledged every one
        self.count(batch, fresh, known, source)
        duplicates = len(known) + batch.repeats
        body = {
            "accepted": len(fresh),
            "duplicates": duplicates,
            "rejected": [r.as_json() for r in sorted(batch.rejected, key=lambda r: r.index)],
        }
        # 422 only when something was wrong and nothing got through; an empty batch is no error
        status = 422 if batch.rejected and not fresh and not duplicates else 202
        return json_response(body, status)

    def _dedup_keys(self, events: list[Indexed]) -> tuple[str, str]:
        """The dedup keys of these events (`Keys.dedup`) as their common prefix and the
        rest of each, one a line."""
        prefix = self.keys.dedup("", "")[:-1]  # "<prefix>dedup:", then "<source>:<event_id>"
        return prefix, "\n".join([f"{e.source or ''}:{e.event_id}" for _, e in events])

    async def seen(self, batch: Batch) -> set[int]:
        """Indexes of events Kafka already acknowledged (one script call). Empty when
        Redis is down: duplicates are then left to the monitor's dedup."""
        if not batch.events:
            return set()
        try:
            found = await self.seen_script(args=list(self._dedup_keys(batch.events)))
        except (RedisError, OSError):
            log.warning("redis unreachable: duplicates are left to the monitor's dedup")
            return set()
        return {batch.events[int(n)][0] for n in found}

    async def remember(self, acked: list[Indexed]) -> None:
        """Remember acknowledged ids; a failure here costs a duplicate the monitor drops."""
        prefix, rest = self._dedup_keys(acked)
        try:
            await self.remember_script(args=[self.settings.ingest_dedup_ttl_s, prefix, rest])
        except (RedisError, OSError):
            log.warning("redis unreachable: a resent event is left to the monitor's dedup")

    async def within_queue_cap(self, fresh: list[Indexed], batch: Batch) -> list[Indexed]:
        """Events whose queues are known or fit under `max_queues`; the rest rejected."""
        cap = self.settings.ingest_max_queues
        new = sorted({q for _, e in fresh for q in queues_named(e)} - self.known_queues)
        if not new:
            return fresh
        try:
            flags = await self.admit_script(keys=[self.queues_key], args=[cap, *new])
        except (RedisError, OSError):
            log.warning("redis unreachable: new queue ids are not checked against the cap")
            return fresh
        refused = {q for q, ok in zip(new, flags, strict=True) if not ok}
        self.known_queues.update(q for q in new if q not in refused)
        kept: list[Indexed] = []
        for index, event in fresh:
            over = [q for q in queues_named(event) if q in refused]
            if not over:
                kept.append((index, event))
                continue
            rule = f"a new queue beyond max_queues ({cap} distinct queues); known queues work"
            field_name = "skills" if is_agent_event(event) else "queue_id"
            errors = [f"{field_name}: {q!r} is {rule}" for q in over[:3]]
            batch.rejected.append(Rejection(index, event.event_id, errors))
        return kept

    def encode(
        self, fresh: list[Indexed], batch: Batch
    ) -> tuple[list[tuple[str, bytes, bytes]], list[Indexed]]:
        """Kafka records of the events; one that cannot be encoded is rejected, never a 500."""
        topic_events, topic_agents = self.settings.topic("events"), self.settings.topic("agents")
        records: list[tuple[str, bytes, bytes]] = []
        kept: list[Indexed] = []
        for index, event in fresh:
            try:  # encode_event's bytes, without its round trip through str
                value = event.__pydantic_serializer__.to_json(event, exclude_none=True)
            except (PydanticSerializationError, ValueError) as exc:
                batch.rejected.append(Rejection(index, event.event_id, [f"cannot encode: {exc}"]))
                continue
            topic = topic_agents if is_agent_event(event) else topic_events
            records.append((topic, event_key(event).encode(), value))
            kept.append((index, event))
        return records, kept

    async def produce(self, records: list[tuple[str, bytes, bytes]], source: str) -> None:
        """Send and wait for every ack, or raise Unavailable (503) with nothing claimed."""
        timeout_s = self.settings.ingest_produce_timeout_s
        try:
            producer = await self.get_producer()
            await self.topics.ensure(producer)  # never into a topic the broker lost
            made = self.topics.made
            await send_batched(producer, records, timeout_s)
            await self.topics.ensure(producer)  # a connection made anew while sending
            if self.topics.made != made:
                raise BrokerUnavailable("the broker lost its topics while they were sent")
        except BrokerUnavailable as exc:
            await self.drop_producer()
            log.warning("broker unavailable", extra={"source": source, "events": len(records)})
            raise Unavailable(
                f"broker unavailable, nothing acknowledged: {exc}",
                self.settings.ingest_retry_after_s,
            ) from exc

    def count(self, batch: Batch, fresh: list[Indexed], known: set[int], source: str) -> None:
        events = self.metrics.events
        for kind, n in Tally(e.type for _, e in fresh).items():  # one series update a type
            events.labels(source, kind, "accepted").inc(n)
        if known:
            for kind, n in Tally(e.type for i, e in batch.events if i in known).items():
                events.labels(source, kind, "duplicate").inc(n)
        if batch.repeats:
            events.labels(source, "repeat", "duplicate").inc(batch.repeats)
        if batch.rejected:
            events.labels(source, "invalid", "rejected").inc(len(batch.rejected))

    # ---- the producer --------------------------------------------------------------

    async def get_producer(self) -> AIOKafkaProducer:
        """The producer, started on first use and after a broker outage."""
        async with self.lock:
            if self.producer is None:
                bound = self.settings.ingest_produce_timeout_s
                producer = new_producer(self.settings, bound)
                try:
                    # a broker that came back may have lost its topics: create them first
                    await within(ensure_topics(self.settings), bound)
                    await within(producer.start(), bound)
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

    async def close(self) -> None:
        await self.drop_producer()


async def _close_quietly(producer: AIOKafkaProducer) -> None:
    try:
        await within(producer.stop(), 2.0)
    except Exception:  # noqa: BLE001  # a dead broker makes stop() fail in many ways
        log.warning("producer did not stop cleanly", exc_info=True)


def ingest_of(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest
    return service


Ingest = Annotated[IngestService, Depends(ingest_of)]


# ---- routes: each reads its format, then hands the items to `accept` ------------------

router = APIRouter()


@router.post("/v1/events", status_code=202)
async def post_events(request: Request, ingest: Ingest) -> JsonResponse:
    """Accept one event or an array of at most 1000; 202 once Kafka has them all."""
    source = ingest.sender(request)
    body = await ingest.read_body(request)
    items = split_body(body, ingest.settings.ingest_max_events)
    return await ingest.accept(items, source, is_flat(body, items))


@router.post("/v1/adapters/asterisk/queue_log", status_code=202)
async def post_queue_log(request: Request, ingest: Ingest) -> JsonResponse:
    """Lines of Asterisk's queue_log (text); same answers as `/v1/events`, by line."""
    source = ingest.sender(request)
    body = await ingest.read_body(request)
    # contract 2: every line is read, a legacy Latin-1 caller name included
    lines = split_lines(decode_body(body).encode(), ingest.settings.ingest_max_events)
    memory = adapter_memory(request)
    members = memory.members_of(source)
    items: list[object] = [*parse_lines(lines, members)]
    answer = await ingest.accept(items, source)
    memory.keep_members(source, members)  # taken: a refusal (429, 503) raised above
    return answer


@router.post("/v1/adapters/twilio/taskrouter", status_code=202)
async def post_taskrouter(request: Request, ingest: Ingest) -> JsonResponse:
    """A TaskRouter event callback (form fields), checked with X-Twilio-Signature."""
    settings = ingest.settings
    if not settings.twilio_auth_token:
        raise NotFound("the Twilio adapter is off (no auth token set)")
    body = await ingest.read_body(request)
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    url = settings.twilio_callback_url or str(request.url)
    expected = signature(settings.twilio_auth_token, url, params)
    given = request.headers.get("x-twilio-signature", "")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Unauthorized("missing or wrong X-Twilio-Signature")
    items: list[object] = [*taskrouter_items(params, adapter_memory(request).tasks)]
    return await ingest.accept(items, "twilio")


@router.post("/v1/adapters/connect/events", status_code=202)
async def post_connect(request: Request, ingest: Ingest) -> JsonResponse:
    """Amazon Connect contact events (as EventBridge delivers them) and agent event stream
    records: one or an array; checked with the shared secret in X-Floorwatch-Secret."""
    settings = ingest.settings
    if not settings.connect_shared_secret:
        raise NotFound("the Amazon Connect adapter is off (no shared secret set)")
    if not secret_matches(settings.connect_shared_secret, request.headers.get(SECRET_HEADER)):
        raise Unauthorized("missing or wrong X-Floorwatch-Secret")
    body = await ingest.read_body(request)
    records = split_body(body, settings.ingest_max_events)
    contacts = adapter_memory(request).contacts
    items: list[object] = [item for r in records for item in connect_items(r, contacts)]
    return await ingest.accept(items, "connect")


def adapter_memory(request: Request) -> AdapterMemory:
    """What the adapters remember between requests in this process, made on first use."""
    memory: AdapterMemory | None = getattr(request.app.state, "adapters", None)
    if memory is None:
        memory = request.app.state.adapters = AdapterMemory()
    return memory
