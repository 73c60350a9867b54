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

from shared.timefmt import parse_ts

log = logging.getLogger(__name__)
HISTORY_S = 30 * 60  # the sparkline's span


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


async def follow(
    fanout: Fanout, consumer: AIOKafkaConsumer, metrics: str, alerts: str, actions: str
) -> None:
    """Forward new records of the three topics to the board until cancelled."""
    topics = (metrics, alerts, actions)
    parts = [
        TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])
    ]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    while True:
        batches = await consumer.getmany(timeout_ms=200)
        snapshots: list[dict[str, Any]] = []
        for tp, records in batches.items():
            for record in records:
                try:
                    body = orjson.loads(record.value)
                except orjson.JSONDecodeError:
                    log.warning("undecodable record", extra={"topic": tp.topic})
                    continue
                if tp.topic == metrics:
                    snapshots.append(body)
                elif tp.topic == alerts:
                    fanout.broadcast({"type": "alert", "alert": body})
                else:
                    fanout.broadcast({"type": "action", "action": body})
        if snapshots:
            fanout.on_snapshots(snapshots)
