"""The simulator as a telephony system: events to ingest over HTTP, commands from Kafka."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field

from services.simulator.closed_loop import forecasts_for
from services.simulator.scenario import load_scenario
from services.simulator.sim import Command, Simulator
from shared.consume import ConsumerLoop, DeadLetters, Poison
from shared.kafka import ensure_topics, new_consumer, new_producer
from shared.messages.commands import decode_command
from shared.service import Running, build_app
from shared.settings import CommonSettings, parse_pairs
from shared.tasks import TaskGroup

log = logging.getLogger(__name__)


class SimulatorSettings(CommonSettings):
    """`FLOORWATCH_SIM_*`; the ingest and API tokens are read from the stack's variables."""

    sim_scenario: str = "promo-night"
    sim_seed: int = 1
    sim_start_s: float = Field(1020.0, ge=0, description="scenario time the live run starts at")
    sim_host: str = "127.0.0.1"
    sim_port: int = 8004
    ingest_url: str = "http://127.0.0.1:8001"
    api_url: str = "http://127.0.0.1:8000"
    ingest_tokens: str = ""
    api_tokens: str = ""
    sim_source: str = "sim"

    def ingest_token(self) -> str:
        for source, secret in parse_pairs(self.ingest_tokens, 2):
            if source == self.sim_source:
                return secret
        raise ValueError(f"FLOORWATCH_INGEST_TOKENS has no token for source {self.sim_source!r}")

    def admin_token(self) -> str | None:
        for _name, role, secret in parse_pairs(self.api_tokens, 3):
            if role == "admin":
                return secret
        return None


@dataclass
class LiveSimulator:
    settings: SimulatorSettings
    registry: CollectorRegistry
    sim: Simulator = field(init=False)
    started: float = field(init=False)
    backlog: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        scenario = load_scenario(self.settings.sim_scenario)
        self.started = time.time()
        t0 = self.started - self.settings.sim_start_s  # scenario time 0, in wall-clock time
        self.sim = Simulator(scenario, self.settings.sim_seed, t0, source=self.settings.sim_source)
        # the scenario's past up to the start, stamped in the past: the board opens on history
        self.backlog = self.sim.advance(self.settings.sim_start_s)
        self.posted = Counter(
            "floorwatch_sim_events", "events posted to ingest", ["outcome"], registry=self.registry
        )

    async def upload_forecasts(self, client: httpx.AsyncClient) -> None:
        """The scenario's forecast, through the API, as a workforce tool would upload it."""
        token = self.settings.admin_token()
        if token is None:
            log.warning("no admin API token: forecasts not uploaded")
            return
        start = datetime.fromtimestamp(self.sim.t0, UTC)
        for forecast in forecasts_for(self.sim.scenario, start).values():
            body = forecast.model_dump(mode="json")
            for _ in range(60):
                try:
                    r = await client.put(
                        f"{self.settings.api_url}/v1/forecast",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    if r.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(1.0)

    async def run(self, client: httpx.AsyncClient) -> None:
        """Play the scenario in real time and post what happens, in batches."""
        token = self.settings.ingest_token()
        await self.upload_forecasts(client)
        while True:
            now_s = self.settings.sim_start_s + (time.time() - self.started)
            self.backlog.extend(self.sim.advance(now_s))
            while self.backlog:
                batch = self.backlog[:500]
                try:
                    r = await client.post(
                        f"{self.settings.ingest_url}/v1/events",
                        content=orjson.dumps(batch),
                        headers={
                            "Authorization": f"Bearer {token}",
                            "content-type": "application/json",
                        },
                    )
                except httpx.HTTPError:
                    self.posted.labels("retry").inc(len(batch))
                    await asyncio.sleep(1.0)
                    break
                if r.status_code == 503:
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                    break
                self.posted.labels(str(r.status_code)).inc(len(batch))
                del self.backlog[: len(batch)]
            await asyncio.sleep(0.5)

    def obey(self, consumer: AIOKafkaConsumer, dlq: DeadLetters) -> ConsumerLoop[Command]:
        """The dispatcher's commands, carried out as they arrive (the one consumer loop)."""
        return ConsumerLoop(consumer, _decode_command, self._carry_out, dlq)

    async def _carry_out(self, _record: ConsumerRecord, command: Command) -> None:
        self.sim.apply(command)


def _decode_command(value: bytes | None) -> Command:
    try:
        return decode_command(value or b"")
    except ValueError as exc:
        raise Poison(f"not a command: {exc}"[:2000]) from None


async def _assign_at_end(consumer: AIOKafkaConsumer, topic: str) -> None:
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)


def create_app(settings: SimulatorSettings | None = None) -> FastAPI:
    """The live simulator: plays the scenario to ingest and obeys the commands topic."""
    settings = settings or SimulatorSettings()
    registry = CollectorRegistry()

    async def start(app: FastAPI, tasks: TaskGroup) -> Running:
        live = LiveSimulator(settings, registry)
        app.state.live = live
        client = httpx.AsyncClient(timeout=10)
        await ensure_topics(settings)
        producer = new_producer(settings)
        await producer.start()
        consumer = new_consumer(settings, group_id=None, auto_offset_reset="latest")
        await consumer.start()
        await _assign_at_end(consumer, settings.topic("commands"))
        dlq = DeadLetters(producer, settings.topic("dlq"))
        tasks.start("sim-run", live.run(client))
        tasks.start("sim-obey", live.obey(consumer, dlq).run())

        async def stop() -> None:
            await consumer.stop()
            await producer.stop()
            await client.aclose()

        async def ready() -> dict[str, bool]:
            return {"running": True}

        return Running(stop, ready)

    return build_app("floorwatch simulator", registry, start)
