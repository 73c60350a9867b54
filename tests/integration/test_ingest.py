"""Contract section 2, row by row, against the real local broker and Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.events import decode_event
from shared.localstack import LocalStack, kafka_server
from tests.conftest import T0, iso
from tests.integration.conftest import serve

AUTH = {"Authorization": "Bearer s3cret"}
NOW = T0.timestamp() + 60  # ingest's clock in these tests: a minute after 20:00:00Z


def clock() -> float:
    return NOW


def queued(n: int, queue: str = "billing") -> dict[str, object]:
    return {
        "event_id": f"e{n}",
        "type": "call.queued",
        "ts": iso(n),
        "call_id": f"c{n}",
        "queue_id": queue,
    }


def settings_for(bootstrap: str, redis_url: str, prefix: str) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap=bootstrap,
        redis_url=redis_url,
        topic_prefix=prefix,
        ingest_tokens="pbx-a:s3cret,pbx-b:other",
        ingest_produce_timeout_s=3.0,
    )


@pytest.fixture
async def ingest(stack: LocalStack, prefix: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(stack.bootstrap, stack.redis_url, prefix), clock)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def read_topic(
    bootstrap: str, topic: str, expect: int, settle_s: float = 0.3
) -> list[tuple[bytes, dict[str, object]]]:
    """Every record of a topic as (key, value): waits for `expect`, then `settle_s` for more."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        parts = consumer.partitions_for_topic(topic)
        while not parts and loop.time() < deadline:
            await consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
            parts = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts or [])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[bytes, dict[str, object]]] = []
        quiet_until = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                out.extend((r.key, orjson.loads(r.value)) for r in records)
            if len(out) >= expect and quiet_until is None:
                quiet_until = loop.time() + settle_s
            if quiet_until is not None and loop.time() >= quiet_until:
                break
        return out
    finally:
        await consumer.stop()


async def test_single_event_accepted_and_in_kafka_keyed_by_queue(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    r = await ingest.post("/v1/events", json=queued(1), headers=AUTH)
    assert r.status_code == 202
    assert r.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    records = await read_topic(stack.bootstrap, prefix + "events", 1)
    assert records == [
        (
            b"billing",
            {
                "event_id": "e1",
                "type": "call.queued",
                "ts": "2026-11-11T20:00:01Z",
                "call_id": "c1",
                "queue_id": "billing",
                "priority": 2,
                "channel": "voice",
                "source": "pbx-a",
            },
        )
    ]


async def test_mixed_batch_keeps_valid_events_and_names_each_error(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    naive = {**queued(2), "ts": "2026-11-11T20:00:02"}
    agent = {
        "event_id": "a1",
        "type": "agent.state",
        "ts": iso(3),
        "agent_id": "ag7",
        "state": "available",
        "desk": "4F",  # unknown fields are passed through
    }
    bad_wait = {
        "event_id": "x1",
        "type": "call.answered",
        "ts": iso(4),
        "call_id": "c1",
        "queue_id": "billing",
        "wait_s": -3,
    }
    body = [queued(1), naive, agent, bad_wait, {"type": "call.teleported"}, "text"]
    r = await ingest.post("/v1/events", json=body, headers=AUTH)
    assert r.status_code == 202
    assert r.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": [
            {"index": 1, "event_id": "e2", "errors": ["ts: timestamp must include a UTC offset"]},
            {
                "index": 3,
                "event_id": "x1",
                "errors": ["agent_id: field required", "wait_s: must be >= 0.0"],
            },
            {
                "index": 4,
                "event_id": None,
                "errors": [
                    "type: must be one of call.queued, call.answered, call.abandoned, "
                    "call.overflowed, call.callback_requested, call.callback_completed, "
                    "call.ended, agent.state, agent.skills"
                ],
            },
            {"index": 5, "event_id": None, "errors": ["event must be a JSON object"]},
        ],
    }
    calls = await read_topic(stack.bootstrap, prefix + "events", 1)
    agents = await read_topic(stack.bootstrap, prefix + "agents", 1)
    assert [(k, v["event_id"]) for k, v in calls] == [(b"billing", "e1")]
    assert [(k, v["event_id"], v["desk"]) for k, v in agents] == [(b"ag7", "a1", "4F")]


