"""A poll whose counting fails part way (a bug, memory): the events counted before the
failure keep everything they did (agents on the roster, time shares, metrics), and the
loop takes the rest one by one, as it did before the monitor and the dispatcher counted
a poll at a time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from services.dispatcher.service import DispatcherShell
from services.dispatcher.settings import DispatcherSettings
from services.monitor.service import MonitorMetrics, MonitorShell
from services.monitor.settings import MonitorSettings
from shared.consume import ConsumerLoop, decode_event_record, decode_event_records
from shared.core.engine import Engine


def at(ago_s: float) -> str:
    """A time `ago_s` before now (taken when the test runs: the shares are of the last
    five minutes, and a suite can run longer than that)."""
    return (datetime.now(UTC) - timedelta(seconds=ago_s)).isoformat()


def records(events: list[dict[str, Any]]) -> list[ConsumerRecord]:
    return [
        ConsumerRecord(
            topic="floorwatch.events", partition=0, offset=i, timestamp=0, timestamp_type=0,
            key=None, value=orjson.dumps(e), checksum=None, serialized_key_size=0,
            serialized_value_size=0, headers=(),
        )
        for i, e in enumerate(events)
    ]  # fmt: skip


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[int] = []

    async def send(self, record: ConsumerRecord, reason: str) -> None:
        self.sent.append(record.offset)


@pytest.fixture
def fails_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first callback completion counted raises (it stands for any failure)."""
    real = Engine._callback_completed
    failed: list[bool] = []

    def once(self: Engine, *args: Any) -> None:
        if not failed:
            failed.append(True)
            raise RuntimeError("counting failed")
        real(self, *args)

    monkeypatch.setattr(Engine, "_callback_completed", once)


def completed() -> dict[str, Any]:
    return {"event_id": "k3", "type": "call.callback_completed", "ts": at(80),
            "call_id": "c3", "queue_id": "sales", "outcome": "no_answer"}  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.usefixtures("fails_once")
async def test_the_monitor_keeps_what_a_failed_poll_counted_before_the_failure() -> None:
    registry = CollectorRegistry()
    shell = MonitorShell(MonitorSettings(), aioredis.Redis(), MonitorMetrics(registry))
    shell.producer = object()  # type: ignore[assignment]  # the DLQ is replaced below
    loop = shell.loop(None, False)  # type: ignore[arg-type]  # no consumer: one poll by hand
    loop.dlq = dlq = DeadLetters()  # type: ignore[assignment]
    state = {"type": "agent.state", "state": "available"}
    await loop.many(
        records([
            {"event_id": "s1", "ts": at(100), "agent_id": "a1", **state},
            {"event_id": "q1", "type": "call.queued", "ts": at(95), "call_id": "c1",
             "queue_id": "billing"},
            {"event_id": "s2", "ts": at(90), "agent_id": "a2", **state},
            completed(),
            {"event_id": "s3", "ts": at(70), "agent_id": "a3", **state},
        ])
    )  # fmt: skip

    def events(outcome: str) -> float | None:
        return registry.get_sample_value("floorwatch_monitor_events_total", {"outcome": outcome})

    # before the failure: a1, a2 and the call counted; the failed completion is then seen
    # before (its id was claimed) and skipped; after it, a3 counted one by one
    assert sorted(shell.roster._seen) == ["a1", "a2", "a3"]
    assert (events("counted"), events("skipped"), shell.processed) == (4.0, 1.0, 5)
    assert dlq.sent == []


@pytest.mark.asyncio
@pytest.mark.usefixtures("fails_once")
async def test_the_dispatcher_keeps_the_shares_of_a_failed_poll() -> None:
    shell = DispatcherShell(DispatcherSettings(), aioredis.Redis(), CollectorRegistry())
    loop = ConsumerLoop(
        None, decode_event_record, shell.on_floor_event, DeadLetters(),  # type: ignore[arg-type]
        decode_many=decode_event_records, handle_many=shell.on_floor_events,
    )  # fmt: skip
    ended = {"type": "call.ended", "agent_id": "a1"}
    await loop.many(
        records([
            {"event_id": "e1", "ts": at(100), "call_id": "c1", "queue_id": "billing",
             "talk_s": 200, **ended},
            {"event_id": "e2", "ts": at(90), "call_id": "c2", "queue_id": "sales",
             "talk_s": 100, **ended},
            completed(),
            {"event_id": "e4", "ts": at(70), "call_id": "c4", "queue_id": "support",
             "talk_s": 300, **ended},
        ])
    )  # fmt: skip
    shares = shell.shares.shares(time.time())
    assert shares == {"a1": {"billing": 200 / 600, "sales": 100 / 600, "support": 300 / 600}}
