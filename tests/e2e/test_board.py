"""The wall board in headless Chromium against a running stack fed with known events."""

from __future__ import annotations

import contextlib
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, async_playwright

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.monitor.app import create_app as create_monitor
from services.monitor.settings import MonitorSettings
from services.simulator.closed_loop import forecasts_for
from services.simulator.scenario import load_scenario
from services.simulator.sim import Simulator
from shared.localstack import LocalStack
from tests.integration.conftest import serve

TICK_S = 0.5
ADMIN = {"Authorization": "Bearer board-admin"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "board.png"
SURGE_AT_S = 1400.0  # promo-night: sales at 8 times its forecast


def pct(v: float | None) -> str:
    """The board's own formatting of a rate."""
    return "–" if v is None else f"{100 * v:.1f}%"


async def tile(page: Page, queue_id: str, field: str) -> str:
    return await page.inner_text(f'[data-queue="{queue_id}"] [data-field="{field}"]')


async def test_board_shows_the_api_numbers_live_and_stale(stack: LocalStack, prefix: str) -> None:
    common: dict[str, Any] = {
        "kafka_bootstrap": stack.bootstrap,
        "redis_url": stack.redis_url,
        "topic_prefix": prefix,
    }
    ingest = create_ingest(IngestSettings(**common, ingest_tokens="sim:feed"))
    monitor = create_monitor(
        MonitorSettings(**common, tick_s=TICK_S, monitor_group_id=f"{prefix}m")
    )
    api = create_api(ApiSettings(**common, tick_s=TICK_S, api_tokens="ops:admin:board-admin"))
    scenario = load_scenario("promo-night")
    t0 = time.time() - SURGE_AT_S
    known = Simulator(scenario, seed=5, t0=t0).advance(SURGE_AT_S)
    async with contextlib.AsyncExitStack() as services:
        ingest_url = await services.enter_async_context(serve(ingest))
        api_url = await services.enter_async_context(serve(api))
        monitor_ctx = serve(monitor)
        await monitor_ctx.__aenter__()
        http = await services.enter_async_context(httpx.AsyncClient(timeout=30))
        start = datetime.fromtimestamp(t0, UTC)
        for forecast in forecasts_for(scenario, start).values():
            r = await http.put(
                f"{api_url}/v1/forecast", json=forecast.model_dump(mode="json"), headers=ADMIN
            )
            assert r.status_code == 200
        for i in range(0, len(known), 500):
            r = await http.post(
                f"{ingest_url}/v1/events",
                content=orjson.dumps(known[i : i + 500]),
                headers={"Authorization": "Bearer feed"},
            )
            assert r.json()["rejected"] == []
        redis = aioredis.Redis.from_url(stack.redis_url)
        action = {"action_id": "sales:reassign:bi01:1", "queue_id": "sales", "type": "agent.reassign", "tier": 1,
                  "summary": "move bi01 from billing", "reason_text": "tier 1", "state": "proposed",
                  "projected": {"answer_rate_before": 0.4, "answer_rate_after": 0.45},
                  "created_at": "2026-11-11T20:00:00.000Z", "history": []}  # fmt: skip
        await redis.hset(f"{prefix}actions", "sales:reassign:bi01:1", orjson.dumps(action))
        await redis.aclose()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await page.goto(f"{api_url}/?token=board-admin")
            # wait until the monitor has counted everything we sent and the board shows a surge
            await page.wait_for_selector('[data-queue="sales"] .tier.t3', timeout=20_000)
            await page.wait_for_timeout(3 * TICK_S * 1000)
            body: dict[str, Any] = (await http.get(f"{api_url}/v1/queues", headers=ADMIN)).json()
            as_of = body["as_of"]
            await page.wait_for_function(
                "as_of => Object.values(window.boardState.queues).every(q => q.as_of >= as_of)",
                arg=as_of,
            )
            body = (await http.get(f"{api_url}/v1/queues", headers=ADMIN)).json()
            shown = {
                q["queue_id"]: q
                for q in await page.evaluate("Object.values(window.boardState.queues)")
            }
            for q in body["queues"]:
                if shown[q["queue_id"]]["as_of"] != q["as_of"]:
                    continue  # a tick landed between the two reads; the next check catches it
                w = q["windows"]["300"]
                qid = q["queue_id"]
                assert await tile(page, qid, "answer_rate_live") == pct(w["answer_rate_live"])
                assert await tile(page, qid, "waiting") == str(q["waiting"])
                assert await tile(page, qid, "abandon_rate") == pct(w["abandon_rate"])
                assert (
                    await tile(page, qid, "agents")
                    == f"{q['agents']['available']} / {q['agents']['staffed']}"
                )
                assert await tile(page, qid, "tier") == (
                    f"TIER {q['surge']['tier']}" if q["surge"]["tier"] else "normal"
                )
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT))

            # a new event shows within two ticks
            before = int(await tile(page, "support", "waiting"))
            new = {
                "event_id": "late-1",
                "type": "call.queued",
                "ts": datetime.now(UTC).isoformat(),
                "call_id": "x1",
                "queue_id": "support",
            }
            posted = time.monotonic()
            await http.post(
                f"{ingest_url}/v1/events", json=new, headers={"Authorization": "Bearer feed"}
            )
            await page.wait_for_function(
                f'Number(document.querySelector(\'[data-queue="support"] [data-field="waiting"]\').textContent) >= {before + 1}',
                timeout=2 * TICK_S * 1000 + 2000,
            )
            assert time.monotonic() - posted < 2 * TICK_S + 2.0

            # approving from the page changes the action's state
            await page.click('[data-approve="sales:reassign:bi01:1"]')
            await page.wait_for_selector(
                '[data-action="sales:reassign:bi01:1"] [data-field="state"]:text("approved")'
            )
            actions = (await http.get(f"{api_url}/v1/actions", headers=ADMIN)).json()["actions"]
            assert [(a["action_id"], a["state"], a["changed_by"]) for a in actions] == [
                ("sales:reassign:bi01:1", "approved", "ops")
            ]

            # the monitor stops: the stale banner appears after three ticks
            assert not await page.is_visible("#stale")
            await monitor_ctx.__aexit__(None, None, None)
            await page.wait_for_selector("#stale", state="visible", timeout=10_000)
            await browser.close()


@pytest.mark.parametrize("path", ["/"])
async def test_page_is_served_without_a_build_step(
    stack: LocalStack, prefix: str, path: str
) -> None:
    api = create_api(
        ApiSettings(kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix)
    )
    async with serve(api) as url, httpx.AsyncClient() as http:
        r = await http.get(url + path)
    assert r.headers["content-type"].startswith("text/html")
    assert '<main id="tiles">' in r.text and "/v1/ws/board" in r.text
