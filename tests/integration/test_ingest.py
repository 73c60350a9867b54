"""Contract section 2, row by row, against the real local broker and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
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


QUEUE_LOG = """1762891200|1762891190.12|billing|NONE|ENTERQUEUE||0421555111|1
1762891212|1762891190.12|billing|PJSIP/agent7|CONNECT|12|1762891212.3|4
1762891215|1762891191.40|billing|NONE|ABANDON|2|2|25
1762891400|1762891190.12|billing|PJSIP/agent7|COMPLETECALLER|12|188|1
1762891401|NONE|NONE|NONE|QUEUESTART|
1762891402|NONE|billing|PJSIP/agent7|PAUSE|lunch
not a queue log line
1762891403|1762891191.41|billing|NONE|ABANDON|2|2|soon
"""


async def test_asterisk_queue_log_lines_become_events(stack: LocalStack, prefix: str) -> None:
    settings = settings_for(stack.bootstrap, stack.redis_url, prefix)
    app = create_app(settings, lambda: 1762891500.0)  # the log's own day, 2025-11-11
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as ingest:
        await asterisk_lines_become_events(ingest, stack, prefix)


async def asterisk_lines_become_events(
    ingest: httpx.AsyncClient, stack: LocalStack, prefix: str
) -> None:
    r = await ingest.post("/v1/adapters/asterisk/queue_log", content=QUEUE_LOG, headers=AUTH)
    assert r.status_code == 202
    assert r.json() == {
        "accepted": 5,
        "duplicates": 0,
        "rejected": [
            {
                "index": 6,
                "event_id": None,
                "errors": ["expected epoch|callid|queue|agent|event|data... (at least 5 fields)"],
            },
            {"index": 7, "event_id": None, "errors": ["ABANDON: waittime 'soon' is not a number"]},
        ],
    }
    calls = await read_topic(stack.bootstrap, prefix + "events", 4)
    got = sorted((v["type"], v.get("wait_s"), v.get("talk_s"), v.get("agent_id")) for _, v in calls)
    assert got == [
        ("call.abandoned", 25.0, None, None),
        ("call.answered", 12.0, None, "agent7"),
        ("call.ended", None, 188.0, "agent7"),
        ("call.queued", None, None, None),
    ]
    agents = await read_topic(stack.bootstrap, prefix + "agents", 1)
    assert [(v["agent_id"], v["state"], v["reason"], v["ts"]) for _, v in agents] == [
        ("agent7", "not_ready", "lunch", "2025-11-11T20:03:22Z")
    ]
    again = await ingest.post("/v1/adapters/asterisk/queue_log", content=QUEUE_LOG, headers=AUTH)
    assert again.json()["duplicates"] == 5


async def test_twilio_taskrouter_callbacks_are_signed(stack: LocalStack, prefix: str) -> None:
    from services.ingest.adapters import twilio_signature

    settings = settings_for(stack.bootstrap, stack.redis_url, prefix).model_copy(
        update={"twilio_auth_token": "tw-token", "twilio_callback_url": "https://cc.example/tr"}
    )
    form = {"EventType": "reservation.accepted", "Sid": "EV1", "Timestamp": "1762891212", "TaskSid": "WT1",
            "TaskQueueName": "billing", "WorkerName": "ann", "TaskAge": "14"}  # fmt: skip
    app = create_app(settings, lambda: 1762891300.0)  # the callback's own day, 2025-11-11
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        bad = await client.post(
            "/v1/adapters/twilio/taskrouter", data=form, headers={"X-Twilio-Signature": "nope"}
        )
        assert (bad.status_code, bad.json()) == (
            401,
            {"error": "missing or wrong X-Twilio-Signature"},
        )
        signature = twilio_signature("tw-token", "https://cc.example/tr", form)
        ok = await client.post(
            "/v1/adapters/twilio/taskrouter", data=form, headers={"X-Twilio-Signature": signature}
        )
        assert (ok.status_code, ok.json()) == (
            202,
            {"accepted": 1, "duplicates": 0, "rejected": []},
        )
    (record,) = await read_topic(stack.bootstrap, prefix + "events", 1)
    assert record[1] == {
        "event_id": "tr:EV1", "type": "call.answered", "ts": "2025-11-11T20:00:12Z", "call_id": "WT1",
        "queue_id": "billing", "agent_id": "ann", "wait_s": 14.0, "source": "twilio",
    }  # fmt: skip
