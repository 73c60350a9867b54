"""Intervals on the real broker and Redis: events in, intervals closed by the monitor,
exact numbers out of `GET /v1/intervals`; kept across a restart; rebuilt from Kafka.

The trace is the hand-worked one of tests/unit/test_intervals.py, moved to the two
15-minute intervals before the current one: P1 = (B - 1800, B - 900] and
P2 = (B - 900, B], B the current interval's start. The monitor starts after both ended
and closes them from the events it reads back (they are within its rewind).
P1: arrivals 7, offered 4, within target 1, answer rate 1/4, abandon rate 1/4, AHT 250,
ASA 40, agents required 4 (Erlang A: 7/900 calls/s, 250 s, patience 243/2 s).
P2: arrivals 1, offered 3, within target 2, answer rate 2/3, abandon rate 0, AHT 120,
ASA 20, agents required 2 (Erlang C: no caller gave up). No agent: the monitor saw no
tick of either interval, so the staffed average is null.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from services.monitor.app import create_app as create_monitor
from services.monitor.rebuild import rebuild
from services.monitor.settings import MonitorSettings
from shared.core.intervals import local_midnight
from shared.localstack import LocalStack
from shared.timefmt import iso_ms
from tests.integration.conftest import monitor_and_api, produce_events, serve

VIEWER = {"Authorization": "Bearer v-secret"}
SCOPED = {"Authorization": "Bearer s-secret"}
NORTH = {"Authorization": "Bearer n-secret"}
_n = 0


def trace(base: float) -> list[dict[str, Any]]:
    """The hand-worked trace, `base` being P1's start."""

    def ev(kind: str, at: float, cid: str, **fields: object) -> dict[str, Any]:
        global _n
        _n += 1
        ts = datetime.fromtimestamp(base + at, UTC).isoformat()
        return {"event_id": f"i{_n}", "type": f"call.{kind}", "ts": ts, "call_id": cid,
                "queue_id": "billing", **fields}  # fmt: skip

    return [
        ev("queued", 60, "c1", site="north"),
        ev("answered", 80, "c1", agent_id="a1"),
        ev("ended", 300, "c1", agent_id="a1", talk_s=180, hold_s=20, wrap_s=40),
        ev("queued", 120, "c2", site="north"),
        ev("answered", 180, "c2", agent_id="a1"),
        ev("ended", 480, "c2", agent_id="a1", talk_s=200, wrap_s=60),
        ev("queued", 240, "c3", site="south"),
        ev("abandoned", 243, "c3"),
        ev("queued", 300, "c4", site="south"),
        ev("abandoned", 400, "c4"),
        ev("queued", 420, "c5", site="north"),
        ev("callback_requested", 480, "c5"),
        ev("queued", 890, "c6", site="north"),
        ev("queued", 900, "c7", site="north"),  # P1's last instant
        ev("answered", 910, "c7", agent_id="a1"),
        ev("answered", 920, "c6", agent_id="a1"),
        ev("queued", 1200, "c8", site="south"),
        ev("overflowed", 1260, "c8", to_queue_id="other"),
        ev("ended", 1500, "c6", agent_id="a1", talk_s=100, wrap_s=20),
    ]


def expected(base: float) -> list[dict[str, Any]]:
    common = {"queue_id": "billing", "site": None, "agents_staffed_avg": None}
    return [
        {**common, "start": iso_ms(base), "end": iso_ms(base + 900), "arrivals": 7,
         "forecast": 6.0, "offered": 4, "answered_within_target": 1, "answer_rate": 0.25,
         "abandon_rate": 0.25, "aht_s": 250.0, "asa_s": 40.0, "agents_required": 4},
        {**common, "start": iso_ms(base + 900), "end": iso_ms(base + 1800), "arrivals": 1,
         "forecast": 4.0, "offered": 3, "answered_within_target": 2,
         "answer_rate": pytest.approx(2 / 3), "abandon_rate": 0.0, "aht_s": 120.0,
         "asa_s": 20.0, "agents_required": 2},
    ]  # fmt: skip


@pytest.fixture
async def env(stack: LocalStack, prefix: str) -> AsyncIterator[tuple[MonitorSettings, str]]:
    tokens = "v:viewer:v-secret,s:viewer:s-secret:queue=sales,n:viewer:n-secret:site=north"
    async with monitor_and_api(stack, prefix, tokens) as both:
        yield both


