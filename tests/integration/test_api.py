"""Contract 7 route by route and role by role, on the real Redis and broker."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import websockets
from aiokafka import AIOKafkaProducer

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.localstack import LocalStack
from shared.messages.alerts import AlertChange, apply_change
from tests.integration.conftest import serve
from tests.integration.test_ingest import read_topic

TOKENS = {"viewer": "v-secret", "lead": "l-secret", "admin": "a-secret"}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def snapshot(queue_id: str, as_of: str, rate: float | None = 0.9) -> dict[str, Any]:
    window = {"arrivals": 10, "answered": 9, "answered_within_target": 8, "short_abandoned": 0,
              "abandoned": 1, "callbacks": 0, "overflowed": 0, "offered": 10, "answer_rate": 0.8,
              "answer_rate_live": rate, "abandon_rate": 0.1, "asa_s": 12.5, "aht_s": 200.0}  # fmt: skip
    return {
        "queue_id": queue_id, "as_of": as_of, "windows": {"300": window}, "waiting": 2,
        "waiting_over_target": 0, "longest_wait_s": 12.0,
        "agents": {"available": 1, "busy": 3, "wrap_up": 0, "not_ready": 0, "staffed": 4},
        "surge": {"ratio": 1.3, "expected": 10.0, "arrivals": 13, "tier": 1, "since": as_of},
        "sl_breach": False,
    }  # fmt: skip


@pytest.fixture
async def env(
    stack: LocalStack, prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, aioredis.Redis, str]]:
    settings = ApiSettings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        topic_prefix=prefix,
        api_tokens=",".join(f"{role}-user:{role}:{secret}" for role, secret in TOKENS.items()),
        api_client_queue=8,
    )
    redis = aioredis.Redis.from_url(stack.redis_url)
    await redis.hset(
        f"{prefix}snapshots",
        "billing",
        orjson.dumps(snapshot("billing", "2026-11-11T20:00:00.000Z")),
    )
    await redis.hset(
        f"{prefix}snapshots", "sales", orjson.dumps(snapshot("sales", "2026-11-11T20:00:02.000Z"))
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client, redis, url
    await redis.aclose()


async def test_every_route_refuses_without_a_token_and_with_a_low_role(
    env: tuple[httpx.AsyncClient, aioredis.Redis, str],
) -> None:
    client, _, _ = env
    reads = ["/v1/queues", "/v1/queues/billing", "/v1/alerts", "/v1/actions", "/v1/settings/queues/billing",
             "/v1/staffing?arrivals_per_hour=60&aht_s=30&agents=1"]  # fmt: skip
    for path in reads:
        r = await client.get(path)
        assert (r.status_code, r.json()) == (401, {"error": "missing or wrong bearer token"}), path
    writes = [("POST", "/v1/alerts/x/ack", "lead"), ("POST", "/v1/actions/x/approve", "lead"),
              ("POST", "/v1/actions/x/reject", "lead"), ("PUT", "/v1/forecast", "admin"),
              ("PUT", "/v1/settings/queues/billing", "admin")]  # fmt: skip
    for method, path, needed in writes:
        r = await client.request(method, path, headers=auth("viewer"), json={})
        assert (r.status_code, r.json()) == (
            403,
            {"error": f"role viewer may not do this; {needed} needed"},
        )
    r = await client.put("/v1/forecast", headers=auth("lead"), json={})
    assert r.status_code == 403


async def test_queues_come_from_the_latest_snapshots(
    env: tuple[httpx.AsyncClient, aioredis.Redis, str],
) -> None:
    client, _, _ = env
    r = await client.get("/v1/queues", headers=auth("viewer"))
    assert r.json() == {
        "as_of": "2026-11-11T20:00:02.000Z",
        "queues": [
            snapshot("billing", "2026-11-11T20:00:00.000Z"),
            snapshot("sales", "2026-11-11T20:00:02.000Z"),
        ],
    }
    one = await client.get("/v1/queues/sales", headers=auth("viewer"))
    assert one.json() == snapshot("sales", "2026-11-11T20:00:02.000Z")
    missing = await client.get("/v1/queues/nope", headers=auth("viewer"))
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "queue 'nope': no snapshot yet"},
    )


async def test_settings_defaults_partial_update_and_refusal(
    env: tuple[httpx.AsyncClient, aioredis.Redis, str],
) -> None:
    client, _, _ = env
    defaults = {
        "sl_threshold_s": 30.0, "short_abandon_s": 5.0, "windows_s": [300, 900, 3600], "surge_window_s": 300,
        "tier_thresholds": [1.2, 1.5, 2.0], "tier_hysteresis": 0.1, "min_arrivals": 10, "clear_after_s": 120.0,
        "sl_alert_below": 0.85, "sl_target": 0.9, "abandon_cap": 0.05, "mode": "auto",
        # contract v2
        "sl_flowouts": "miss", "callback_target_s": 1800.0, "callback_expiry_s": 86400.0,
        "priority_sl_threshold_s": {}, "timezone": "UTC", "surge_windows_s": [30, 60, 300, 900],
        "surge_p_value": 1e-7, "expected_per_hour": None,
        "playbook": {"sl_breach": ["standby", "cross_skill"], "1": ["standby"], "2": ["cross_skill", "partner"],
                     "3": ["emergency", "callback", "overflow"]},
        "standby_share": 0.2, "max_lent_share": 0.3, "max_borrowed": 40, "moves_per_tick": 10,
        "overflow_to": None, "approve_within_s": 300.0,
        # beyond the contract's list: when an agent's not-ready or wrap-up is flagged
        "not_ready_alert_s": 900.0, "wrap_up_alert_s": 120.0,
    }  # fmt: skip
    assert (
        await client.get("/v1/settings/queues/billing", headers=auth("viewer"))
    ).json() == defaults
    r = await client.put(
        "/v1/settings/queues/billing",
        headers=auth("admin"),
        json={"sl_target": 0.8, "mode": "approve"},
    )
    assert r.json() == {**defaults, "sl_target": 0.8, "mode": "approve"}
    assert (await client.get("/v1/settings/queues/billing", headers=auth("viewer"))).json()[
        "sl_target"
    ] == 0.8
    assert (
        await client.get("/v1/settings/queues/sales", headers=auth("viewer"))
    ).json() == defaults
    bad = await client.put(
        "/v1/settings/queues/billing",
        headers=auth("admin"),
        json={"tier_thresholds": [2.0, 1.5, 1.2], "sl_target": 2},
    )
    assert bad.status_code == 422
    assert bad.json() == {
        "error": "invalid settings",
        "errors": [
            "tier_thresholds: Value error, tier thresholds must increase: tier 1 < tier 2 < tier 3",
            "sl_target: Input should be less than or equal to 1",
        ],
    }
    unknown = await client.put(
        "/v1/settings/queues/billing", headers=auth("admin"), json={"colour": "red"}
    )
    assert unknown.json()["errors"] == ["colour: Extra inputs are not permitted"]


async def test_forecast_upload_is_validated(
    env: tuple[httpx.AsyncClient, aioredis.Redis, str], prefix: str
) -> None:
    client, redis, _ = env
    good = {
        "queue_id": "billing",
        "start": "2026-11-11T18:00:00Z",
        "interval_s": 900,
        "arrivals": [120, 130.5],
    }
    r = await client.put("/v1/forecast", headers=auth("admin"), json=good)
    assert r.json() == {**good, "arrivals": [120.0, 130.5]}
    stored = orjson.loads(await redis.hget(f"{prefix}forecasts", "billing") or b"null")
    assert stored["arrivals"] == [120.0, 130.5]
    bad = await client.put(
        "/v1/forecast", headers=auth("admin"),
        json={"queue_id": "billing", "start": "2026-11-11T18:00:00", "interval_s": 30, "arrivals": [-1]},
    )  # fmt: skip
    assert bad.json()["errors"] == [
        "start: Input should have timezone info",
        "interval_s: Input should be greater than or equal to 60",
        "arrivals.0: Input should be greater than or equal to 0",
    ]
    week = await client.put(
        "/v1/forecast",
        headers=auth("admin"),
        json={**good, "interval_s": 3600, "arrivals": [1] * (7 * 24 + 1)},
    )
    assert week.json()["errors"] == ["Value error, a forecast covers at most 7 days"]


async def test_alert_ack_records_who_and_tells_the_board(
    env: tuple[httpx.AsyncClient, aioredis.Redis, str], prefix: str, stack: LocalStack
) -> None:
    client, redis, _ = env
    raised = {"alert_id": "surge:billing:1", "kind": "surge", "queue_id": "billing", "transition": "raised",
              "tier": 2, "from_tier": 0, "at": "2026-11-11T20:00:00.000Z", "numbers": {"ratio": 1.6}}  # fmt: skip
    first = apply_change(None, AlertChange.model_validate(raised))
    await redis.hset(f"{prefix}alerts", "surge:billing:1", first.model_dump_json())
    sales = {**raised, "alert_id": "surge:sales:0", "queue_id": "sales"}
    old = apply_change(apply_change(None, AlertChange.model_validate(sales)),
                       AlertChange.model_validate({**sales, "transition": "cleared", "tier": 0, "at": "2026-11-11T20:05:00.000Z"}))  # fmt: skip
    await redis.hset(f"{prefix}alerts", "surge:sales:0", old.model_dump_json())
    active = (await client.get("/v1/alerts", headers=auth("viewer"))).json()["alerts"]
    assert [a["alert_id"] for a in active] == ["surge:billing:1"]
    every = (await client.get("/v1/alerts?state=all", headers=auth("viewer"))).json()["alerts"]
    assert sorted(a["alert_id"] for a in every) == ["surge:billing:1", "surge:sales:0"]
    r = await client.post("/v1/alerts/surge:billing:1/ack", headers=auth("lead"))
    body = r.json()
    assert (body["acknowledged_by"], body["state"], body["tier"]) == ("lead-user", "active", 2)
    assert [h["transition"] for h in body["history"]] == ["raised", "acknowledged"]
    published = await read_topic(stack.bootstrap, prefix + "alerts", 1)
    assert [(k, v["transition"], v["by"]) for k, v in published] == [
        (b"billing", "acknowledged", "lead-user")
    ]
    missing = await client.post("/v1/alerts/nope/ack", headers=auth("lead"))
    assert (missing.status_code, missing.json()) == (404, {"error": "alert 'nope' not found"})


async def test_approve_and_reject_only_proposed_actions(
    env: tuple[httpx.AsyncClient, aioredis.Redis, str], prefix: str
) -> None:
    client, redis, _ = env
    for action_id in ("a1", "a2"):
        action: dict[str, object] = {"action_id": action_id, "queue_id": "billing", "type": "agent.reassign", "state": "proposed",
                  "created_at": f"2026-11-11T20:00:0{action_id[1]}.000Z", "history": []}  # fmt: skip
        await redis.hset(f"{prefix}actions", action_id, orjson.dumps(action))
    listed = (await client.get("/v1/actions", headers=auth("viewer"))).json()["actions"]
    assert [a["action_id"] for a in listed] == ["a2", "a1"]  # newest first
    ok = (await client.post("/v1/actions/a1/approve", headers=auth("lead"))).json()
    assert (ok["state"], ok["changed_by"], [h["state"] for h in ok["history"]]) == (
        "approved",
        "lead-user",
        ["approved"],
    )
    no = await client.post("/v1/actions/a2/reject", headers=auth("admin"))
    assert no.json()["state"] == "rejected"
    again = await client.post("/v1/actions/a1/reject", headers=auth("lead"))
    assert (again.status_code, again.json()) == (
        409,
        {"error": "action 'a1' is approved, not proposed"},
    )


async def test_staffing_for_a_hand_worked_queue(
    env: tuple[httpx.AsyncClient, aioredis.Redis, str],
) -> None:
    client, _, _ = env
    # 60 calls an hour of 30 s: 0.5 Erlang; one agent is M/M/1 with rho 0.5
    r = await client.get(
        "/v1/staffing?arrivals_per_hour=60&aht_s=30&agents=1&threshold_s=30&target=0.8",
        headers=auth("viewer"),
    )
    body = r.json()
    assert body["load_erlangs"] == pytest.approx(0.5)
    c = body["erlang_c"]
    assert c["p_wait"] == pytest.approx(0.5)
    assert c["answer_rate"] == pytest.approx(1 - 0.5 * math.exp(-0.5))
    assert c["asa_s"] == pytest.approx(30.0)
    assert c["occupancy"] == pytest.approx(0.5)
    assert c["agents_for_target"] == 2  # 1 agent: 0.697; 2 agents: 1 - 0.1 e^-1.5 = 0.978
    assert "erlang_a" not in body
    with_patience = await client.get(
        "/v1/staffing?arrivals_per_hour=60&aht_s=30&agents=1&patience_s=60", headers=auth("viewer")
    )
    a = with_patience.json()["erlang_a"]
    # M/M/1+M with lambda = 1/60, mu = 1/30, theta = 1/60: pi(k+1)/pi(k) = 1/(k+2), so
    # pi(k) = pi(0)/(k+1)! and the sums are e's: P(wait) = (e-2)/(e-1) (also the
    # occupancy of the one agent), P(abandon) = theta E[queue]/lambda = (3-e)/(e-1)
    assert set(a) == {
        "p_wait",
        "answer_rate",
        "asa_s",
        "occupancy",
        "abandon_rate",
        "agents_for_target",
    }
    assert a["p_wait"] == pytest.approx((math.e - 2) / (math.e - 1))
    assert a["occupancy"] == pytest.approx((math.e - 2) / (math.e - 1))
    assert a["abandon_rate"] == pytest.approx((3 - math.e) / (math.e - 1))
    bad = await client.get(
        "/v1/staffing?arrivals_per_hour=-1&aht_s=30&agents=1", headers=auth("viewer")
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] == ["arrivals_per_hour: Input should be greater than or equal to 0"]


async def test_board_socket_auth_origin_state_and_ticks(
    env: tuple[httpx.AsyncClient, aioredis.Redis, str], prefix: str, stack: LocalStack
) -> None:
    _, _, url = env
    ws_url = url.replace("http", "ws") + "/v1/ws/board"
    async with websockets.connect(ws_url + "?token=wrong") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with websockets.connect(ws_url, origin=websockets.Origin("http://evil.example")) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with websockets.connect(ws_url) as ws:
        await ws.send(orjson.dumps({"token": TOKENS["viewer"]}).decode())
        welcome = orjson.loads(await ws.recv())
        assert (welcome["type"], welcome["role"], welcome["as_of"]) == (
            "state",
            "viewer",
            "2026-11-11T20:00:02.000Z",
        )
        assert [q["queue_id"] for q in welcome["queues"]] == ["billing", "sales"]
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            newer = snapshot("billing", "2026-11-11T20:00:04.000Z", rate=0.5)
            await producer.send_and_wait(prefix + "metrics", orjson.dumps(newer), key=b"billing")
        finally:
            await producer.stop()
        tick = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert tick == {"type": "tick", "as_of": "2026-11-11T20:00:04.000Z", "queues": [newer]}
