"""The dispatcher's I/O shell: floor state in, actions and commands out.

It follows `floorwatch.events` and `floorwatch.agents` with the monitor's own engine
(for the live arrival rate, AHT and patience the planner sizes with), reads each
queue's alert state and settings from Redis as the monitor and API write them, keeps
its actions in Redis, and takes approvals from `floorwatch.actions`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from services.dispatcher.settings import DispatcherSettings
from shared.core.engine import Engine
from shared.core.planner import Action, Change, Planner
from shared.core.tiers import QueueAlertState
from shared.events import InvalidEvent, decode_event
from shared.kafka import dumps, new_consumer, new_producer
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings
from shared.store import JsonHash, Keys, text
from shared.timefmt import parse_ts, whole_ms

log = logging.getLogger(__name__)


def action_from_json(data: dict[str, Any]) -> Action:
    """An action as stored in Redis, back into the planner's form."""
    return Action(
        action_id=data["action_id"],
        queue_id=data["queue_id"],
        type=data["type"],
        tier=int(data["tier"]),
        reason=data["reason"],
        plan=data["plan"],
        undo=data["undo"],
        projected=data["projected"],
        state=data["state"],
        created_at=parse_ts(data["created_at"]),
        changed_by=data["changed_by"],
        changed_at=parse_ts(data["changed_at"]),
        agent_id=data.get("agent_id"),
        history=tuple((h["state"], h["by"], parse_ts(h["at"])) for h in data.get("history", [])),
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`, hex, as the telephony endpoint checks it."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class DispatcherShell:
    settings: DispatcherSettings
    redis: aioredis.Redis
    registry: CollectorRegistry
    planner: Planner = field(default_factory=Planner)
    engine: Engine = field(init=False)
    keys: Keys = field(init=False)
    producer: AIOKafkaProducer | None = None
    events: AIOKafkaConsumer | None = None
    approvals: AIOKafkaConsumer | None = None
    queue_settings: dict[str, QueueSettings] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None
    ticks: int = 0
    caught_up: bool = False
    _ends: dict[TopicPartition, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.engine = Engine(self.settings_for)
        self.engine.horizon = time.time()
        self.keys = Keys(self.settings.topic_prefix)
        self.settings_hash = JsonHash(QueueSettings, self.keys.queue_settings)
        self.commands_sent = Counter(
            "floorwatch_dispatcher_commands",
            "commands sent by type",
            ["type"],
            registry=self.registry,
        )

    def settings_for(self, queue_id: str) -> QueueSettings:
        return self.queue_settings.get(queue_id, DEFAULT_QUEUE_SETTINGS)

    def mode_for(self, queue_id: str) -> str:
        """The queue's stored mode, else the stack's default (`--dispatch`)."""
        if queue_id in self.queue_settings:
            return self.queue_settings[queue_id].mode
        return self.settings.dispatch_mode

    async def start(self) -> None:
        for raw in (await self.redis.hgetall(self.keys.actions)).values():
            action = action_from_json(orjson.loads(raw))
            self.planner.actions[action.action_id] = action
        self.producer = new_producer(self.settings)
        await self.producer.start()
        self.events = new_consumer(self.settings, group_id=None, max_poll_records=5000)
        await self.events.start()
        await self._assign_all(self.events, ("events", "agents"), beginning=True)
        self._ends = await self.events.end_offsets(list(self.events.assignment()))
        self.approvals = new_consumer(self.settings, group_id=None, auto_offset_reset="latest")
        await self.approvals.start()
        await self._assign_all(self.approvals, ("actions",), beginning=False)
        if self.settings.dispatch_endpoint:
            self.http = httpx.AsyncClient(timeout=self.settings.dispatch_endpoint_timeout_s)

    async def _assign_all(
        self, consumer: AIOKafkaConsumer, names: tuple[str, ...], beginning: bool
    ) -> None:
        parts = [
            TopicPartition(self.settings.topic(n), p)
            for n in names
            for p in sorted(consumer.partitions_for_topic(self.settings.topic(n)) or [])
        ]
        consumer.assign(parts)
        if beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            await consumer.seek_to_end(*parts)

    async def stop(self) -> None:
        for client in (self.approvals, self.events, self.producer):
            if client is not None:
                await client.stop()
        if self.http is not None:
            await self.http.aclose()

    async def follow_events(self) -> None:
        assert self.events is not None  # noqa: S101  # started first
        while True:
            batches = await self.events.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    try:
                        self.engine.add(decode_event(record.value))
                    except InvalidEvent:
                        continue  # the monitor dead-letters it; here it simply does not count
            if not self.caught_up:
                positions = {tp: await self.events.position(tp) for tp in self._ends}
                self.caught_up = all(positions[tp] >= end for tp, end in self._ends.items())

    async def follow_approvals(self) -> None:
        assert self.approvals is not None  # noqa: S101  # started first
        while True:
            batches = await self.approvals.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    body = orjson.loads(record.value)
                    verdict = body.get("state")
                    if (
                        verdict not in ("approved", "rejected")
                        or body.get("changed_by") == "dispatcher"
                    ):
                        continue
                    change = self.planner.decide(
                        str(body["action_id"]), verdict, str(body["changed_by"]), time.time()
                    )
                    if change is not None:
                        await self.publish([change])

    async def tick(self, now: float) -> list[Change]:
        """Plan on the floor as it is at `now`; nothing until the history is read back."""
        if not self.caught_up:
            return []
        await self._load_settings()
        states = await self._alert_states()
        stats = self.engine.compute(now)
        snaps = await self.redis.hgetall(self.keys.snapshots)
        ratios = {text(k): orjson.loads(v)["surge"]["ratio"] for k, v in snaps.items()}
        changes = self.planner.step(now, stats, states, self.engine.agents, self.mode_for, ratios)
        self.engine.prune(now)
        await self.publish(changes)
        self.ticks += 1
        return changes

    async def _load_settings(self) -> None:
        self.queue_settings = await self.settings_hash.load(self.redis)

    async def _alert_states(self) -> dict[str, QueueAlertState]:
        raw = await self.redis.hgetall(self.keys.alert_states)
        return {text(k): QueueAlertState.from_json(orjson.loads(v)) for k, v in raw.items()}

    async def publish(self, changes: list[Change]) -> None:
        """Store each changed action, announce it, then send its commands."""
        if not changes:
            return
        assert self.producer is not None  # noqa: S101  # started first
        pipe = self.redis.pipeline(transaction=False)
        for change in changes:
            body = change.action.as_json()
            pipe.hset(self.keys.actions, change.action.action_id, dumps(body))
        await pipe.execute()  # stored before sent: a restart knows what it already did
        for change in changes:
            body = change.action.as_json()
            key = change.action.queue_id.encode()
            await self.producer.send(self.settings.topic("actions"), dumps(body), key=key)
            for command in change.commands:
                target = self.settings.dispatch_target.encode()
                await self.producer.send(
                    self.settings.topic("commands"), dumps(command), key=target
                )
                self.commands_sent.labels(command["type"]).inc()
                await self.post(command)
        await self.producer.flush()

    async def post(self, command: dict[str, Any]) -> None:
        """POST a command to the telephony endpoint, signed, retried with backoff."""
        if self.http is None or not self.settings.dispatch_endpoint:
            return
        body = dumps(command)
        for attempt in range(self.settings.dispatch_endpoint_retries + 1):
            stamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "x-floorwatch-timestamp": stamp,
                "x-floorwatch-signature": sign(self.settings.dispatch_secret, stamp, body),
            }
            try:
                response = await self.http.post(
                    self.settings.dispatch_endpoint, content=body, headers=headers
                )
                if response.status_code < 500:
                    return
            except httpx.HTTPError:
                log.warning("command endpoint unreachable", extra={"attempt": attempt + 1})
            await asyncio.sleep(0.5 * 2**attempt)
        log.error(
            "command not delivered to the endpoint", extra={"command_id": command["command_id"]}
        )


async def tick_forever(shell: DispatcherShell, tick_s: float) -> None:
    while True:
        began = time.monotonic()
        try:
            await shell.tick(whole_ms(time.time()))
        except (KafkaError, RedisError, OSError):
            log.warning("dispatcher tick failed; retried at the next tick", exc_info=True)
        await asyncio.sleep(max(0.0, tick_s - (time.monotonic() - began)))
