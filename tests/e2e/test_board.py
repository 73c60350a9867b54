"""The wall board in real Chromium against a running stack fed with the promo-night
scenario: the API's numbers on the page, live ticks, approving, the stale banner, and
the screenshots of the README (`make screenshots` writes them to docs/)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.dispatcher.app import create_app as create_dispatcher
from services.dispatcher.settings import DispatcherSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.monitor.app import create_app as create_monitor
from services.monitor.settings import MonitorSettings
from services.simulator.closed_loop import forecasts_for
from services.simulator.scenario import load_scenario
from services.simulator.sim import Simulator
from shared.localstack import LocalStack
from tests.e2e.board_data import OFF_SCREEN, TOKENS, chromium
from tests.integration.conftest import serve

pytestmark = pytest.mark.e2e

TICK_S = 0.5
ADMIN = {"Authorization": "Bearer board-admin"}
SURGE_AT_S = 1400.0  # promo-night: sales at 8 times its forecast since 1260 s
AFTER_S = 3300.0  # fifteen minutes after the surge ended at 2400 s
SIZES = {"tv": (1920, 1080), "4k": (3840, 2160), "phone": (390, 844)}


def shots_dir(tmp_path: Path) -> Path:
    """docs/ for `make screenshots`; a temporary folder for every other run."""
    named = os.environ.get("BOARD_SCREENSHOTS_DIR")
    return Path(named) if named else tmp_path


def pct(v: float | None) -> str:
    """The board's own formatting of a rate."""
    return "–" if v is None else f"{100 * v:.1f}%"


async def tile(page: Page, queue_id: str, field: str) -> str:
    return await page.inner_text(f'#tiles [data-queue="{queue_id}"] [data-field="{field}"]')


@contextlib.asynccontextmanager
async def running_stack(
    stack: LocalStack, prefix: str, at_s: float, dispatcher: bool
) -> AsyncIterator[tuple[str, httpx.AsyncClient, str, contextlib.AbstractAsyncContextManager[str]]]:
    """Ingest, API, monitor (and the dispatcher) with promo-night played up to `at_s`
    seconds ago; yields the ingest URL, a client, the API URL and the monitor's server."""
    common: dict[str, Any] = {
        "kafka_bootstrap": stack.bootstrap,
        "redis_url": stack.redis_url,
        "topic_prefix": prefix,
    }
    apps: list[FastAPI] = [
        create_ingest(IngestSettings(**common, ingest_tokens="sim:feed")),
        create_api(ApiSettings(**common, tick_s=TICK_S, api_tokens=TOKENS)),
    ]
    if dispatcher:
        apps.append(create_dispatcher(DispatcherSettings(**common, tick_s=TICK_S)))
    scenario = load_scenario("promo-night")
    t0 = time.time() - at_s
    known = Simulator(scenario, seed=5, t0=t0).advance(at_s)
    async with contextlib.AsyncExitStack() as services:
        urls = [await services.enter_async_context(serve(app)) for app in apps]
        monitor = serve(
            create_monitor(MonitorSettings(**common, tick_s=TICK_S, monitor_group_id=f"{prefix}m"))
        )
        await monitor.__aenter__()
        services.push_async_callback(monitor.__aexit__, None, None, None)
        http = await services.enter_async_context(httpx.AsyncClient(timeout=30))
        for forecast in forecasts_for(scenario, datetime.fromtimestamp(t0, UTC)).values():
            r = await http.put(
                f"{urls[1]}/v1/forecast", json=forecast.model_dump(mode="json"), headers=ADMIN
            )
            assert r.status_code == 200
        for i in range(0, len(known), 500):
            r = await http.post(
                f"{urls[0]}/v1/events",
                content=orjson.dumps(known[i : i + 500]),
                headers={"Authorization": "Bearer feed"},
            )
            assert r.json()["rejected"] == []
        yield urls[0], http, urls[1], monitor