async def test_repeats_are_acknowledged_and_counted_once(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    r1 = await ingest.post("/v1/events", json=[queued(1), queued(2), queued(1)], headers=AUTH)
    assert r1.status_code == 202
    assert r1.json() == {"accepted": 2, "duplicates": 1, "rejected": []}
    r2 = await ingest.post("/v1/events", json=[queued(2), queued(3)], headers=AUTH)
    assert r2.json() == {"accepted": 1, "duplicates": 1, "rejected": []}
    r3 = await ingest.post("/v1/events", json=queued(3), headers=AUTH)
    assert (r3.status_code, r3.json()) == (202, {"accepted": 0, "duplicates": 1, "rejected": []})
    # the same event_id from another source is another event (ids are unique per source)
    r4 = await ingest.post("/v1/events", json=queued(3), headers={"Authorization": "Bearer other"})
    assert r4.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    records = await read_topic(stack.bootstrap, prefix + "events", 4)
    assert sorted((v["source"], v["event_id"]) for _, v in records) == [
        ("pbx-a", "e1"),
        ("pbx-a", "e2"),
        ("pbx-a", "e3"),
        ("pbx-b", "e3"),
    ]


async def test_no_valid_event_is_422_with_the_same_shape(ingest: httpx.AsyncClient) -> None:
    r = await ingest.post("/v1/events", json=[{**queued(1), "queue_id": ""}], headers=AUTH)
    assert r.status_code == 422
    assert r.json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [
            {
                "index": 0,
                "event_id": "e1",
                "errors": ["queue_id: String should have at least 1 character"],
            }
        ],
    }


async def test_body_not_json_is_400(ingest: httpx.AsyncClient) -> None:
    r = await ingest.post("/v1/events", content=b"{not json", headers=AUTH)
    assert r.status_code == 400
    assert r.json()["error"].startswith("body is not JSON: ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            orjson.dumps([queued(i) for i in range(1001)]),
            "1001 events in one request; at most 1000",
        ),
        (b"[" + b" " * (1024 * 1024) + b"]", "body of 1048578 bytes; at most 1048576"),
    ],
)
async def test_too_many_events_or_bytes_is_413(
    ingest: httpx.AsyncClient, content: bytes, message: str
) -> None:
    r = await ingest.post("/v1/events", content=content, headers=AUTH)
    assert (r.status_code, r.json()) == (413, {"error": message})


async def test_size_limit_holds_without_content_length(ingest: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    r = await ingest.post("/v1/events", content=chunks(), headers=AUTH)
    assert (r.status_code, r.json()) == (413, {"error": "body larger than 1048576 bytes"})


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret"}]
)
async def test_missing_or_wrong_token_is_401(
    ingest: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await ingest.post("/v1/events", json=queued(1), headers=headers)
    assert (r.status_code, r.json()) == (401, {"error": "missing or wrong bearer token"})


async def test_readyz_reports_broker_and_redis(ingest: httpx.AsyncClient) -> None:
    r = await ingest.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"ready": True, "broker": True, "redis": True})


async def test_metrics_count_by_source_type_and_outcome(ingest: httpx.AsyncClient) -> None:
    await ingest.post("/v1/events", json=[queued(1), queued(1), {"x": 1}], headers=AUTH)
    text = (await ingest.get("/metrics")).text
    assert (
        'floorwatch_ingest_events_total{outcome="accepted",source="pbx-a",type="call.queued"} 1.0'
        in text
    )
    assert (
        'floorwatch_ingest_events_total{outcome="rejected",source="pbx-a",type="invalid"} 1.0'
        in text
    )
    assert (
        'floorwatch_ingest_events_total{outcome="duplicate",source="pbx-a",type="repeat"} 1.0'
        in text
    )


