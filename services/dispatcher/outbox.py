"""Commands to the telephony system's HTTPS endpoint: an outbox drained by its own task.

The tick only puts commands in the outbox; a slow or dead endpoint delays nothing but
the outbox's own delivery (contract 6). Each command is signed and retried with
exponential backoff (stamina); one that still fails is logged and counted, never lost
in silence. The outbox is bounded: when full, the oldest command waiting is dropped and
counted (the commands topic still holds every command).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
import stamina
from prometheus_client import CollectorRegistry, Counter

from shared.messages.actions import AnyCommand
from shared.messages.commands import encode_command

log = logging.getLogger(__name__)


class EndpointRefused(Exception):
    """The endpoint answered 5xx or 429: worth another attempt."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`, hex, as the telephony endpoint checks it."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass
class Outbox:
    """Commands waiting for the endpoint, delivered in order by `deliver_forever`."""

    endpoint: str
    secret: str
    registry: CollectorRegistry
    timeout_s: float = 5.0
    attempts: int = 4
    wait_initial_s: float = 0.5
    capacity: int = 10_000
    _queue: deque[AnyCommand] = field(default_factory=deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.outcomes = Counter(
            "floorwatch_dispatcher_endpoint",
            "commands to the HTTPS endpoint by outcome",
            ["outcome"],
            registry=self.registry,
        )

    def put(self, command: AnyCommand) -> None:
        """Queue a command; never waits (the tick calls this)."""
        if not self.endpoint:
            return
        if len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.outcomes.labels("dropped").inc()
        self._queue.append(command)
        self._ready.set()

    def __len__(self) -> int:
        return len(self._queue)

    async def deliver_forever(self, client: httpx.AsyncClient) -> None:
        """Send what the outbox holds, oldest first, until cancelled."""
        while True:
            await self._ready.wait()
            while self._queue:
                command = self._queue[0]
                delivered = await self._deliver(client, command)
                self.outcomes.labels("delivered" if delivered else "failed").inc()
                self._queue.popleft()
            self._ready.clear()

    async def _deliver(self, client: httpx.AsyncClient, command: AnyCommand) -> bool:
        body = encode_command(command)
        try:
            async for attempt in stamina.retry_context(
                on=(httpx.TransportError, EndpointRefused),
                attempts=self.attempts,
                timeout=None,
                wait_initial=self.wait_initial_s,
                wait_max=30.0,
            ):
                with attempt:
                    await self._post(client, body)
            return True
        except (httpx.TransportError, EndpointRefused):
            log.error(
                "command not delivered to the endpoint", extra={"command_id": command.command_id}
            )
            return False

    async def _post(self, client: httpx.AsyncClient, body: bytes) -> None:
        stamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-floorwatch-timestamp": stamp,
            "x-floorwatch-signature": sign(self.secret, stamp, body),
        }
        response = await client.post(
            self.endpoint, content=body, headers=headers, timeout=self.timeout_s
        )
        if response.status_code >= 500 or response.status_code == 429:
            raise EndpointRefused(f"status {response.status_code}")
        if response.status_code >= 400:
            log.error("endpoint refused a command", extra={"status": response.status_code})