async def stored(client: aioredis.Redis, prefix: str, count: int) -> list[bytes]:
    """billing's queue-level intervals in Redis, once there are `count` (20 s at most)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = await client.zrange(f"{prefix}intervals:queue:billing", 0, -1)
        members = [m for m in found if isinstance(m, bytes)]
        if len(members) >= count:
            return members
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} intervals never stored")


async def test_events_in_intervals_out_kept_across_a_restart_and_rebuilt(
    env: tuple[MonitorSettings, str], stack: LocalStack, prefix: str
) -> None:
    settings, url = env
    if time.time() % 900 > 840:  # no interval may end while the test runs
        await asyncio.sleep(900 - time.time() % 900 + 1)
    now = time.time()
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        await check(client, settings, url, stack, prefix, now)
    finally:
        await client.aclose()


async def check(
    client: aioredis.Redis, settings: MonitorSettings, url: str, stack: LocalStack,
    prefix: str, now: float,
) -> None:  # fmt: skip
    base = math.floor(now / 900) * 900 - 1800
    forecast = {"queue_id": "billing", "start": iso_ms(base), "interval_s": 900,
                "arrivals": [6, 4]}  # fmt: skip
    await client.hset(f"{prefix}forecasts", "billing", orjson.dumps(forecast))
    await produce_events(stack, prefix, trace(base))
    query = {"queue_id": "billing", "from": iso_ms(base), "to": iso_ms(base + 1800)}
    async with httpx.AsyncClient(base_url=url) as http:
        async with serve(create_monitor(settings)):
            first = await stored(client, prefix, 2)
        r = await http.get("/v1/intervals", params=query, headers=VIEWER)
        assert r.status_code == 200
        body = r.json()
        assert (body["queue_id"], body["site"], body["from"], body["to"]) == (
            "billing", None, iso_ms(base), iso_ms(base + 1800),
        )  # fmt: skip
        assert body["intervals"] == expected(base)

        north = await http.get("/v1/intervals", params={**query, "site": "north"}, headers=VIEWER)
        assert [(i["arrivals"], i["offered"], i["answered_within_target"], i["site"])
                for i in north.json()["intervals"]] == [(5, 3, 1, "north"), (0, 2, 2, "north")]  # fmt: skip
        # a token of site north sees billing (served there) and north's intervals, not south's
        mine = await http.get("/v1/intervals", params={**query, "site": "north"}, headers=NORTH)
        assert mine.json() == north.json()
        theirs = await http.get("/v1/intervals", params={**query, "site": "south"}, headers=NORTH)
        assert (theirs.status_code, theirs.json()) == (404, {"error": "site 'south' not found"})

        # a restart goes on from where the stored intervals end, and sums today from them
        async with serve(create_monitor(settings)):
            today = await today_of(client, prefix)
        assert await client.zrange(f"{prefix}intervals:queue:billing", 0, -1) == first
        midnight = local_midnight(now, "UTC")
        arrivals = (7 if base >= midnight else 0) + (1 if base + 900 >= midnight else 0)
        assert (today["arrivals"], today["start"]) == (arrivals, iso_ms(midnight))

        # lost from Redis, rebuilt from Kafka: the same figures (the rebuild's own ticks
        # saw no agent staffed: 0 rather than unseen)
        await client.delete(f"{prefix}intervals:queue:billing")
        await rebuild(settings, base, base + 1800)
        again = await http.get("/v1/intervals", params=query, headers=VIEWER)
        assert again.json()["intervals"] == [
            {**i, "agents_staffed_avg": 0.0} for i in expected(base)
        ]


async def today_of(client: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """billing's `today` from the snapshot in Redis, once a tick after the restart wrote it."""
    await client.hdel(f"{prefix}snapshots", "billing")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        raw = await client.hget(f"{prefix}snapshots", "billing")
        if raw is not None and orjson.loads(raw).get("today") is not None:
            today: dict[str, Any] = orjson.loads(raw)["today"]
            return today
        await asyncio.sleep(0.1)
    raise AssertionError("no snapshot with today")


async def test_bad_ranges_and_scopes_are_refused(env: tuple[MonitorSettings, str]) -> None:
    _, url = env
    async with httpx.AsyncClient(base_url=url) as http:
        cases = [
            ({"queue_id": "billing", "from": "yesterday"}, VIEWER, 422),
            ({"queue_id": "billing", "to": "2026-11-11T10:00:00"}, VIEWER, 422),
            ({"queue_id": "billing", "from": "2026-11-11T10:00:00Z",
              "to": "2026-11-11T09:00:00Z"}, VIEWER, 422),
            ({"queue_id": "billing", "from": "2026-10-01T00:00:00Z",
              "to": "2026-11-11T00:00:00Z"}, VIEWER, 422),
            ({"from": "2026-11-11T00:00:00Z"}, VIEWER, 422),
            ({"queue_id": "billing"}, SCOPED, 404),
        ]  # fmt: skip
        answers = []
        for params, headers, _ in cases:
            r = await http.get("/v1/intervals", params=params, headers=headers)
            answers.append((r.status_code, r.json()))
        assert answers == [
            (422, {"error": "from: Invalid isoformat string: 'yesterday' (an RFC 3339 "
                            "timestamp with an offset)"}),
            (422, {"error": "to: '2026-11-11T10:00:00': timestamp must include a UTC offset "
                            "(an RFC 3339 timestamp with an offset)"}),
            (422, {"error": "to: must be after from"}),
            (422, {"error": "from, to: at most 35 days apart (intervals are kept 35 days)"}),
            (422, {"error": "queue_id: required (the queue whose intervals to show)"}),
            (404, {"error": "queue 'billing' not found"}),
        ]  # fmt: skip
        empty = await http.get(
            "/v1/intervals",
            params={"queue_id": "sales", "from": "2026-11-11T00:00:00Z",
                    "to": "2026-11-12T00:00:00Z"},
            headers=SCOPED,
        )  # fmt: skip
        assert empty.json() == {
            "queue_id": "sales", "site": None, "from": "2026-11-11T00:00:00.000Z",
            "to": "2026-11-12T00:00:00.000Z", "intervals": [],
        }  # fmt: skip