async def test_board_shows_the_api_numbers_live_and_stale(stack: LocalStack, prefix: str) -> None:
    async with running_stack(stack, prefix, SURGE_AT_S, dispatcher=False) as (
        ingest_url,
        http,
        api_url,
        monitor,
    ):
        redis = aioredis.Redis.from_url(stack.redis_url)
        action = {"action_id": "sales:reassign:bi01:1", "queue_id": "sales", "type": "agent.reassign", "tier": 1,
                  "summary": "move bi01 from billing", "reason_text": "tier 1", "state": "proposed",
                  "plan": [{"type": "agent.reassign", "agent_id": "bi01", "from_queue": "billing", "to_queue": "sales"}],
                  "projected": {"answer_rate_before": 0.4, "answer_rate_after": 0.45},
                  "created_at": "2026-11-11T20:00:00.000Z", "history": []}  # fmt: skip
        await redis.hset(f"{prefix}actions", "sales:reassign:bi01:1", orjson.dumps(action))
        await redis.aclose()
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await page.goto(f"{api_url}/?token=board-lead")
            # wait until the monitor has counted everything we sent and the board shows a surge
            await page.wait_for_selector('#tiles [data-queue="sales"] .badge.t3', timeout=20_000)
            await page.wait_for_timeout(3 * TICK_S * 1000)
            body: dict[str, Any] = (await http.get(f"{api_url}/v1/queues", headers=ADMIN)).json()
            await page.wait_for_function(
                "as_of => Object.values(window.boardState.queues).every(q => q.as_of >= as_of)",
                arg=body["as_of"],
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
                assert await tile(page, qid, "answer_rate") == pct(w["answer_rate"])
                assert await tile(page, qid, "answer_rate_live") == pct(w["answer_rate_live"])
                assert await tile(page, qid, "waiting") == str(q["waiting"])
                assert await tile(page, qid, "abandon_rate") == pct(w["abandon_rate"])
                assert await tile(page, qid, "agents") == str(q["agents"]["available"])
                assert await tile(page, qid, "tier") == (
                    f"TIER {q['surge']['tier']}" if q["surge"]["tier"] else "normal"
                )
            # the surging queue comes first
            order = await page.eval_on_selector_all(
                "#tiles [data-queue]", "ns => ns.map(n => n.dataset.queue)"
            )
            assert order[0] == "sales"
            assert await page.evaluate(OFF_SCREEN, False) == []

            # a new event shows within two ticks
            before = int(await tile(page, "support", "waiting"))
            new = {"event_id": "late-1", "type": "call.queued", "ts": datetime.now(UTC).isoformat(),
                   "call_id": "x1", "queue_id": "support"}  # fmt: skip
            posted = time.monotonic()
            await http.post(
                f"{ingest_url}/v1/events", json=new, headers={"Authorization": "Bearer feed"}
            )
            await page.wait_for_function(
                """n => Number(document.querySelector('#tiles [data-queue="support"] [data-field="waiting"]').textContent) >= n""",
                arg=before + 1,
                timeout=2 * TICK_S * 1000 + 2000,
            )
            assert time.monotonic() - posted < 2 * TICK_S + 2.0

            # approving the plan from the page changes the action's state
            plan = '#action-groups [data-plan="sales@2026-11-11T20:00:00.000Z"]'
            await page.click(f"{plan} .approve")
            await page.wait_for_selector(f'{plan} [data-field="state"]:text("approved")')
            actions = (await http.get(f"{api_url}/v1/actions", headers=ADMIN)).json()["actions"]
            assert [(a["action_id"], a["state"], a["changed_by"]) for a in actions] == [
                ("sales:reassign:bi01:1", "approved", "lee")
            ]

            # the monitor stops: the stale banner appears after three ticks
            assert not await page.is_visible("#stale")
            await monitor.__aexit__(None, None, None)
            await page.wait_for_selector("#stale", state="visible", timeout=10_000)


@pytest.mark.parametrize(("moment", "at_s"), [("surge", SURGE_AT_S), ("after", AFTER_S)])
async def test_screenshots_at_three_sizes(
    stack: LocalStack, prefix: str, tmp_path: Path, moment: str, at_s: float
) -> None:
    """The board during the surge and after it, at TV, 4K and phone sizes; each fits."""
    out = shots_dir(tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    async with (
        running_stack(stack, prefix, at_s, dispatcher=True) as (_, http, api_url, _m),
        chromium() as browser,
    ):
        await http.put(
            f"{api_url}/v1/settings/queues/sales", json={"mode": "approve"}, headers=ADMIN
        )
        for name, (width, height) in SIZES.items():
            page = await browser.new_page(viewport={"width": width, "height": height})
            await page.goto(
                f"{api_url}/?token={'board-lead' if name == 'phone' else 'board-viewer'}"
            )
            await page.wait_for_function(
                "() => document.querySelectorAll('#tiles [data-queue]').length === 3",
                timeout=20_000,
            )
            if moment == "surge":
                await page.wait_for_selector(
                    '#tiles [data-queue="sales"] .badge.t3', timeout=20_000
                )
            await page.wait_for_timeout(8_000 if name == "tv" else 1_000)  # a few ticks of history
            if moment == "surge" and name == "tv":
                with contextlib.suppress(PlaywrightTimeout):  # the dispatcher's first plans
                    await page.wait_for_selector("#action-groups .plan", timeout=10_000)
            order = await page.eval_on_selector_all(
                "#tiles [data-queue]", "ns => ns.map(n => n.dataset.queue)"
            )
            if moment == "surge":
                assert order[0] == "sales"
            assert await page.evaluate(OFF_SCREEN, name == "phone") == []
            suffix = "" if moment == "surge" else "-after"
            await page.screenshot(path=str(out / f"board-{name}{suffix}.png"))
            await page.close()
