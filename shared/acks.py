"""A lead's acknowledgement of an alert, however it arrives (the API, a one-tap link, a
Slack button, PagerDuty): one atomic update of the alert's record in Redis."""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.messages.alerts import AlertChange, AlertRecord, apply_change
from shared.store import Keys, atomic_update


async def acknowledge_alert(
    redis: aioredis.Redis, keys: Keys, alert_id: str, by: str, at: float
) -> tuple[AlertRecord | None, AlertChange | None]:
    """The record after acknowledging (None: no such alert) and the change made (None when
    it was acknowledged already: acknowledging twice changes nothing). The caller
    publishes the change on `floorwatch.alerts`."""
    made: list[AlertChange] = []

    def acknowledge(stored: bytes | None) -> bytes | None:
        made.clear()  # the update may run again when another writer got in first
        if stored is None:
            return None
        record = AlertRecord.model_validate_json(stored)
        if record.acknowledged_by is not None:
            return None
        change = AlertChange(
            alert_id=alert_id,
            kind=record.kind,
            queue_id=record.queue_id,
            transition="acknowledged",
            by=by,
            at=at,
        )
        made.append(change)
        return apply_change(record, change).model_dump_json().encode()

    stored = await atomic_update(redis, keys.alerts, alert_id, acknowledge)
    if stored is None:
        return None, None
    return AlertRecord.model_validate_json(stored), made[0] if made else None
