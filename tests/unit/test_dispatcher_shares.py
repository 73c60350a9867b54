"""The dispatcher's time shares (contract 6) from the call.ended events it counts: each at
its own time, a re-delivery once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from services.dispatcher.service import DispatcherShell
from services.dispatcher.settings import DispatcherSettings
from shared.consume import Batch, decode_event_records
from shared.events import AgentEvent, CallEvent, encode_event, parse_event
from shared.fastcalls import FastEnded


def ended(event_id: str, ago_s: float, queue_id: str, talk_s: float) -> CallEvent | AgentEvent:
    at = datetime.fromtimestamp(time.time(), UTC) - timedelta(seconds=ago_s)
    return parse_event(
        {
            "event_id": event_id, "type": "call.ended", "ts": at.isoformat(),
            "call_id": f"c-{event_id}", "queue_id": queue_id, "agent_id": "a1",
            "talk_s": talk_s,
        }
    )  # fmt: skip


@pytest.mark.asyncio
async def test_shares_count_each_call_ended_at_its_own_time() -> None:
    shell = DispatcherShell(DispatcherSettings(), aioredis.Redis(), CollectorRegistry())
    # a1 handled billing 200 s and sales 100 s in the last five minutes, and support 400 s
    # six minutes ago (outside the 300 s window); billing is delivered twice
    for event in (
        ended("e1", 360.0, "support", 400.0),
        ended("e2", 100.0, "billing", 200.0),
        ended("e2", 100.0, "billing", 200.0),
        ended("e3", 50.0, "sales", 100.0),
    ):
        await shell.on_floor_event(None, event)  # type: ignore[arg-type]  # no record read
    shares = shell.shares.shares(time.time())
    assert shares == {"a1": {"billing": 200.0 / 300.0, "sales": 100.0 / 300.0}}


@pytest.mark.asyncio
async def test_shares_from_a_poll_decoded_in_one_call_are_the_same() -> None:
    shell = DispatcherShell(DispatcherSettings(), aioredis.Redis(), CollectorRegistry())
    events = [
        ended("e1", 360.0, "support", 400.0),
        ended("e2", 100.0, "billing", 200.0),
        ended("e2", 100.0, "billing", 200.0),
        ended("e3", 50.0, "sales", 100.0),
    ]
    decoded = decode_event_records([encode_event(e) for e in events])
    assert [type(e) for e in decoded] == [FastEnded] * 4  # the batch decoder's fast path
    batch = Batch([None] * 4, decoded)  # type: ignore[list-item]  # no record read
    await shell.on_floor_events(batch)  # type: ignore[arg-type]
    assert batch.done == 4
    shares = shell.shares.shares(time.time())
    assert shares == {"a1": {"billing": 200.0 / 300.0, "sales": 100.0 / 300.0}}
