"""A lead gives agents back from the board in real Chromium: "return now" on the tile of a
queue that lent agents, "undo" on a sent plan; a viewer's board has neither."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page

from shared.localstack import LocalStack
from tests.e2e.board_data import ACTIONS, SNAPSHOTS, api_server, chromium, seed, texts
from tests.integration.test_ingest import read_topic

pytestmark = pytest.mark.e2e

PLAN_ID = "sales:plan:2026-11-11T20:00:01.000Z"  # su01 and su02 from support, sb01, callback


def undoable_plan() -> dict[str, Any]:
    """The board data's sent v2 plan, with the undo the dispatcher stores beside it."""
    [plan] = [a for a in ACTIONS if a["action_id"] == PLAN_ID]
    undo = [
        {"type": "agent.release", "agent_id": agent, "queue_id": "sales",
         "command_id": f"{PLAN_ID}:undo:{i}", "action_id": PLAN_ID}
        for i, agent in enumerate(["sb01", "su02", "su01"])
    ]  # fmt: skip
    return {**plan, "undo": undo}


async def open_board(url: str, token: str, page: Page) -> None:
    await page.goto(f"{url}/?token={token}")
    await page.wait_for_function(
        "n => document.querySelectorAll('#tiles [data-queue]').length === n", arg=len(SNAPSHOTS)
    )
    await page.wait_for_timeout(300)


async def test_return_now_and_undo_for_a_lead_only(stack: LocalStack, prefix: str) -> None:
    await seed(stack.redis_url, prefix)
    redis = aioredis.Redis.from_url(stack.redis_url)
    await redis.hset(f"{prefix}actions", PLAN_ID, orjson.dumps(undoable_plan()))
    await redis.aclose()
    async with api_server(stack, prefix) as url, chromium() as browser:
        viewer = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await open_board(url, "board-viewer", viewer)
        assert await texts(viewer, "button[data-undo]") == []
        # a lead on a phone: support lent 3 (its snapshot's staffing); one sent plan holds
        # two of them, so "return now" undoes that plan; the plan's own row offers "undo"
        lead = await browser.new_page(viewport={"width": 390, "height": 844})
        await open_board(url, "board-lead", lead)
        tile = '#tiles [data-queue="support"]'
        assert await lead.inner_text(f"{tile} .return") == "3 lent to other queues\nreturn now"
        button = f"{tile} button[data-undo]"
        assert await lead.get_attribute(button, "data-undo") == PLAN_ID
        box = await lead.locator(button).bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 44
        assert (
            await lead.get_attribute(
                f'#action-groups [data-plan="{PLAN_ID}"] button[data-undo]', "data-undo"
            )
            == PLAN_ID
        )
        # the v1 move sent at 19:59 has nothing to undo: no button on its row
        assert await texts(lead, "#action-groups button[data-undo]") == ["undo"]
        began = time.time()
        await lead.click(button)
        requests = await read_topic(stack.bootstrap, prefix + "actions", 1)
        assert [(v["verb"], v["action_id"], v["by"]) for _, v in requests] == [
            ("undo", PLAN_ID, "lee")
        ]
        async with httpx.AsyncClient(base_url=url) as client:
            r = await client.get("/v1/audit", headers={"Authorization": "Bearer board-admin"})
        [entry] = [e for e in r.json()["entries"] if e["what"] == "action.undo"]
        assert (entry["who"], entry["target"]) == ("lee", PLAN_ID)
        assert time.time() - began < 30
