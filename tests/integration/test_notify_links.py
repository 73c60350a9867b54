"""The API's incident routes, the after-action page and the signed one-tap ack link, on the
real Redis and broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from services.api import incidents as incident_routes
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.localstack import LocalStack
from shared.messages.alerts import AlertRecord
from shared.messages.incidents import Incident
from shared.notify_config import ack_link, page_link
from tests.integration.conftest import serve
from tests.integration.test_ingest import read_topic
from tests.unit.test_incidents import STORY, T0, feed, tracker

VIEWER = {"Authorization": "Bearer v-secret"}
ALERT = "surge:Soporte Técnico:1"


def story() -> tuple[Incident, Incident]:
    """The unit tests' closed incident, and one still open on a queue named with HTML."""
    t = tracker()
    for step in STORY:
        feed(t, step)
    [closed] = t.tick(T0 + 210)
    html = closed.model_copy(
        update={"incident_id": "inc_html", "queue_id": "<script>x</script>", "state": "open",
                "opened_at": closed.opened_at + 1}
    )  # fmt: skip
    return closed, html


def with_incidents(app: FastAPI) -> FastAPI:
    if not any(getattr(r, "path", "") == "/v1/incidents" for r in app.routes):
        app.include_router(incident_routes.router)
    return app


@pytest.fixture
async def env(
    stack: LocalStack, prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, aioredis.Redis, bytes]]:
    settings = ApiSettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix,
        api_tokens="ops:viewer:v-secret",
    )  # fmt: skip
    redis = aioredis.Redis.from_url(stack.redis_url)
    key = b"k" * 32
    await redis.set(f"{prefix}notify:link_key", key.hex())
    for incident in story():
        await redis.hset(f"{prefix}incidents", incident.incident_id, incident.model_dump_json())
    now = time.time()
    record = AlertRecord(alert_id=ALERT, kind="surge", queue_id="Soporte Técnico", raised_at=now,
                         updated_at=now)  # fmt: skip
    await redis.hset(f"{prefix}alerts", ALERT, record.model_dump_json())
    app = with_incidents(create_app(settings))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        yield client, redis, key
    await redis.aclose()


async def test_incidents_are_listed_and_read_by_viewers(
    env: tuple[httpx.AsyncClient, aioredis.Redis, bytes],
) -> None:
    client, _, _ = env
    closed, html = story()
    assert (await client.get("/v1/incidents")).status_code == 401
    listed = (await client.get("/v1/incidents", headers=VIEWER)).json()["incidents"]
    assert [i["incident_id"] for i in listed] == ["inc_html"]
    listed = (await client.get("/v1/incidents?state=all", headers=VIEWER)).json()["incidents"]
    assert [i["incident_id"] for i in listed] == ["inc_html", closed.incident_id]
    one = (await client.get(f"/v1/incidents/{closed.incident_id}", headers=VIEWER)).json()
    assert one == orjson.loads(orjson.dumps(closed.as_json()))
    assert one["summary"]["time_to_first_action_s"] == 20.0
    missing = await client.get("/v1/incidents/inc_nope", headers=VIEWER)
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "incident 'inc_nope' not found"},
    )


async def test_the_page_opens_from_a_signed_link_or_a_token_and_escapes_every_text(
    env: tuple[httpx.AsyncClient, aioredis.Redis, bytes],
) -> None:
    client, _, key = env
    link = page_link("", key, "inc_html", time.time(), 60)
    assert (await client.get("/incidents/inc_html")).status_code == 401
    assert (await client.get(link.replace("sig=", "sig=1"))).status_code == 401
    for page in (await client.get(link), await client.get("/incidents/inc_html", headers=VIEWER)):
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "<script>" not in page.text
        assert "Incident on &lt;script&gt;x&lt;/script&gt;" in page.text
        assert page.text.count("<svg") == 1
        assert '<td data-field="time to first action">20 s</td>' in page.text
        assert '<td data-field="answer rate during">64.3%</td>' in page.text  # 45 of 70


async def test_the_ack_link_acknowledges_once_and_refuses_what_it_was_not_made_for(
    env: tuple[httpx.AsyncClient, aioredis.Redis, bytes], stack: LocalStack, prefix: str
) -> None:
    client, redis, key = env
    now = time.time()
    good = ack_link("", key, ALERT, "Zoë", now, 3600)
    assert good.startswith(f"/ack/{quote(ALERT, safe='')}?by=Zo%C3%AB&sig=")
    refused = [
        ack_link("", key, ALERT, "Zoë", now - 3601, 3600),  # expired
        good.replace("by=Zo%C3%AB", "by=Mallory"),  # made for someone else
        ack_link("", b"x" * 32, ALERT, "Zoë", now, 3600),  # another key
        good.split("&sig=")[0],  # no signature
    ]
    for link in refused:
        answer = await client.get(link)
        assert (answer.status_code, answer.json()) == (
            403, {"error": "this ack link is wrong or has expired; acknowledge on the board"})  # fmt: skip
    first, second = await client.get(good), await client.get(good)
    assert first.status_code == second.status_code == 200
    assert "Soporte Técnico: acknowledged by Zoë" in first.text
    assert "Soporte Técnico: acknowledged by Zoë" in second.text
    raw = await redis.hget(f"{prefix}alerts", ALERT)
    assert raw is not None and AlertRecord.model_validate_json(raw).acknowledged_by == "Zoë"
    facts = await read_topic(stack.bootstrap, prefix + "alerts", 1)
    assert [(v["transition"], v["by"]) for _, v in facts] == [("acknowledged", "Zoë")]
    audit = [orjson.loads(v) for v in await redis.lrange(f"{prefix}audit", 0, -1)]
    assert [(a["who"], a["what"], a["target"]) for a in audit] == [("Zoë", "alert.ack", ALERT)]
