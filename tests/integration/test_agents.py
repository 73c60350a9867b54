"""The agents list on the real broker and Redis: agent events in, the monitor's list in
Redis, exact lists out of `GET /v1/queues/{queue_id}/agents` and `GET /v1/agents`.

Agent events, in seconds before T (the test's start, whole seconds), produced in order:

| agent | site  | serving        | states                                                |
|-------|-------|----------------|-------------------------------------------------------|
| a1    | north | billing        | not_ready/break -500, not_ready/lunch -100            |
| a2    | north | billing, sales | wrap_up -130, then late: busy -200                    |
| a3    | north | billing        | not_ready/training -1000                              |
| a4    | south | billing        | busy -50                                              |
| a5    | south | billing        | available -300, offline -10                           |

billing (defaults: not_ready 900 s, wrap_up 120 s): a3 overdue (1000 s), a2 overdue
(130 s), a1 not_ready since -500 (its reason changed at -100, its state did not), a4
busy; a5 is offline. sales (wrap_up_alert_s 600): a2, not overdue. A call queued at
north makes billing a queue of site north for a token of that site.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from services.monitor.app import create_app as create_monitor
from services.monitor.settings import MonitorSettings
from shared.localstack import LocalStack
from shared.queue_settings import QueueSettings
from shared.timefmt import iso_ms, parse_ts
from tests.integration.conftest import monitor_and_api, produce_events, serve

VIEWER = {"Authorization": "Bearer v-secret"}
SALES = {"Authorization": "Bearer s-secret"}
NORTH = {"Authorization": "Bearer n-secret"}
ADMIN = {"Authorization": "Bearer a-secret"}
_n = 0


def event(kind: str, at: float, **fields: object) -> dict[str, Any]:
    global _n
    _n += 1
    ts = datetime.fromtimestamp(at, UTC).isoformat()
    return {"event_id": f"g{_n}", "type": kind, "ts": ts, **fields}


def table(t: float) -> list[dict[str, Any]]:
    def skills(agent: str, site: str, serving: list[str]) -> dict[str, Any]:
        return event("agent.skills", t - 2000, agent_id=agent, site=site, serving=serving,
                     skills=[{"queue_id": q, "level": 5} for q in serving])  # fmt: skip

    def state(agent: str, at: float, value: str, reason: str | None = None) -> dict[str, Any]:
        extra = {"reason": reason} if reason is not None else {}
        return event("agent.state", t + at, agent_id=agent, state=value, **extra)

    return [
        skills("a1", "north", ["billing"]),
        skills("a2", "north", ["billing", "sales"]),
        skills("a3", "north", ["billing"]),
        skills("a4", "south", ["billing"]),
        skills("a5", "south", ["billing"]),
        state("a1", -500, "not_ready", "break"),
        state("a3", -1000, "not_ready", "training"),
        state("a2", -130, "wrap_up"),
        state("a4", -50, "busy"),
        state("a5", -300, "available"),
        state("a1", -100, "not_ready", "lunch"),
        state("a5", -10, "offline"),
        state("a2", -200, "busy"),  # late: older than its wrap_up
        event("call.queued", t - 5, call_id="c1", queue_id="billing", site="north"),
    ]


def row(t: float, as_of: str, agent: str, at: float, state: str, reason: str | None,
        overdue: bool, site: str) -> dict[str, Any]:  # fmt: skip
    """One agent as the API lists it at `as_of`: in state since T + at."""
    in_state = round(parse_ts(as_of) - (t + at), 3)
    return {"agent_id": agent, "state": state, "reason": reason, "since": iso_ms(t + at),
            "in_state_s": in_state, "overdue": overdue, "site": site}  # fmt: skip


@pytest.fixture
async def env(stack: LocalStack, prefix: str) -> AsyncIterator[tuple[MonitorSettings, str]]:
    tokens = (
        "v:viewer:v-secret,s:viewer:s-secret:queue=sales,n:viewer:n-secret:site=north,"
        "a:admin:a-secret"
    )
    async with monitor_and_api(stack, prefix, tokens) as both:
        yield both


async def redis_get(stack: LocalStack, key: str, field: str) -> bytes:
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        value = await client.hget(key, field)
    finally:
        await client.aclose()
    assert isinstance(value, bytes)
    return value


async def until(
    http: httpx.AsyncClient, path: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The body of `path` once `done` holds for it (60 s at most)."""
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await http.get(path, headers=VIEWER)
        if r.status_code == 200:
            body = r.json()
            if done(body):
                return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never got there: {body}")


