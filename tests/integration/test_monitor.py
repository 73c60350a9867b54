"""The monitor service on the real broker and Redis: snapshots, restarts, DLQ, tiers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from services.monitor.app import create_app
from services.monitor.replay import replay
from shared.kafka import ensure_topics
from shared.localstack import LocalStack
from shared.timefmt import parse_ts
from tests.integration.conftest import monitor_settings, serve
from tests.integration.conftest import produce_events as produce
from tests.integration.test_ingest import read_topic


def stamp(offset_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def trace(n: int, start: int = 0) -> list[dict[str, object]]:
    """Calls in queues a and b a few seconds to minutes old, with a duplicate and agents."""
    out: list[dict[str, object]] = []
    for i in range(start, start + n):
        queue = "a" if i % 3 else "b"
        base = {"call_id": f"c{i}", "queue_id": queue}
        out.append({"event_id": f"q{i}", "type": "call.queued", "ts": stamp(-200 + i), **base})
        if i % 4 == 0:
            out.append(
                {"event_id": f"x{i}", "type": "call.abandoned", "ts": stamp(-190 + i), **base}
            )
        elif i % 4 != 3:
            out.append(
                {"event_id": f"r{i}", "type": "call.answered", "ts": stamp(-200 + i + 7 * (i % 7)),
                 "agent_id": "ag1", **base}
            )  # fmt: skip
    out.append(dict(out[1]))  # a redelivery
    out.append(
        {"event_id": "s1", "type": "agent.skills", "ts": stamp(-300), "agent_id": "ag1",
         "skills": [{"queue_id": "a", "level": 5}, {"queue_id": "b", "level": 3}]}
    )  # fmt: skip
    out.append(
        {
            "event_id": "s2",
            "type": "agent.state",
            "ts": stamp(-250),
            "agent_id": "ag1",
            "state": "busy",
        }
    )
    return out


async def wait_for(
    client: aioredis.Redis, prefix: str, ok: Callable[[dict[str, dict[str, object]]], bool]
) -> dict[str, dict[str, object]]:
    """The latest snapshots in Redis, once `ok` holds of them (10 s at most)."""
    deadline = time.monotonic() + 10
    snaps: dict[str, dict[str, object]] = {}
    while time.monotonic() < deadline:
        raw = await client.hgetall(f"{prefix}snapshots")
        snaps = {k.decode(): orjson.loads(v) for k, v in raw.items()}
        if snaps and ok(snaps):
            return snaps
        await asyncio.sleep(0.1)
    raise AssertionError(f"snapshots never matched: {snaps}")


@pytest.fixture
async def redis_client(stack: LocalStack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


def replayed(raws: list[dict[str, object]], as_of: str) -> dict[str, object]:
    body, bad = replay([orjson.dumps(r) for r in raws], parse_ts(as_of))
    assert bad == []
    return {q["queue_id"]: comparable(q) for q in body["queues"]}  # type: ignore[attr-defined]


# today's staffed average is weighted by the ticks a monitor saw, and its agents required
# by the intervals it closed: a replay at one instant sees neither
BY_TICKS = ("agents_staffed_avg", "agents_required")


def comparable(snap: dict[str, object]) -> dict[str, object]:
    """A snapshot without the figures of `today` that depend on the ticks seen."""
    today = snap.get("today")
    if not isinstance(today, dict):
        return snap
    return {**snap, "today": {k: v for k, v in today.items() if k not in BY_TICKS}}


def as_replayed(raws: list[dict[str, object]]) -> Callable[[dict[str, dict[str, object]]], bool]:
    """True once every queue's snapshot is the replay of `raws` at its `as_of`: a tick
    may come between two polls, with a queue's arrivals counted and its answers not yet."""

    def ok(snaps: dict[str, dict[str, object]]) -> bool:
        as_of = {str(s["as_of"]) for s in snaps.values()}
        if len(as_of) != 1:
            return False
        return {q: comparable(s) for q, s in snaps.items()} == replayed(raws, as_of.pop())

    return ok


def counted(n: int) -> Callable[[dict[str, dict[str, object]]], bool]:
    """True once the 300 s window holds n arrivals over both queues, and the agent is in."""
    return lambda s: (
        sum(q["windows"]["300"]["arrivals"] for q in s.values()) == n  # type: ignore[index]
        and all(q["agents"]["staffed"] == 1 for q in s.values())  # type: ignore[index]
    )


