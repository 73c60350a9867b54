"""One Kafka consumer per API process, fanned out to every board client."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.consume import ConsumerLoop, DeadLetters, Poison
from shared.kafka import new_consumer
from shared.messages.alerts import AlertChange
from shared.settings import CommonSettings
from shared.timefmt import parse_ts

log = logging.getLogger(__name__)
HISTORY_S = 30 * 60  # the sparkline's span
# how long the broker may hold a fetch for records to come: the local broker holds it the
# whole time when none have come, so a tick's snapshots would wait up to this for the board
BOARD_FETCH_WAIT_MS = 50


@dataclass(eq=False)
class Client:
    """One websocket's outbox; a client too slow to drain it is dropped."""

    outbox: asyncio.Queue[bytes]
    dropped: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, message: bytes) -> None:
        if self.dropped.is_set():
            return
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped.set()


@dataclass
class Fanout:
    """The latest state of the board, and the clients to tell when it changes."""

    client_queue: int = 256
    clients: set[Client] = field(default_factory=set)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # Any: snapshot JSON
    history: dict[str, deque[tuple[str, float | None]]] = field(default_factory=dict)
    last_as_of: str | None = None
    received_at: float | None = None

    def connect(self) -> Client:
        client = Client(asyncio.Queue(self.client_queue))
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    def broadcast(self, message: dict[str, Any]) -> None:
        data = orjson.dumps(message)
        for client in list(self.clients):
            client.offer(data)

    def on_snapshots(self, snapshots: list[dict[str, Any]]) -> None:
        """Remember and forward one tick's snapshots (one message for each `as_of`)."""
        by_tick: dict[str, list[dict[str, Any]]] = {}
        for snap in snapshots:
            if self.remember(snap):  # an older snapshot than the board has is not news
                by_tick.setdefault(str(snap["as_of"]), []).append(snap)
        for as_of, queues in sorted(by_tick.items()):
            self.broadcast({"type": "tick", "as_of": as_of, "queues": queues})

    def remember(self, snap: dict[str, Any]) -> bool:
        """Keep a snapshot as its queue's latest; False when a newer one is already kept."""
        queue_id = str(snap["queue_id"])
        previous = self.latest.get(queue_id)
        if previous is not None and str(previous["as_of"]) > str(snap["as_of"]):
            return False
        self.latest[queue_id] = snap
        self.last_as_of = max(self.last_as_of or "", str(snap["as_of"]))
        self.received_at = time.time()
        primary = next(iter(snap["windows"].values()))
        points = self.history.setdefault(queue_id, deque())
        points.append((str(snap["as_of"]), primary["answer_rate_live"]))
        cutoff = parse_ts(str(snap["as_of"])) - HISTORY_S
        while points and parse_ts(points[0][0]) < cutoff:
            points.popleft()
        return True

    def welcome(
        self, alerts: list[dict[str, Any]], actions: list[dict[str, Any]], tick_s: float
    ) -> dict[str, Any]:
        """The full state a (re)connecting client starts from."""
        return {
            "type": "state",
            "tick_s": tick_s,
            "as_of": self.last_as_of,
            "queues": [self.latest[q] for q in sorted(self.latest)],
            "history": {q: list(points) for q, points in self.history.items()},
            "alerts": alerts,
            "actions": actions,
        }


def json_object(value: bytes | None) -> dict[str, Any]:
    """A record's JSON object (anything else is poison)."""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise Poison(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Poison("not a JSON object")
    return body


@dataclass
class Follower:
    """Forwards new records of the metrics, alerts and actions topics to the board."""

    fanout: Fanout
    metrics: str
    alerts: str
    actions: str
    pending: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, record: ConsumerRecord, body: dict[str, Any]) -> None:
        if record.topic == self.metrics:
            self.pending.append(body)  # one board message per tick, sent after the poll
        elif record.topic == self.alerts:
            change = AlertChange.model_validate(body)  # ValidationError: dead-lettered
            self.fanout.broadcast({"type": "alert", "alert": change.as_json()})
        else:
            self.fanout.broadcast({"type": "action", "action": body})

    async def flush(self) -> None:
        if self.pending:
            snapshots, self.pending = self.pending, []
            self.fanout.on_snapshots(snapshots)


def board_consumer(settings: CommonSettings) -> AIOKafkaConsumer:
    """The API's consumer of the board's topics: no group, from their ends, fetches held
    briefly so a tick reaches the board soon after it is published."""
    return new_consumer(
        settings, group_id=None, auto_offset_reset="latest", fetch_max_wait_ms=BOARD_FETCH_WAIT_MS
    )


async def follow(
    fanout: Fanout,
    consumer: AIOKafkaConsumer,
    dlq: DeadLetters,
    metrics: str,
    alerts: str,
    actions: str,
) -> None:
    """Forward new records of the three topics to the board until cancelled."""
    topics = (metrics, alerts, actions)
    parts = [
        TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])
    ]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    follower = Follower(fanout, metrics, alerts, actions)
    loop = ConsumerLoop(
        consumer, json_object, follower.handle, dlq, after_poll=follower.flush, poll_ms=100
    )
    await loop.run()
