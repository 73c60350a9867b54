"""Acknowledging alerts and approving plans on a lead's behalf (Slack buttons, PagerDuty),
written the way the API writes them: an atomic update of the record, then the fact on Kafka."""

from __future__ import annotations

import time

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from shared.acks import acknowledge_alert
from shared.kafka import dumps
from shared.messages.alerts import AlertRecord
from shared.settings import CommonSettings
from shared.store import Keys, atomic_update
from shared.timefmt import iso_ms


async def acknowledge(
    redis: aioredis.Redis,
    producer: AIOKafkaProducer,
    settings: CommonSettings,
    alert_id: str,
    by: str,
) -> tuple[AlertRecord | None, bool]:
    """Acknowledge `alert_id` as `by`: the record (None when there is no such alert) and
    whether this call acknowledged it (acknowledging twice changes nothing)."""
    record, change = await acknowledge_alert(
        redis, Keys(settings.topic_prefix), alert_id, by, time.time()
    )
    if change is not None:
        await producer.send_and_wait(
            settings.topic("alerts"), dumps(change.as_json()), key=change.queue_id.encode()
        )
    return record, change is not None


async def approve(
    redis: aioredis.Redis,
    producer: AIOKafkaProducer,
    settings: CommonSettings,
    action_id: str,
    by: str,
) -> str | None:
    """Approve a proposed action as `by`; its state afterwards, None when there is none."""
    at = iso_ms(time.time())
    changed: list[bytes] = []

    def change(stored: bytes | None) -> bytes | None:
        changed.clear()
        if stored is None:
            return None
        action = orjson.loads(stored)
        if action.get("state") != "proposed":
            return None
        history = [*action.get("history", []), {"state": "approved", "by": by, "at": at}]
        action.update(state="approved", changed_by=by, changed_at=at, history=history)
        changed.append(dumps(action))
        return changed[0]

    keys = Keys(settings.topic_prefix)
    stored = await atomic_update(redis, keys.actions, action_id, change)
    if stored is None:
        return None
    for body in changed:
        queue_id = str(orjson.loads(body)["queue_id"])
        await producer.send_and_wait(settings.topic("actions"), body, key=queue_id.encode())
    return str(orjson.loads(stored).get("state"))