async def test_agent_events_in_exact_lists_out(
    env: tuple[MonitorSettings, str], stack: LocalStack, prefix: str
) -> None:
    settings, url = env
    t = float(int(time.time()))
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        await client.hset(
            f"{prefix}settings:queues",
            "sales",
            QueueSettings(wrap_up_alert_s=600).model_dump_json(),
        )
    finally:
        await client.aclose()
    await produce_events(stack, prefix, table(t))
    async with httpx.AsyncClient(base_url=url) as http, serve(create_monitor(settings)):
        billing = await until(http, "/v1/queues/billing/agents", lambda b: b["staffed"] == 4)
        as_of = billing["as_of"]
        assert billing == {
            "queue_id": "billing",
            "as_of": as_of,
            "agents": [
                row(t, as_of, "a3", -1000, "not_ready", "training", True, "north"),
                row(t, as_of, "a2", -130, "wrap_up", None, True, "north"),
                row(t, as_of, "a1", -500, "not_ready", "lunch", False, "north"),
                row(t, as_of, "a4", -50, "busy", None, False, "south"),
            ],
            "overdue": 2,
            "staffed": 4,
            "not_ready_alert_s": 900.0,
            "wrap_up_alert_s": 120.0,
        }
        sales = await until(http, "/v1/queues/sales/agents", lambda b: b["staffed"] == 1)
        assert sales["agents"] == [
            row(t, sales["as_of"], "a2", -130, "wrap_up", None, False, "north")
        ]
        assert (sales["overdue"], sales["wrap_up_alert_s"]) == (0, 600.0)

        # scopes: a token of queue sales does not see billing; one of site north sees
        # billing's north agents alone
        hidden = await http.get("/v1/queues/billing/agents", headers=SALES)
        assert (hidden.status_code, hidden.json()) == (
            404,
            {"error": "queue 'billing': no snapshot yet"},
        )
        assert (await http.get("/v1/queues/sales/agents", headers=SALES)).status_code == 200
        north = (await http.get("/v1/queues/billing/agents", headers=NORTH)).json()
        assert [(a["agent_id"], a["overdue"]) for a in north["agents"]] == [
            ("a3", True),
            ("a2", True),
            ("a1", False),
        ]
        assert (north["overdue"], north["staffed"]) == (2, 3)
        # a queue id ending in "/agents", encoded, names that queue's snapshot
        other = await http.get("/v1/queues/billing%2Fagents", headers=VIEWER)
        assert (other.status_code, other.json()) == (
            404,
            {"error": "queue 'billing/agents': no snapshot yet"},
        )

        counts = (await http.get("/v1/agents", headers=VIEWER)).json()
        assert counts["queues"] == [
            {"queue_id": "billing", "overdue": 2, "staffed": 4, "overdue_by_site": {"north": 2}},
            {"queue_id": "sales", "overdue": 0, "staffed": 1, "overdue_by_site": {}},
        ]
        assert (await http.get("/v1/agents", headers=SALES)).json()["queues"] == [
            {"queue_id": "sales", "overdue": 0, "staffed": 1, "overdue_by_site": {}}
        ]
        mine = (await http.get("/v1/agents", headers=NORTH)).json()["queues"]
        assert [q for q in mine if q["queue_id"] == "billing"] == [
            {"queue_id": "billing", "overdue": 2, "staffed": 3, "overdue_by_site": {"north": 2}}
        ]
        stored = orjson.loads(await redis_get(stack, f"{prefix}agents:counts", "billing"))
        assert stored["by_site"] == {
            "north": {"staffed": 3, "overdue": 2},
            "south": {"staffed": 1, "overdue": 0},
        }

        # a2 becomes available: its queues' lists are written again
        back = time.time()
        await produce_events(
            stack, prefix, [event("agent.state", back, agent_id="a2", state="available")]
        )
        after = await until(http, "/v1/queues/billing/agents", lambda b: b["overdue"] == 1)
        assert [(a["agent_id"], a["state"], a["overdue"]) for a in after["agents"]] == [
            ("a3", "not_ready", True),
            ("a1", "not_ready", False),
            ("a4", "busy", False),
            ("a2", "available", False),
        ]
        assert after["agents"][3]["since"] == iso_ms(back)

        # the queue's limits are settings: refused out of range, in force once set
        path = "/v1/settings/queues/billing"
        bad = await http.put(
            path, headers=ADMIN, json={"not_ready_alert_s": 0, "wrap_up_alert_s": 1e6}
        )
        assert (bad.status_code, bad.json()) == (
            422,
            {
                "error": "invalid settings",
                "errors": [
                    "not_ready_alert_s: Input should be greater than 0",
                    "wrap_up_alert_s: Input should be less than or equal to 86400",
                ],
            },
        )
        ok = await http.put(path, headers=ADMIN, json={"not_ready_alert_s": 60})
        assert ok.status_code == 200
        # a1, not_ready since -500, is now overdue too: after a3, before a4 and a2
        tight = await until(http, "/v1/queues/billing/agents", lambda b: b["overdue"] == 2)
        assert [(a["agent_id"], a["overdue"]) for a in tight["agents"]] == [
            ("a3", True),
            ("a1", True),
            ("a4", False),
            ("a2", False),
        ]
        assert tight["not_ready_alert_s"] == 60.0
