"""The monitor reads a poll's records as batches: on the real broker, bad records in the
middle of one go to the DLQ with their offsets and the good ones around them count."""

from __future__ import annotations

import re

import httpx
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from services.monitor.app import create_app
from shared.kafka import ensure_topics
from shared.localstack import LocalStack
from tests.integration.conftest import monitor_settings, serve
from tests.integration.test_ingest import read_topic
from tests.integration.test_monitor import redis_client, stamp, wait_for

__all__ = ["redis_client"]  # the fixture, used by name


def queued(event_id: str, call_id: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "call.queued",
            "ts": stamp(-5),
            "call_id": call_id,
            "queue_id": "z",
        }
    )


async def test_poison_in_the_middle_of_a_batch(
    stack: LocalStack, prefix: str, redis_client: aioredis.Redis
) -> None:
    settings = monitor_settings(stack, prefix)
    await ensure_topics(settings)
    values = [
        queued("g1", "c1"),  # offset 0
        queued("g2", "c2"),
        b"\xff not json",  # 2
        queued("g3", "c3"),
        queued("g1", "c1"),  # 4: a redelivery of offset 0, skipped
        orjson.dumps({"event_id": "n1", "type": "call.queued", "ts": "2026-11-11T20:00:00",
                      "call_id": "c9", "queue_id": "z"}),  # 5: no UTC offset
        orjson.dumps({"event_id": "n2", "type": "call.queued", "ts": stamp(-5),
                      "call_id": "c8", "queue_id": "z", "priority": "1"}),  # 6: a string
        queued("g4", "c4"),  # 7
    ]  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=50)
    await producer.start()
    try:  # one produce batch, so the monitor's first poll holds them all
        sent = [await producer.send(prefix + "events", v, key=b"z", partition=0) for v in values]
        for future in sent:
            await future
    finally:
        await producer.stop()
    app = create_app(settings)
    async with serve(app) as url:
        snaps = await wait_for(redis_client, prefix, lambda s: s.get("z", {}).get("waiting") == 4)
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{url}/metrics")).text
        processed = app.state.shell.processed
    assert snaps["z"]["waiting"] == 4  # c1..c4
    assert processed == 5  # the four and the redelivery
    counts = dict(re.findall(r'floorwatch_monitor_events_total\{outcome="(\w+)"\} ([0-9.]+)', text))
    assert counts == {"counted": "4.0", "skipped": "1.0", "dead_letter": "3.0"}
    dlq = await read_topic(stack.bootstrap, prefix + "dlq", 3)
    bodies = sorted((v["offset"], v["topic"], v["partition"], v["reason"]) for _, v in dlq)  # type: ignore[type-var]
    assert [b[:3] for b in bodies] == [
        (2, prefix + "events", 0),
        (5, prefix + "events", 0),
        (6, prefix + "events", 0),
    ]
    assert str(bodies[0][3]).startswith("not JSON: ")
    assert bodies[1][3] == "ts: timestamp must include a UTC offset"
    assert bodies[2][3] == "priority: must be a whole number"