async def test_broker_outage_is_503_then_every_event_lands_once(
    stack: LocalStack, prefix: str, tmp_path: Path
) -> None:
    broker = kafka_server(tmp_path)
    broker.start()
    bootstrap = f"127.0.0.1:{broker.port}"
    app = create_app(settings_for(bootstrap, stack.redis_url, prefix), clock)
    try:
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = await client.post("/v1/events", json=[queued(1), queued(2)], headers=AUTH)
            assert first.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
            broker.stop()
            down = await client.post("/v1/events", json=[queued(3), queued(4)], headers=AUTH)
            assert down.status_code == 503
            assert down.headers["retry-after"] == "2"
            assert down.json()["error"].startswith("broker unavailable, nothing acknowledged")
            broker.start()  # a restarted local broker has lost its topics
            again = await client.post("/v1/events", json=[queued(3), queued(4)], headers=AUTH)
            assert again.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
            # anything left over from the failed request would show within the settle time
            records = await read_topic(bootstrap, prefix + "events", 2, settle_s=2.0)
            assert sorted(str(v["event_id"]) for _, v in records) == ["e3", "e4"]
    finally:
        broker.stop()


# ---- issue 13: bounds, lost ids, strict numbers, source, rate, queue cap, overload ------


def answered(n: int, **fields: object) -> dict[str, object]:
    return {
        "event_id": f"a{n}",
        "type": "call.answered",
        "ts": iso(n),
        "call_id": f"c{n}",
        "queue_id": "billing",
        "agent_id": "ann",
        **fields,
    }


def nested(levels: int) -> object:
    """`levels` objects one inside the other: {"a": {"a": ... 1}}."""
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


