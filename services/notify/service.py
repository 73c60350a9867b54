"""The notifier's I/O shell: alerts, actions and snapshots from Kafka; incidents, pages and
the outbox in Redis; the pure tracker (`shared.core.incidents`) and pager in between."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from pydantic import Field, ValidationError
from redis.exceptions import RedisError

from services.notify.channels import Request, build
from services.notify.outbox import Outbox
from services.notify.pager import Pager, Push
from shared.consume import Poison, model_decoder
from shared.core.incidents import Tracker, action_from_json, sample_from_snapshot
from shared.kafka import dumps
from shared.messages.alerts import AlertChange
from shared.messages.incidents import Incident
from shared.notify_config import NotifyConfig
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings
from shared.settings import CommonSettings
from shared.store import JsonHash, Keys, text
from shared.tasks import stop_if_cancelled
from shared.timefmt import iso_ms

log = logging.getLogger(__name__)


class NotifySettings(CommonSettings):
    """`FLOORWATCH_NOTIFY_*` and the common settings."""

    notify_host: str = "127.0.0.1"
    notify_port: int = 8005
    notify_group_id: str = "floorwatch-notify"
    notify_timeout_s: float = Field(5.0, gt=0, description="per HTTP attempt")
    notify_retry_scale: float = Field(
        1.0, gt=0, le=1.0, description="multiplies the Standard Webhooks retry schedule"
    )
    notify_tick_s: float = Field(0.5, gt=0)
    notify_max_age_s: float = Field(600.0, gt=0, description="older alert changes are history")
    notify_sample_every_s: float = Field(10.0, gt=0, description="chart points of an incident")
    notify_inbox_secret: str = Field(
        "", description="whsec_ secret of the demo inbox (`POST /inbox/hook`); empty: off"
    )


def decode_snapshot(value: bytes | None) -> dict[str, Any]:  # Any: snapshot JSON
    """A queue snapshot from `floorwatch.metrics`, checked for the fields incidents use."""
    try:
        data = orjson.loads(value or b"")
        if not isinstance(data, dict):
            raise Poison("a snapshot is a JSON object")
        sample_from_snapshot(data)
    except Poison:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise Poison(f"snapshot: {type(exc).__name__}: {exc}"[:500]) from None
    return data


def decode_action(value: bytes | None) -> dict[str, Any]:  # Any: action JSON
    """A dispatcher action, read tolerantly: only the fields incidents use must be there."""
    try:
        data = orjson.loads(value or b"")
        if not isinstance(data, dict) or not str(data.get("queue_id") or ""):
            raise Poison("an action is a JSON object with a queue_id")
        action_from_json(data)
    except Poison:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ValidationError) as exc:
        raise Poison(f"action: {type(exc).__name__}: {exc}"[:500]) from None
    return data


_decode_alert = model_decoder(AlertChange)


def decode_fact(value: bytes | None) -> AlertChange | dict[str, Any]:  # Any: action JSON
    """A record of `floorwatch.alerts` (typed) or of `floorwatch.actions` (read tolerantly):
    one consumer reads both, so that one notifier owns a queue's alerts and actions alike."""
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and "action_id" in data and "transition" not in data:
        return decode_action(value)
    return _decode_alert(value)


