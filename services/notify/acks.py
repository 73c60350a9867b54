"""Acknowledging alerts and approving plans on a lead's behalf (Slack buttons, PagerDuty),
written the way the API writes them: an atomic update of the record, then the fact on Kafka."""

from __future__ import annotations

import time

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from shared.kafka import dumps
from shared.messages.alerts import AlertChange, AlertRecord, apply_change
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
    at = time.time()
    acked: list[AlertChange] = []

    def change(stored: bytes | None) -> bytes | None:
        acked.clear()
        if stored is None:
            return None
        record = AlertRecord.model_validate_json(stored)
        if record.acknowledged_by is not None:
            return None
        fact = AlertChange(
            alert_id=alert_id,
            kind=record.kind,
            queue_id=record.queue_id,
            transition="acknowledged",
            by=by,
            at=at,
        )
        acked.append(fact)
        return apply_change(record, fact).model_dump_json().encode()

    keys = Keys(settings.topic_prefix)
    stored = await atomic_update(redis, keys.alerts, alert_id, change)
    if stored is None:
        return None, False
    for fact in acked:
        await producer.send_and_wait(
            settings.topic("alerts"), dumps(fact.as_json()), key=fact.queue_id.encode()
        )
    return AlertRecord.model_validate_json(stored), bool(acked)


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