async def test_snapshots_match_replay_and_survive_a_restart(
    stack: LocalStack, prefix: str, redis_client: aioredis.Redis
) -> None:
    settings = monitor_settings(stack, prefix)
    await ensure_topics(settings)
    first, second = trace(30), trace(20, start=30)
    await produce(stack, prefix, first)
    async with serve(create_app(settings)):
        snaps = await wait_for(redis_client, prefix, counted(30))
        assert snaps["a"]["agents"] == {
            "available": 0,
            "busy": 1,
            "wrap_up": 0,
            "not_ready": 0,
            "staffed": 1,
        }
        await wait_for(redis_client, prefix, as_replayed(first))
    await produce(stack, prefix, second + first[:5])  # more, and redeliveries of old ones
    async with serve(create_app(settings)):  # a new process: rebuilt from Kafka
        await wait_for(redis_client, prefix, counted(50))
        await wait_for(redis_client, prefix, as_replayed(first + second))
    metrics = await read_topic(stack.bootstrap, prefix + "metrics", 2)
    assert {(k, v["queue_id"]) for k, v in metrics} == {(b"a", "a"), (b"b", "b")}


async def test_garbage_goes_to_the_dlq_and_the_next_event_counts(
    stack: LocalStack, prefix: str, redis_client: aioredis.Redis
) -> None:
    settings = monitor_settings(stack, prefix)
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    bad_event = {
        "event_id": "b1",
        "type": "call.queued",
        "ts": "2026-11-11T20:00:00",
        "call_id": "c",
        "queue_id": "z",
    }
    try:
        await producer.send_and_wait(prefix + "events", b"\xff not json", key=b"z", partition=0)
        await producer.send_and_wait(
            prefix + "events", orjson.dumps(bad_event), key=b"z", partition=0
        )
    finally:
        await producer.stop()
    await produce(
        stack,
        prefix,
        [
            {
                "event_id": "g1",
                "type": "call.queued",
                "ts": stamp(-5),
                "call_id": "c",
                "queue_id": "z",
            }
        ],
    )
    async with serve(create_app(settings)):
        snaps = await wait_for(redis_client, prefix, lambda s: "z" in s)
    assert snaps["z"]["waiting"] == 1
    dlq = await read_topic(stack.bootstrap, prefix + "dlq", 2)
    reasons = sorted((v["topic"], v["partition"], v["offset"], v["reason"]) for _, v in dlq)  # type: ignore[type-var]
    assert reasons[0][:3] == (prefix + "events", 0, 0)
    assert str(reasons[0][3]).startswith("not JSON: ")
    assert reasons[1] == (prefix + "events", 0, 1, "ts: timestamp must include a UTC offset")


async def test_tiers_rise_on_a_forecast_and_clear(
    stack: LocalStack, prefix: str, redis_client: aioredis.Redis
) -> None:
    settings = monitor_settings(stack, prefix)
    await ensure_topics(settings)
    # 10 arrivals expected per 60 s window; tiers clear after 1 s below their exit line
    forecast = {"queue_id": "s", "start": stamp(-3600), "interval_s": 60, "arrivals": [10] * 180}
    await redis_client.hset(f"{prefix}forecasts", "s", orjson.dumps(forecast))
    # one 60 s surge window; a loose significance level, so that 13 against 10 (p = 0.21)
    # indicates tier 1 here as the ratio alone would
    queue_settings = {
        "surge_window_s": 60, "surge_windows_s": [60], "surge_p_value": 0.5,
        "clear_after_s": 1, "windows_s": [60, 300],
    }  # fmt: skip
    await redis_client.hset(f"{prefix}settings:queues", "s", orjson.dumps(queue_settings))

    def arrivals(n: int, tag: str) -> list[dict[str, object]]:
        return [
            {"event_id": f"{tag}{i}", "type": "call.queued", "ts": stamp(-30 + i * 0.1), "call_id": f"{tag}{i}",
             "queue_id": "s"}
            for i in range(n)
        ]  # fmt: skip

    def tier(n: int) -> Callable[[dict[str, dict[str, object]]], bool]:
        return lambda s: "s" in s and s["s"]["surge"]["tier"] == n  # type: ignore[index]

    async with serve(create_app(settings)):
        await produce(stack, prefix, arrivals(13, "a"))  # ratio 1.3
        snap = await wait_for(redis_client, prefix, tier(1))
        assert (snap["s"]["surge"]["arrivals"], snap["s"]["surge"]["expected"]) == (
            13,
            pytest.approx(10.0),
        )  # type: ignore[index]
        await produce(stack, prefix, arrivals(3, "b"))  # 16: ratio 1.6
        await wait_for(redis_client, prefix, tier(2))
        await produce(stack, prefix, arrivals(5, "c"))  # 21: ratio 2.1
        await wait_for(redis_client, prefix, tier(3))
        # the surge window empties 60 s after the arrivals; then each tier steps down
        # 1 s after the one above. Waiting that long is needless: move the window.
        moved = {**queue_settings, "surge_window_s": 10, "surge_windows_s": [10]}
        await redis_client.hset(f"{prefix}settings:queues", "s", orjson.dumps(moved))
        await wait_for(redis_client, prefix, tier(0))
    alerts = await read_topic(stack.bootstrap, prefix + "alerts", 6)
    moves = ("raised", "escalated", "deescalated", "cleared")  # not the numbers-now updates
    surge = [
        (v["transition"], v["tier"])
        for _, v in alerts
        if v["kind"] == "surge" and v["transition"] in moves
    ]
    assert surge == [
        ("raised", 1),
        ("escalated", 2),
        ("escalated", 3),
        ("deescalated", 2),
        ("deescalated", 1),
        ("cleared", 0),
    ]
    assert len({v["alert_id"] for _, v in alerts if v["kind"] == "surge"}) == 1