async def test_ts_is_bounded_by_ingest_clock(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    # the clock is 20:01:00Z: 300 s ahead is 20:06:00Z, 7 days (604,800 s) behind 20:01:00Z
    week = 7 * 86400
    pinned = {"event_id": "s1", "type": "agent.state", "ts": "2099-01-01T00:00:00Z",
              "agent_id": "ann", "state": "available"}  # fmt: skip
    body = [queued(360), queued(361), queued(60 - week), queued(59 - week), pinned]
    r = await ingest.post("/v1/events", json=body, headers=AUTH)
    ahead = "ts: more than 300 s ahead of ingest's clock (max_future_skew_s)"
    behind = "ts: more than 604800 s behind ingest's clock (max_age_s)"
    assert (r.status_code, r.json()) == (
        202,
        {
            "accepted": 2,
            "duplicates": 0,
            "rejected": [
                {"index": 1, "event_id": "e361", "errors": [ahead]},
                {"index": 3, "event_id": f"e{59 - week}", "errors": [behind]},
                {"index": 4, "event_id": "s1", "errors": [ahead]},
            ],
        },
    )
    calls = await read_topic(stack.bootstrap, prefix + "events", 2)
    assert sorted(str(v["ts"]) for _, v in calls) == [
        "2026-11-04T20:01:00Z",
        "2026-11-11T20:06:00Z",
    ]


async def test_deep_nesting_is_422_for_that_event_and_a_corrected_retry_is_accepted(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    # the event object is level 1: 31 levels inside it make 32 (allowed), 32 make 33
    ok = {**queued(1), "extra": nested(31)}
    deep = {**queued(2), "extra": nested(32)}
    very = {**queued(3), "extra": nested(256)}
    too_deep = "extra: JSON nesting deeper than 32 levels"
    alone = await ingest.post("/v1/events", json=very, headers=AUTH)
    assert (alone.status_code, alone.json()) == (
        422,
        {"accepted": 0, "duplicates": 0, "rejected": [{"index": 0, "event_id": "e3", "errors": [too_deep]}]},
    )  # fmt: skip
    r = await ingest.post("/v1/events", json=[ok, deep, very], headers=AUTH)
    assert (r.status_code, r.json()) == (
        202,
        {
            "accepted": 1,
            "duplicates": 0,
            "rejected": [
                {"index": 1, "event_id": "e2", "errors": [too_deep]},
                {"index": 2, "event_id": "e3", "errors": [too_deep]},
            ],
        },
    )
    # the sender fixes the two and sends all three again: only e1 is a duplicate
    retry = await ingest.post("/v1/events", json=[ok, queued(2), queued(3)], headers=AUTH)
    assert retry.json() == {"accepted": 2, "duplicates": 1, "rejected": []}
    records = await read_topic(stack.bootstrap, prefix + "events", 3)
    assert sorted(str(v["event_id"]) for _, v in records) == ["e1", "e2", "e3"]
    assert [v["extra"] for _, v in records if v["event_id"] == "e1"] == [nested(31)]


async def test_strings_are_bounded_except_pass_through_fields(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    agent = {"event_id": "s1", "type": "agent.state", "ts": iso(1), "agent_id": "ann",
             "state": "not_ready", "reason": "r" * 256}  # fmt: skip
    body = [
        {**queued(1), "site": "s" * 256, "notes": "n" * 100_000},
        {**queued(2), "site": "s" * 257},
        agent,
        {**agent, "event_id": "s2", "reason": "r" * 257},
        {**queued(3), "queue_id": "q" * 257},
    ]
    r = await ingest.post("/v1/events", json=body, headers=AUTH)
    assert r.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": [
            {"index": 1, "event_id": "e2", "errors": ["site: at most 256 characters"]},
            {"index": 3, "event_id": "s2", "errors": ["reason: at most 256 characters"]},
            {"index": 4, "event_id": "e3", "errors": ["queue_id: at most 256 characters"]},
        ],
    }
    (call,) = await read_topic(stack.bootstrap, prefix + "events", 1)
    assert (len(str(call[1]["site"])), len(str(call[1]["notes"]))) == (256, 100_000)


async def test_numbers_must_be_finite_json_numbers_and_nothing_acked_is_dead_lettered(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    ended = {"event_id": "n1", "type": "call.ended", "ts": iso(9), "call_id": "c9",
             "queue_id": "billing", "agent_id": "ann", "talk_s": "12"}  # fmt: skip
    body = [
        answered(1, wait_s="inf"),
        answered(2, wait_s="Infinity"),
        answered(3, wait_s="1e309"),
        answered(4, wait_s="12"),
        answered(5, wait_s=12),
        {**queued(6), "priority": "1"},
        ended,
        {**queued(7), "priority": 0, "extra": [1.5, "inf", None]},
    ]
    r = await ingest.post("/v1/events", json=body, headers=AUTH)
    number = ["wait_s: must be a number"]
    assert (r.status_code, r.json()) == (
        202,
        {
            "accepted": 2,
            "duplicates": 0,
            "rejected": [
                {"index": 0, "event_id": "a1", "errors": number},
                {"index": 1, "event_id": "a2", "errors": number},
                {"index": 2, "event_id": "a3", "errors": number},
                {"index": 3, "event_id": "a4", "errors": number},
                {"index": 5, "event_id": "e6", "errors": ["priority: must be a whole number"]},
                {"index": 6, "event_id": "n1", "errors": ["talk_s: must be a number"]},
            ],
        },
    )
    # a bare 1e309 is no JSON number orjson can hold: the body is refused as a whole
    raw = orjson.dumps(answered(8)).replace(b'"agent_id"', b'"wait_s":1e309,"agent_id"')
    whole = await ingest.post("/v1/events", content=raw, headers=AUTH)
    assert whole.status_code == 400
    assert whole.json()["error"].startswith("body is not JSON: number is infinity")
    # every acknowledged event decodes as the monitor decodes it: nothing for its DLQ
    records = await read_topic(stack.bootstrap, prefix + "events", 2)
    decoded = [decode_event(orjson.dumps(v)) for _, v in records]
    assert sorted((e.event_id, getattr(e, "wait_s", None)) for e in decoded) == [
        ("a5", 12.0),
        ("e7", None),
    ]


async def test_source_is_always_the_credentials(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    forged = {**queued(1), "source": "pbx-b"}
    r1 = await ingest.post("/v1/events", json=forged, headers=AUTH)
    assert r1.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    # pbx-b's own e1 is its own event, not a duplicate of what pbx-a claimed in its name
    other = {"Authorization": "Bearer other"}
    r2 = await ingest.post("/v1/events", json=queued(1), headers=other)
    assert r2.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    records = await read_topic(stack.bootstrap, prefix + "events", 2)
    assert sorted(str(v["source"]) for _, v in records) == ["pbx-a", "pbx-b"]


async def test_rate_limit_per_token_is_429_with_retry_after_and_writes_nothing(
    stack: LocalStack, prefix: str
) -> None:
    # 5 events/s in bursts of 10 s: 50 events per token in any 10 s
    settings = settings_for(stack.bootstrap, stack.redis_url, prefix).model_copy(
        update={"ingest_rate_per_s": 5, "ingest_rate_burst": 10, "ingest_max_events": 50}
    )
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as client:
        first = await client.post("/v1/events", json=[queued(i) for i in range(30)], headers=AUTH)
        assert first.json() == {"accepted": 30, "duplicates": 0, "rejected": []}
        over = [queued(i) for i in range(30, 51)]
        refused = await client.post("/v1/events", json=over, headers=AUTH)
        assert (refused.status_code, refused.headers["retry-after"], refused.json()) == (
            429,
            "10",
            {"error": "rate limit of 5 events/s for pbx-a exceeded"},
        )
        rest = await client.post("/v1/events", json=over[:20], headers=AUTH)
        assert rest.json() == {"accepted": 20, "duplicates": 0, "rejected": []}
        # another token has its own 50
        other = {"Authorization": "Bearer other"}
        theirs = await client.post("/v1/events", json=over[:20] + over[:20], headers=other)
        assert theirs.json() == {"accepted": 20, "duplicates": 20, "rejected": []}
        assert (await client.post("/v1/events", json=[queued(99)], headers=AUTH)).status_code == 429
    records = await read_topic(stack.bootstrap, prefix + "events", 70)
    assert len(records) == 70
    assert sorted({str(v["event_id"]) for _, v in records}) == sorted(f"e{i}" for i in range(50))


async def test_distinct_queues_are_capped_in_redis_and_known_queues_keep_working(
    stack: LocalStack, prefix: str
) -> None:
    settings = settings_for(stack.bootstrap, stack.redis_url, prefix).model_copy(
        update={"ingest_max_queues": 3}
    )
    skills = {"event_id": "k1", "type": "agent.skills", "ts": iso(9), "agent_id": "ann",
              "skills": [{"queue_id": "q1", "level": 5}, {"queue_id": "q5", "level": 5}]}  # fmt: skip
    rule = "is a new queue beyond max_queues (3 distinct queues); known queues work"
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as client:
        r1 = await client.post(
            "/v1/events", json=[queued(1, "q1"), queued(2, "q2"), queued(3, "q3")], headers=AUTH
        )
        assert r1.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
        r2 = await client.post(
            "/v1/events", json=[queued(4, "q4"), queued(5, "q1"), skills], headers=AUTH
        )
        assert (r2.status_code, r2.json()) == (
            202,
            {
                "accepted": 1,
                "duplicates": 0,
                "rejected": [
                    {"index": 0, "event_id": "e4", "errors": [f"queue_id: 'q4' {rule}"]},
                    {"index": 2, "event_id": "k1", "errors": [f"skills: 'q5' {rule}"]},
                ],
            },
        )
    # a second ingest process shares the set through Redis
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as client:
        r3 = await client.post("/v1/events", json=[queued(6, "q4"), queued(7, "q2")], headers=AUTH)
        assert r3.json()["accepted"] == 1
        assert r3.json()["rejected"] == [
            {"index": 0, "event_id": "e6", "errors": [f"queue_id: 'q4' {rule}"]}
        ]
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        assert sorted(await redis.smembers(prefix + "ingest:queues")) == [b"q1", b"q2", b"q3"]
    finally:
        await redis.aclose()


async def test_overload_is_refused_at_once_with_retry_after_and_writes_nothing(
    stack: LocalStack, prefix: str, tmp_path: Path
) -> None:
    broker = kafka_server(tmp_path)
    broker.start()
    bootstrap = f"127.0.0.1:{broker.port}"
    settings = settings_for(bootstrap, stack.redis_url, prefix).model_copy(
        update={"ingest_max_in_flight": 50, "ingest_max_events": 50, "ingest_admit_wait_s": 0.2}
    )
    try:
        async with (
            serve(create_app(settings, clock)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            warm = await client.post("/v1/events", json=queued(1), headers=AUTH)
            assert warm.json()["accepted"] == 1
            broker.stop()  # the next request waits on the broker while holding 40 events
            slow = asyncio.create_task(
                client.post("/v1/events", json=[queued(i) for i in range(10, 50)], headers=AUTH)
            )
            await asyncio.sleep(0.5)
            started = asyncio.get_running_loop().time()
            busy = await client.post(
                "/v1/events", json=[queued(i) for i in range(2, 13)], headers=AUTH
            )
            waited = asyncio.get_running_loop().time() - started
            assert (busy.status_code, busy.headers["retry-after"], busy.json()) == (
                429,
                "1",
                {"error": "ingest is at capacity (40 events in flight); nothing done"},
            )
            assert waited < 1.0  # refused after its 0.2 s wait for room, not the 3 s produce bound
            assert (await slow).status_code == 503
            broker.start()
            again = await client.post(
                "/v1/events", json=[queued(i) for i in range(2, 13)], headers=AUTH
            )
            assert again.json() == {"accepted": 11, "duplicates": 0, "rejected": []}
            records = await read_topic(bootstrap, prefix + "events", 11, settle_s=2.0)
            assert sorted(int(str(v["event_id"])[1:]) for _, v in records) == list(range(2, 13))
    finally:
        broker.stop()


async def test_no_token_is_ever_logged(
    ingest: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await ingest.post("/v1/events", json=queued(1), headers=AUTH)
    await ingest.post("/v1/events", json=queued(2), headers={"Authorization": "Bearer guess-me"})
    await ingest.post("/v1/events", json=[{"x": 1}], headers=AUTH)
    assert caplog.records  # the requests were logged at all
    assert "s3cret" not in caplog.text
    assert "guess-me" not in caplog.text


async def test_a_batch_lands_per_partition_in_order_and_its_ids_are_claimed(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    """One batch per partition: each record on the partition `send` picks for its key
    (murmur2), in the body's order within it; every id claimed under its own key."""
    body = [queued(n, f"q{n % 5}") for n in range(40)]
    r = await ingest.post("/v1/events", json=body, headers=AUTH)
    assert r.json() == {"accepted": 40, "duplicates": 0, "rejected": []}
    topic = prefix + "events"
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = sorted(consumer.partitions_for_topic(topic) or [])
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got: dict[int, list[str]] = {}
        for _ in range(50):
            for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                got.setdefault(tp.partition, []).extend(
                    orjson.loads(r.value)["event_id"] for r in records
                )
            if sum(map(len, got.values())) >= 40:
                break
    finally:
        await consumer.stop()
    want: dict[int, list[str]] = {}
    for n in range(40):
        key = f"q{n % 5}".encode()
        want.setdefault(DefaultPartitioner()(key, parts, parts), []).append(f"e{n}")
    assert got == want
    r = await ingest.post("/v1/events", json=body[::-1], headers=AUTH)
    assert r.json() == {"accepted": 0, "duplicates": 40, "rejected": []}
    redis = aioredis.from_url(stack.redis_url)
    try:
        assert await redis.exists(*(f"{prefix}dedup:pbx-a:e{n}" for n in range(40))) == 40
    finally:
        await redis.aclose()
