"""The three adapter routes against the real broker and Redis (contract 2)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from shared.localstack import LocalStack
from tests.integration.conftest import serve
from tests.integration.test_ingest import read_topic

FIXTURES = Path(__file__).parents[1] / "fixtures"
TWILIO_URL = "https://cc.example.com/v1/adapters/twilio/taskrouter"


def settings_for(stack: LocalStack, prefix: str) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix,
        ingest_tokens="pbx:s3cret", ingest_produce_timeout_s=3.0,
        twilio_auth_token="tw-token", twilio_callback_url=TWILIO_URL,
        connect_shared_secret="cx-secret", ingest_max_age_s=10 * 365 * 86400,
    )  # fmt: skip


async def test_asterisk_sample_with_a_latin_1_name(stack: LocalStack, prefix: str) -> None:
    """support.queue_log by hand: 15 call events (ENTERQUEUE x8 less the two QUEUESTART,
    ABANDON, 2 CONNECT, 3 exits, 2 ends) and 13 agent events (3 ADDMEMBER x2, 2 CONNECT,
    UNPAUSE, 2 PAUSE, 2 ends)."""
    body = (FIXTURES / "asterisk" / "support.queue_log").read_bytes()
    auth = {"Authorization": "Bearer s3cret"}
    async with (
        serve(create_app(settings_for(stack, prefix))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        first = await client.post("/v1/adapters/asterisk/queue_log", content=body, headers=auth)
        assert (first.status_code, first.json()) == (
            202, {"accepted": 28, "duplicates": 0, "rejected": []}
        )  # fmt: skip
        again = await client.post("/v1/adapters/asterisk/queue_log", content=body, headers=auth)
        # sent again: every line the same event; the three ADDMEMBERs now name members
        # already known, so they no longer carry a first state
        assert again.json() == {"accepted": 0, "duplicates": 25, "rejected": []}
    calls = await read_topic(stack.bootstrap, prefix + "events", 15)
    agents = await read_topic(stack.bootstrap, prefix + "agents", 13)
    assert (len(calls), len(agents)) == (15, 13)
    pauses = [v for _, v in agents if v.get("reason") == "lunch"]
    assert sorted(str(v["agent_id"]) for v in pauses) == ["PJSIP/201", "PJSIP/202"]


async def test_twilio_callbacks_signed_by_twilio(stack: LocalStack, prefix: str) -> None:
    """callbacks.json by hand: 22 callbacks give 23 events (6 from the workers, none from
    task.created and reservation.created, two from each reservation.accepted and from
    task.completed); the task-queue.moved after task-queue.timeout is the same departure
    (a duplicate): 22 accepted. A forged callback is 401."""
    callbacks = json.loads((FIXTURES / "twilio" / "callbacks.json").read_text())
    validator = RequestValidator("tw-token")
    accepted = duplicates = 0
    async with (
        serve(create_app(settings_for(stack, prefix))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        for form in callbacks:
            signed = {"X-Twilio-Signature": validator.compute_signature(TWILIO_URL, form)}
            r = await client.post("/v1/adapters/twilio/taskrouter", data=form, headers=signed)
            assert r.status_code == 202, r.text
            accepted += r.json()["accepted"]
            duplicates += r.json()["duplicates"]
        forged = {**callbacks[10], "WorkerName": "mallory"}
        signed = {"X-Twilio-Signature": validator.compute_signature(TWILIO_URL, callbacks[10])}
        r = await client.post("/v1/adapters/twilio/taskrouter", data=forged, headers=signed)
        assert (r.status_code, r.json()) == (401, {"error": "missing or wrong X-Twilio-Signature"})
    assert (accepted, duplicates) == (22, 1)


async def test_connect_records_with_the_shared_secret(stack: LocalStack, prefix: str) -> None:
    """contact-events.json: 15 items, C3's callback request and flow disconnect one
    departure (a repeat in the body); agent-events.json: 12 items."""
    contacts = (FIXTURES / "connect" / "contact-events.json").read_bytes()
    agents = (FIXTURES / "connect" / "agent-events.json").read_bytes()
    secret = {"X-Floorwatch-Secret": "cx-secret", "Content-Type": "application/json"}
    async with (
        serve(create_app(settings_for(stack, prefix))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        wrong = {**secret, "X-Floorwatch-Secret": "cx-secret2"}
        r = await client.post("/v1/adapters/connect/events", content=contacts, headers=wrong)
        assert (r.status_code, r.json()) == (401, {"error": "missing or wrong X-Floorwatch-Secret"})
        r = await client.post("/v1/adapters/connect/events", content=contacts, headers=secret)
        assert (r.status_code, r.json()) == (202, {"accepted": 14, "duplicates": 1, "rejected": []})
        r = await client.post("/v1/adapters/connect/events", content=agents, headers=secret)
        assert (r.status_code, r.json()) == (202, {"accepted": 12, "duplicates": 0, "rejected": []})
    records = await read_topic(stack.bootstrap, prefix + "events", 14)
    kinds = sorted(str(v["type"]) for _, v in records)
    assert kinds.count("call.callback_requested") == 1
    assert kinds.count("call.overflowed") == 1  # C5 moved to Sales; C3's departure once


async def test_connect_adapter_is_off_without_a_secret(stack: LocalStack, prefix: str) -> None:
    settings = settings_for(stack, prefix).model_copy(update={"connect_shared_secret": ""})
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/v1/adapters/connect/events", content=b"[]",
                              headers={"X-Floorwatch-Secret": ""})  # fmt: skip
    assert (r.status_code, r.json()) == (
        404, {"error": "the Amazon Connect adapter is off (no shared secret set)"}
    )  # fmt: skip