async def test_two_monitors_split_the_queues_and_agree_with_replay(
    stack: LocalStack, prefix: str, redis_client: aioredis.Redis
) -> None:
    settings = monitor_settings(stack, prefix)
    await ensure_topics(settings)
    events = trace(30)
    await produce(stack, prefix, events)
    first, second = create_app(settings), create_app(settings)
    async with serve(first), serve(second):
        await wait_for(redis_client, prefix, counted(30))
        shells = [first.state.shell, second.state.shell]
        deadline = time.monotonic() + 20
        while not all(s.owned and not s.catching_up for s in shells):  # both members settled
            assert time.monotonic() < deadline, "the two monitors never split the partitions"
            await asyncio.sleep(0.05)
        ticked = [s.last_tick.as_of if s.last_tick else 0.0 for s in shells]
        while not all(
            s.last_tick and s.last_tick.as_of > t for s, t in zip(shells, ticked, strict=True)
        ):
            assert time.monotonic() < deadline, "a monitor stopped ticking"
            await asyncio.sleep(0.05)  # and both ticked since
    published = await read_topic(stack.bootstrap, prefix + "metrics", 1, settle_s=1.0)
    settled = [
        v for _, v in published if v["windows"]["300"]["arrivals"] > 0 or v["agents"]["staffed"]
    ]
    last = max(parse_ts(str(v["as_of"])) for v in settled)
    recent = [v for _, v in published if parse_ts(str(v["as_of"])) >= last - 2.0]  # last 2 s
    assert {v["queue_id"] for v in recent} == {"a", "b"}
    for snap in recent:  # whoever published it, every snapshot is the replay's
        assert comparable(snap) == replayed(events, str(snap["as_of"]))[snap["queue_id"]]


async def test_snapshots_carry_the_dispatchers_staffing_while_it_leads(
    stack: LocalStack, prefix: str, redis_client: aioredis.Redis
) -> None:
    """`staffing` is what the leading dispatcher last stored for the queue; null for a
    queue it has not sized, and for every queue once its entry is gone."""
    settings = monitor_settings(stack, prefix)
    await ensure_topics(settings)
    await produce(stack, prefix, trace(12))
    sized = {"needed": 7, "have": 4.5, "lent": 0, "borrowed": 2}
    await redis_client.hset(f"{prefix}staffing", "a", orjson.dumps(sized))
    async with serve(create_app(settings)):
        snaps = await wait_for(redis_client, prefix, lambda s: {"a", "b"} <= set(s))
        assert (snaps["a"]["staffing"], snaps["b"]["staffing"]) == (sized, None)
        await redis_client.delete(f"{prefix}staffing")
        snaps = await wait_for(redis_client, prefix, lambda s: s["a"]["staffing"] is None)
        assert snaps["b"]["staffing"] is None


async def test_a_monitor_holds_at_most_its_cap_and_says_how_many_it_forgot(
    stack: LocalStack, prefix: str, redis_client: aioredis.Redis
) -> None:
    """1,100 calls against a cap of 1,000: past the cap the oldest go (down to nine
    tenths of it), counted on `/metrics`; what is held plus what was forgotten is all."""
    settings = monitor_settings(stack, prefix).model_copy(update={"monitor_max_events": 1000})
    await ensure_topics(settings)
    calls = [
        {"event_id": f"k{i}", "type": "call.queued", "ts": stamp(-240 + i * 0.2),
         "call_id": f"k{i}", "queue_id": "cap"}
        for i in range(1100)
    ]  # fmt: skip
    await produce(stack, prefix, calls)
    app = create_app(settings)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        engine = app.state.shell.monitor.engine
        deadline = time.monotonic() + 20
        while engine.capped_events + len(engine.log) < 1100 or engine.capped_events == 0:
            assert time.monotonic() < deadline, (engine.capped_events, len(engine.log))
            await asyncio.sleep(0.1)
        held, forgot = len(engine.log), engine.capped_events
        assert (held + forgot, held <= 1000, forgot >= 100) == (1100, True, True)
        metrics = (await client.get("/metrics")).text
        assert f"floorwatch_monitor_events_capped {float(forgot)}" in metrics
