"""The skeleton every service shares: a dead task is loud, a poison record is kept aside."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.monitor.app import create_app as create_monitor
from shared.kafka import ensure_topics
from shared.localstack import LocalStack
from tests.integration.conftest import monitor_settings, serve
from tests.integration.test_ingest import read_topic


async def eventually(check: object, timeout_s: float = 15.0) -> None:
    """Wait until `check()` is true (it is polled every 50 ms)."""
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.05)


async def test_a_killed_background_task_turns_readyz_503_naming_it(
    stack: LocalStack, prefix: str
) -> None:
    app = create_monitor(monitor_settings(stack, prefix))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        deadline = time.monotonic() + 15
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "never ready"
            await asyncio.sleep(0.1)
        [watchdog] = [t for t in asyncio.all_tasks() if t.get_name() == "watchdog"]
        watchdog.cancel()  # not by its owner: the service has lost a limb
        await eventually(lambda: watchdog.done())
        r = await client.get("/readyz")
        body = r.json()
        assert r.status_code == 503
        assert body["task:watchdog"] is False
        assert body["failed_tasks"] == {"watchdog": "cancelled"}
        assert body["ticking"] is True  # the rest still works: only the dead task is named


async def test_the_board_fanout_dead_letters_poison_and_handles_the_next_record(
    stack: LocalStack, prefix: str
) -> None:
    settings = ApiSettings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        topic_prefix=prefix,
        api_tokens="v:viewer:v-secret",
    )
    await ensure_topics(settings)
    app = create_api(settings)
    async with serve(app):
        fanout = app.state.api.fanout
        client = fanout.connect()
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        await producer.start()
        try:
            await asyncio.sleep(0.5)  # the fan-out starts at the log end: let it get there
            bad = await producer.send_and_wait(f"{prefix}alerts", b"{not json", key=b"q1")
            wrong = await producer.send_and_wait(
                f"{prefix}alerts", orjson.dumps({"alert_id": "a", "kind": "surge"}), key=b"q1"
            )
            good = {"alert_id": "surge:q1:1", "kind": "surge", "queue_id": "q1",
                    "transition": "raised", "tier": 2, "from_tier": 0,
                    "at": "2026-11-11T20:00:00.000Z", "numbers": {"ratio": 1.6}}  # fmt: skip
            await producer.send_and_wait(f"{prefix}alerts", orjson.dumps(good), key=b"q1")
        finally:
            await producer.stop()
        message = orjson.loads(await asyncio.wait_for(client.outbox.get(), 15))
        assert (message["type"], message["alert"]["alert_id"], message["alert"]["tier"]) == (
            "alert",
            "surge:q1:1",
            2,
        )
        dlq = await read_topic(stack.bootstrap, prefix + "dlq", 2)
        kept = sorted((v["topic"], v["partition"], v["offset"]) for _, v in dlq)  # type: ignore[type-var]
        assert kept == sorted(
            [
                (f"{prefix}alerts", bad.partition, bad.offset),
                (f"{prefix}alerts", wrong.partition, wrong.offset),
            ]
        )
        reasons = {v["offset"]: str(v["reason"]) for _, v in dlq}
        assert reasons[bad.offset].startswith("not JSON")
        assert "queue_id" in reasons[wrong.offset]