@dataclass
class NotifyShell:
    settings: NotifySettings
    redis: aioredis.Redis
    producer: AIOKafkaProducer
    outbox: Outbox = field(init=False)
    keys: Keys = field(init=False)
    tracker: Tracker = field(init=False)
    pager: Pager = field(default_factory=Pager)
    link_key: bytes = b""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue_settings: dict[str, QueueSettings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.topic_prefix)
        self.tracker = Tracker(self.targets, sample_every_s=self.settings.notify_sample_every_s)
        self._settings_hash = JsonHash(QueueSettings, self.keys.queue_settings)

    def targets(self, queue_id: str) -> tuple[float, float]:
        s = self.queue_settings.get(queue_id, DEFAULT_QUEUE_SETTINGS)
        return s.clear_after_s, s.sl_target

    async def start(self) -> None:
        """Load the link key, the pages and the open incidents; recover the outbox."""
        await self.redis.set(self.keys.link_key, secrets.token_hex(32), nx=True)
        self.link_key = bytes.fromhex(text(await self.redis.get(self.keys.link_key) or b""))
        raw = await self.redis.get(self.keys.notify_state)
        if raw is not None:
            self.pager = Pager.from_json(orjson.loads(raw))
        for value in (await self.redis.hgetall(self.keys.incidents)).values():
            incident = Incident.model_validate_json(value)
            if incident.state == "open":
                self.tracker.open[incident.queue_id] = incident
        self.queue_settings = await self._settings_hash.load(self.redis)
        await self.outbox.start()

    async def config(self) -> NotifyConfig:
        raw = await self.redis.get(self.keys.notify_config)
        if raw is None:
            return NotifyConfig()
        try:
            return NotifyConfig.model_validate_json(raw)
        except ValidationError:
            log.warning("invalid notify config in redis; using the defaults")
            return NotifyConfig()

    def _fresh(self, at: float) -> bool:
        """History (a new consumer group reads from the start) makes no incident or page."""
        return time.time() - at <= self.settings.notify_max_age_s

    async def on_alert(self, _: ConsumerRecord, change: AlertChange) -> None:
        if not self._fresh(change.at):
            return
        async with self.lock:
            incident = self.tracker.on_alert(change)
            await self.changed([incident] if incident else [])

    async def on_fact(self, record: ConsumerRecord, fact: AlertChange | dict[str, Any]) -> None:
        if isinstance(fact, AlertChange):
            await self.on_alert(record, fact)
        else:
            await self.on_action(record, fact)

    async def on_action(self, _: ConsumerRecord, data: dict[str, Any]) -> None:
        action = action_from_json(data)
        if not self._fresh(action.changed_at):
            return
        async with self.lock:
            incident = self.tracker.on_action(str(data["queue_id"]), action)
            await self.changed([incident] if incident else [])

    async def on_snapshot(self, _: ConsumerRecord, snapshot: dict[str, Any]) -> None:
        sample, counts, now = sample_from_snapshot(snapshot)
        async with self.lock:
            incident = self.tracker.on_sample(str(snapshot["queue_id"]), sample, counts, now)
            if incident is not None:  # the chart and numbers now; paging reads them
                await self.redis.hset(
                    self.keys.incidents, incident.incident_id, incident.model_dump_json()
                )

    async def changed(self, incidents: list[Incident], now: float | None = None) -> None:
        """Store changed incidents, page for them, write pages and deliveries together."""
        if not incidents:
            return
        now = time.time() if now is None else now
        config = await self.config()
        pushes: list[Push] = []
        for incident in incidents:
            pushes += self.pager.on_incident(incident, config, now)
        pipe = self.redis.pipeline(transaction=True)
        for incident in incidents:
            pipe.hset(self.keys.incidents, incident.incident_id, incident.model_dump_json())
        self._record(pipe, pushes, now)
        await pipe.execute()

    def _record(self, pipe: Any, pushes: list[Push], now: float) -> None:  # Any: a pipeline
        pipe.set(self.keys.notify_state, dumps(self.pager.as_json()))
        for push in pushes:
            record = {
                "push": push.as_json(), "status": "pending", "attempts": 0,
                "created_at": iso_ms(push.at), "event": push.event, "lead": push.lead,
                "incident_id": push.incident_id,
            }  # fmt: skip
            self.outbox.add(pipe, push.delivery_id, record, now)

    async def tick(self) -> None:
        """Close calm incidents, escalate, repeat, send held updates; refresh settings."""
        now = time.time()
        self.queue_settings = await self._settings_hash.load(self.redis)
        async with self.lock:
            closed = self.tracker.tick(now)
            await self.changed(closed, now)
            pushes = self.pager.on_tick(await self.config(), now)
            self.pager.forget(older_than=now - 86400)  # resolved a day ago: done with
            if pushes:
                pipe = self.redis.pipeline(transaction=True)
                self._record(pipe, pushes, now)
                await pipe.execute()

    async def tick_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except (RedisError, OSError):  # paused by an outage, not ended by it
                stop_if_cancelled()  # a client turned our cancellation into its own error
                log.warning("tick skipped: Redis unreachable", exc_info=True)
            stop_if_cancelled()  # one a client swallowed (and the code around it caught)
            await asyncio.sleep(self.settings.notify_tick_s)

    async def build(self, record: dict[str, Any]) -> tuple[Request | None, str, str]:
        """The request of a delivery, with the incident and numbers as they are now."""
        push = Push.from_json(record["push"])
        config = await self.config()
        lead = config.lead(push.lead)
        if lead is None or push.channel >= len(lead.channels):
            return None, "unknown", "the lead or channel is no longer configured"
        channel = lead.channels[push.channel]
        raw = await self.redis.hget(self.keys.incidents, push.incident_id)
        if raw is None:
            return None, channel.type, "the incident is gone"
        incident = Incident.model_validate_json(raw)
        # from the stored incident, not this process's pages: any notifier may send it
        acked_by = next((a.acked_by for a in incident.alerts if a.acked_by), None)
        request = build(push, incident, channel, config, self.link_key, acked_by, time.time())
        return request, channel.type, ""

    async def inbox(self, body: bytes, headers: dict[str, str]) -> None:
        """Keep a push received by the demo inbox (newest first, the last 200)."""
        entry = {"received_at": iso_ms(time.time()), "id": headers.get("webhook-id"),
                 "body": orjson.loads(body)}  # fmt: skip
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.keys.notify_inbox, dumps(entry))
        pipe.ltrim(self.keys.notify_inbox, 0, 199)
        await pipe.execute()
