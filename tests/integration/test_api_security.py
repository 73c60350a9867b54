"""Contract 7's guards, on the real Redis and broker: scopes, audit, rate limits, bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from services.api.app import create_app
from services.api.auth import Tokens
from services.api.settings import ApiSettings, parse_tokens
from shared.localstack import LocalStack
from tests.integration.conftest import serve
from tests.integration.test_api import snapshot

SECRETS = {
    "admin": "admin-secret-1",
    "viewer": "viewer-secret-1",
    "billing": "billing-only-1",
    "taipei": "taipei-only-1",
}
TOKENS = (
    f"ops:admin:{SECRETS['admin']},wall:viewer:{SECRETS['viewer']},"
    f"billing-lead:lead:{SECRETS['billing']}:queue=billing|emea/sales,"
    f"taipei-floor:viewer:{SECRETS['taipei']}:site=taipei"
)


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[who]}"}


@pytest.fixture
async def api(
    stack: LocalStack, prefix: str
) -> AsyncIterator[tuple[httpx.AsyncClient, aioredis.Redis]]:
    settings = ApiSettings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        topic_prefix=prefix,
        api_tokens=TOKENS,
        api_rate_per_s=2,
    )
    redis = aioredis.Redis.from_url(stack.redis_url)
    taipei = {**snapshot("support", "2026-11-11T20:00:00.000Z"), "by_site": {"taipei": {}}}
    for snap in (snapshot("billing", "2026-11-11T20:00:00.000Z"),
                 snapshot("sales", "2026-11-11T20:00:00.000Z"), taipei):  # fmt: skip
        await redis.hset(f"{prefix}snapshots", str(snap["queue_id"]), orjson.dumps(snap))
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client, redis
    await redis.aclose()


def test_tokens_are_kept_as_digests_and_scopes_parsed() -> None:
    specs = parse_tokens(TOKENS)
    assert [(s.name, s.role, s.sites, s.queues) for s in specs] == [
        ("ops", "admin", (), ()),
        ("wall", "viewer", (), ()),
        ("billing-lead", "lead", (), ("billing", "emea/sales")),
        ("taipei-floor", "viewer", ("taipei",), ()),
    ]
    tokens = Tokens(specs)
    assert all(secret.encode() not in repr(tokens.__dict__).encode() for secret in SECRETS.values())
    assert tokens.identify(SECRETS["billing"]).queues == ("billing", "emea/sales")  # type: ignore[union-attr]
    assert tokens.identify("billing-only-") is None


async def test_a_scoped_token_sees_and_acts_on_its_queues_alone(
    api: tuple[httpx.AsyncClient, aioredis.Redis],
) -> None:
    client, _ = api
    queues = (await client.get("/v1/queues", headers=auth("billing"))).json()["queues"]
    assert [q["queue_id"] for q in queues] == ["billing"]
    site = (await client.get("/v1/queues", headers=auth("taipei"))).json()["queues"]
    assert [q["queue_id"] for q in site] == ["support"]
    every = (await client.get("/v1/queues", headers=auth("viewer"))).json()["queues"]
    assert sorted(q["queue_id"] for q in every) == ["billing", "sales", "support"]
    for path in ("/v1/queues/sales", "/v1/settings/queues/sales"):
        r = await client.get(path, headers=auth("billing"))
        assert (r.status_code, r.json()) == (404, {"error": r.json()["error"]})
        assert "sales" in r.json()["error"]
    assert (await client.get("/v1/queues/billing", headers=auth("billing"))).status_code == 200


async def test_queue_ids_with_a_slash_work_url_encoded_and_changes_are_audited(
    api: tuple[httpx.AsyncClient, aioredis.Redis],
) -> None:
    client, _ = api
    r = await client.put(
        "/v1/settings/queues/emea%2Fsales", headers=auth("admin"), json={"sl_target": 0.8}
    )
    assert (r.status_code, r.json()["sl_target"]) == (200, 0.8)
    got = await client.get("/v1/settings/queues/emea%2Fsales", headers=auth("billing"))
    assert (got.status_code, got.json()["sl_target"]) == (200, 0.8)
    other = await client.get("/v1/settings/queues/emea%2Fbilling", headers=auth("admin"))
    assert other.json()["sl_target"] == 0.9  # a different queue, defaults
    entries = (await client.get("/v1/audit", headers=auth("admin"))).json()["entries"]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry["who"], entry["role"], entry["what"], entry["target"]) == (
        "ops", "admin", "settings.put", "emea/sales"
    )  # fmt: skip
    assert (entry["before"]["sl_target"], entry["after"]["sl_target"]) == (0.9, 0.8)
    denied = await client.get("/v1/audit", headers=auth("viewer"))
    assert denied.status_code == 403


async def test_each_token_has_its_rate_limit(
    api: tuple[httpx.AsyncClient, aioredis.Redis],
) -> None:
    client, _ = api
    # 2 requests/s with bursts of 10x: 20 pass in a burst, the 21st is refused
    codes = [
        (await client.get("/v1/alerts", headers=auth("viewer"))).status_code for _ in range(21)
    ]
    assert codes == [200] * 20 + [429]
    refused = await client.get("/v1/alerts", headers=auth("viewer"))
    assert refused.json()["error"] == "rate limit of 2 requests/s for this token exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    other = await client.get("/v1/alerts", headers=auth("admin"))
    assert other.status_code == 200  # another token has its own budget


async def test_staffing_inputs_are_bounded(api: tuple[httpx.AsyncClient, aioredis.Redis]) -> None:
    client, _ = api
    big = await client.get(
        "/v1/staffing?arrivals_per_hour=1000000&aht_s=600&agents=100", headers=auth("admin")
    )
    assert (big.status_code, big.json()) == (
        422,
        {"error": "load 166667 erlangs: at most 10000 (arrivals x AHT)"},
    )
    many = await client.get(
        "/v1/staffing?arrivals_per_hour=60&aht_s=60&agents=10001", headers=auth("admin")
    )
    assert many.json()["errors"] == ["agents: Input should be less than or equal to 10000"]


async def test_unknown_routes_answer_json_and_openapi_declares_bearer_and_errors(
    api: tuple[httpx.AsyncClient, aioredis.Redis],
) -> None:
    client, _ = api
    missing = await client.get("/v1/nope")
    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    spec: dict[str, Any] = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API token: `name:role:secret`'s secret",
    }
    responses = spec["paths"]["/v1/queues"]["get"]["responses"]
    assert {"200", "401", "403", "404", "422", "429", "503"} <= set(responses)
