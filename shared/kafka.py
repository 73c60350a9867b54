"""Kafka plumbing: topics, a producer with the contract's guarantees, JSON codecs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from shared.errors import Unavailable
from shared.settings import CommonSettings
from shared.tasks import within

log = logging.getLogger(__name__)

TOPICS = ("events", "agents", "metrics", "alerts", "actions", "commands", "dlq")
TOPIC_ALREADY_EXISTS = 36


class BrokerUnavailable(Unavailable):
    """The broker did not acknowledge within the bound; nothing is acknowledged."""


def dumps(value: Any) -> bytes:  # Any: any JSON-serialisable value
    return orjson.dumps(value)


def new_producer(settings: CommonSettings, request_timeout_s: float = 5.0) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas (contract 2: `acks=all`)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        request_timeout_ms=int(request_timeout_s * 1000),
        linger_ms=2,
        max_batch_size=256 * 1024,
        retry_backoff_ms=100,
    )


def new_consumer(
    settings: CommonSettings, *topics: str, group_id: str | None, **kwargs: Any
) -> AIOKafkaConsumer:  # Any: aiokafka's own keyword options
    """A consumer that never auto-commits: offsets are committed after processing."""
    options = {"auto_offset_reset": "earliest", **kwargs}
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        **options,
    )


async def ensure_topics(settings: CommonSettings, names: Iterable[str] = TOPICS) -> list[str]:
    """Create floorwatch's topics if they are missing; returns the ones it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    created: list[str] = []
    try:
        topics = [NewTopic(settings.topic(n), settings.topic_partitions, 1) for n in names]
        response = await admin.create_topics(topics)
        for name, code, message in getattr(response, "topic_errors", []):
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:
                raise KafkaError(f"creating topic {name}: {code} {message}")
    finally:
        await admin.close()
    return created


async def lost_topics(settings: CommonSettings, names: Iterable[str] = TOPICS) -> list[str]:
    """floorwatch's topics that the broker does not list (a metadata request for every
    topic: it never makes the broker create one)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        await admin.start()
        listed = set(await admin.list_topics())
    finally:
        await admin.close()
    return [settings.topic(n) for n in names if settings.topic(n) not in listed]


async def send_all(
    producer: AIOKafkaProducer,
    records: Sequence[tuple[str, bytes | None, bytes]],
    timeout_s: float,
) -> None:
    """Send (topic, key, value) records and wait for every ack, or raise BrokerUnavailable."""

    async def _send() -> None:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)

    await acknowledged(_send(), timeout_s)


async def acknowledged(sending: Awaitable[None], timeout_s: float) -> None:
    """Wait for records handed to the producer and their acks, at most `timeout_s`;
    else BrokerUnavailable (a 503 with Retry-After at ingest)."""
    try:
        await within(sending, timeout_s)
    except (TimeoutError, KafkaError) as exc:
        reason = f"broker did not acknowledge within {timeout_s:g} s: {exc!r}"
        raise BrokerUnavailable(reason) from exc


async def broker_reachable(settings: CommonSettings, timeout_s: float = 2.0) -> bool:
    """True when the broker answers a metadata request within the bound."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await within(admin.start(), timeout_s)
        await within(admin.list_topics(), timeout_s)
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        await admin.close()
