"""The board at TV, 4K and phone sizes in real Chromium, on hand-made state: what a floor
manager checks at a glance, and that a queue id holding HTML stays text."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, Page

from services.api.board import BOARD_CSP
from shared.localstack import LocalStack
from tests.e2e.board_data import (
    CHIP_ORDER,
    HOSTILE_AGENT,
    HOSTILE_ALERT_QUEUE,
    HOSTILE_QUEUE,
    OFF_SCREEN,
    SNAPSHOTS,
    TILE_ORDER,
    api_server,
    chromium,
    seed,
    seed_agents,
    snapshot,
    texts,
)

pytestmark = pytest.mark.e2e


async def open_board(browser: Browser, url: str, width: int, height: int, token: str) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height})
    await page.goto(f"{url}/?token={token}")
    # functions, not expressions: the board's policy forbids evaluating strings
    await page.wait_for_function(
        """n => document.querySelectorAll('#tiles [data-queue]').length === n
                && document.querySelector('#tiles').textContent.includes('target 90%')""",
        arg=len(SNAPSHOTS),
    )
    await page.wait_for_timeout(300)  # the settings of every queue have been read
    return page


async def field(page: Page, queue_id: str, name: str) -> str:
    return str(
        await page.eval_on_selector(
            "#tiles",
            "(m, a) => [...m.querySelectorAll('[data-queue]')].find(t => t.dataset.queue === a[0])"
            '.querySelector(`[data-field="${a[1]}"]`).textContent',
            [queue_id, name],
        )
    )


async def check_tv(page: Page) -> None:
    """What a floor manager reads off the TV, and that it all fits."""
    assert await texts(page, "#tiles [data-queue]", "data-queue") == TILE_ORDER
    assert await field(page, "sales", "headline") == (
        "answered within 30 s, last 5 min, target 90%"
    )
    assert await field(page, "sales", "answer_rate") == "20.0%"
    assert await field(page, "sales", "answer_rate_live") == "15.0%"
    assert await field(page, "sales", "tier") == "TIER 3"
    assert (
        await field(page, "sales", "surge") == "640% of forecast · 200 calls in 5 min, 31 expected"
    )
    assert await field(page, "sales", "staffing") == "45 / 20"
    assert await field(page, "sales", "moves") == "8 / 0"
    assert await field(page, "sales", "callbacks_pending") == "12"
    assert await field(page, "sales", "oldest_callback_s") == "5:00"
    assert await field(page, "sales", "waiting_over_target") == "50"
    assert await field(page, "sales", "longest_wait_s") == "4:05"
    assert await field(page, "sales", "asa_s") == "42 s"
    assert await field(page, "sales", "aht_s") == "4:05"
    # colour only where action is needed: sales red, billing amber, support plain
    classes = await page.eval_on_selector_all(
        "#tiles .rate", "ns => ns.map(n => n.className.trim())"
    )
    assert classes == ["rate bad", "rate warn", "rate", "rate"]
    assert await field(page, "support", "moves") == "0 / 3"
    assert await field(page, "sales", "sites") == "by site: lon 8% · nyc 30%"
    # totals: 30 + 87 + 95 + 10 = 222 within target of 150 + 100 + 100 + 10 = 360 offered
    assert await page.inner_text('[data-field="total_answer_rate"]') == "61.7%"
    assert await page.inner_text('[data-field="total_waiting"]') == "64"
    assert await page.inner_text('[data-field="total_callbacks"]') == "12"
    # chips: most severe first, one row, the numbers of now
    shown = await texts(page, "#alerts [data-alert]", "data-alert")
    more = await texts(page, '#alerts [data-field="more"]')
    hidden = int(more[0].split()[0]) if more else 0
    assert shown == CHIP_ORDER[: len(shown)] and len(shown) + hidden == len(CHIP_ORDER)
    assert len(shown) >= 2
    chips = await texts(page, '#alerts [data-field="chip"]')
    assert chips[:2] == [
        "sales · tier 3 · 640% of forecast · answering 15% now",
        "sales · answering 15% now, alert below 85%",
    ]
    # one row: every chip's top is above every chip's bottom
    assert await page.eval_on_selector_all(
        "#alerts .chip",
        """ns => { const r = ns.map(n => n.getBoundingClientRect());
                   return Math.max(...r.map(b => b.top)) < Math.min(...r.map(b => b.bottom)); }""",
    )
    # plans, newest first: the two v1 moves proposed at 20:00:00 are one plan
    whats = await texts(page, '#action-groups [data-field="what"]')
    assert whats == [
        "move 2 agents from support + call in 1 standby + callback after 1:00",
        "move 2 agents from billing",
        "move 1 agent from billing",
    ]
    effects = await texts(page, '#action-groups [data-field="effect"]')
    assert effects[0] == "10% then → 45% in the 15 min after"
    assert effects[1] == "10% then → 15% now"
    assert await page.evaluate(OFF_SCREEN, False) == []
    assert await page.evaluate(
        "document.documentElement.scrollHeight <= innerHeight"
        " && document.documentElement.scrollWidth <= innerWidth"
    )


async def check_hostile(page: Page) -> None:
    """The hostile ids are shown as their own text, and nothing they hold ran."""
    assert await field(page, HOSTILE_QUEUE, "queue") == HOSTILE_QUEUE
    chips = " ".join(await texts(page, "#alerts, #incident"))
    actions = " ".join(await texts(page, "#action-groups, #incident"))
    assert HOSTILE_ALERT_QUEUE in chips or await page.evaluate(
        "document.querySelector('#alerts [data-field=\"more\"]') !== null"
    )
    assert HOSTILE_AGENT not in actions  # shown as the count of moves, not the id
    assert await page.evaluate("window.__xss") is None
    assert (
        await page.evaluate(
            "document.querySelectorAll('img, script:not([src]), [onerror], [onmouseover]').length"
        )
        == 0
    )
    # and should some markup slip through one day, the policy refuses to run it
    await page.evaluate(
        """() => { const d = document.createElement('div');
                   d.innerHTML = '<img src="data:," onerror="window.__xss=4">';
                   document.body.append(d); }"""
    )
    await page.wait_for_timeout(300)
    assert await page.evaluate("window.__xss") is None


async def test_board_at_tv_4k_and_phone(stack: LocalStack, prefix: str, tmp_path: Path) -> None:
    await seed(stack.redis_url, prefix)
    async with api_server(stack, prefix) as url, chromium() as browser:
        async with httpx.AsyncClient() as http:
            r = await http.get(url + "/")
            script = await http.get(url + "/static/board.js")
        assert r.headers["content-security-policy"] == BOARD_CSP
        assert "<script>" not in r.text and 'src="/static/board.js"' in r.text
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"

        tv = await open_board(browser, url, 1920, 1080, "board-viewer")
        await tv.screenshot(path=str(tmp_path / "tv.png"))
        await check_tv(tv)
        await check_hostile(tv)

        uhd = await open_board(browser, url, 3840, 2160, "board-viewer")
        await uhd.screenshot(path=str(tmp_path / "4k.png"))
        await check_tv(uhd)
        size = "n => parseFloat(getComputedStyle(n).fontSize)"
        big, small = (
            await uhd.eval_on_selector(".rate", size),
            await tv.eval_on_selector(".rate", size),
        )
        assert big > 1.6 * small  # the 4K board is drawn larger, not just wider
        # one site picked: its queues, its figures, its totals
        await uhd.select_option("#site", "lon")
        assert await texts(uhd, "#tiles [data-queue]", "data-queue") == ["sales"]
        assert await field(uhd, "sales", "answer_rate") == "10.0%"
        assert await field(uhd, "sales", "waiting") == "40"
        assert await uhd.inner_text("#totals .title") == "site lon"
        assert await uhd.inner_text('[data-field="total_waiting"]') == "40"
        await uhd.select_option("#site", "")
        assert await texts(uhd, "#tiles [data-queue]", "data-queue") == TILE_ORDER

        phone = await open_board(browser, url, 390, 844, "board-lead")
        await phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        # a lead's token does not stay in the address bar
        assert "token" not in phone.url
        assert await texts(phone, "#tiles [data-queue]", "data-queue") == TILE_ORDER
        incidents = await texts(phone, "#incident [data-incident]", "data-incident")
        assert incidents == ["sales", "billing", "support"]
        assert (
            "billing · answering 87% now, alert below 85% · back, clearing"
            in await phone.inner_text('#incident [data-incident="billing"]')
        )
        first_incident = await phone.eval_on_selector(
            "#incident", "n => n.getBoundingClientRect().top"
        )
        first_tile = await phone.eval_on_selector("#tiles", "n => n.getBoundingClientRect().top")
        assert first_incident < first_tile < 2000
        small_targets = await phone.eval_on_selector_all(
            "button, select, input",
            """ns => ns.filter(n => n.offsetParent !== null).map(n => n.getBoundingClientRect())
                     .filter(r => r.width < 44 || r.height < 44).map(r => [r.width, r.height])""",
        )
        assert small_targets == []
        gap = await phone.eval_on_selector(
            "#incident .buttons",
            """n => n.querySelector('.reject').getBoundingClientRect().left
                   - n.querySelector('.approve').getBoundingClientRect().right""",
        )
        assert gap >= 100
        assert await phone.evaluate(OFF_SCREEN, True) == []
        await check_hostile(phone)

        # approve the plan of two from the phone: both moves are approved by the lead
        await phone.click("#incident .approve")
        await phone.wait_for_function(
            "() => window.boardState.actions.filter(a => a.state === 'approved').length === 2"
        )
        async with httpx.AsyncClient() as http:
            listed = (
                await http.get(url + "/v1/actions", headers={"Authorization": "Bearer board-lead"})
            ).json()["actions"]
        assert sorted(
            ((a.get("agent_id"), a["state"], a["changed_by"]) for a in listed),
            key=lambda t: (t[0] is None, str(t[0])),
        ) == [
            (HOSTILE_AGENT, "approved", "lee"),
            ("bi01", "approved", "lee"),
            ("su07", "sent", "dispatcher"),
            (None, "sent", "dispatcher"),
        ]

        # a new tick: the chip shows the numbers now, not those of when it was raised
        newer = snapshot(
            "sales", offered=150, within=15, live=0.08, waiting=70, over=60, longest=300.0,
            tier=3, ratio=8.0, breach=True, as_of="2026-11-11T20:00:02.000Z",
        )  # fmt: skip
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(f"{prefix}metrics", orjson.dumps(newer), key=b"sales")
        finally:
            await producer.stop()
        await tv.wait_for_function(
            "() => document.querySelector('#alerts [data-field=\"chip\"]').textContent.includes('800%')",
            timeout=10_000,
        )
        chips = await texts(tv, '#alerts [data-field="chip"]')
        assert chips[:2] == [
            "sales · tier 3 · 800% of forecast · answering 8% now",
            "sales · answering 8% now, alert below 85%",
        ]
        assert await field(tv, "sales", "answer_rate") == "10.0%"


async def test_two_dozen_queues_fit_a_tv_also_when_the_stale_banner_shows(
    stack: LocalStack, prefix: str
) -> None:
    # queue i: 60 + i of 100 within target, i waiting, tier i % 4: all below the 85%
    # line, so the higher tier first, then the lower rate; queue-00, with nobody
    # waiting, is recovering (amber) and last
    redis = aioredis.Redis.from_url(stack.redis_url)
    for i in range(24):
        snap = snapshot(
            f"queue-{i:02d}", offered=100, within=60 + i, live=(60 + i) / 100, waiting=i,
            over=i // 2, longest=10.0 * i, tier=i % 4, ratio=1 + i / 10,
        )  # fmt: skip
        await redis.hset(f"{prefix}snapshots", snap["queue_id"], orjson.dumps(snap))
    await redis.aclose()
    expected = [f"queue-{i:02d}" for t in (3, 2, 1, 0) for i in range(24) if i % 4 == t and i]
    async with api_server(stack, prefix, tick_s=0.5) as url, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await page.goto(f"{url}/?token=board-viewer")
        await page.wait_for_function(
            "() => document.querySelectorAll('#tiles [data-queue]').length === 24"
        )
        assert await texts(page, "#tiles [data-queue]", "data-queue") == [*expected, "queue-00"]
        assert await page.evaluate(OFF_SCREEN, False) == []
        # no tick comes: after three ticks' time the banner shows and the tiles make room
        await page.wait_for_selector("#stale", state="visible", timeout=5_000)
        await page.wait_for_timeout(200)
        assert await page.evaluate(OFF_SCREEN, False) == []


async def test_overdue_agents_on_the_tile_and_listed_in_the_day(
    stack: LocalStack, prefix: str
) -> None:
    await seed(stack.redis_url, prefix)
    await seed_agents(stack.redis_url, prefix)
    async with api_server(stack, prefix) as url, chromium() as browser:
        page = await open_board(browser, url, 1920, 1080, "board-viewer")
        await page.wait_for_selector('#tiles [data-field="overdue"]')
        assert await field(page, "sales", "overdue") == "2 agents overdue"
        assert await texts(page, '#tiles [data-field="overdue"]') == ["2 agents overdue"]
        assert await page.evaluate(OFF_SCREEN, False) == []
        # a site picked: the overdue agents of that site (both are at lon, none at nyc)
        await page.select_option("#site", "nyc")
        assert await texts(page, '#tiles [data-field="overdue"]') == []
        await page.select_option("#site", "lon")
        assert await field(page, "sales", "overdue") == "2 agents overdue"
        await page.select_option("#site", "")

        await page.click('#tiles [data-day="sales"]')
        await page.wait_for_selector("#intraday .agents li")
        assert await page.inner_text('[data-field="agents_head"]') == (
            "agents: 4 staffed, 2 overdue"
        )
        rows = await page.eval_on_selector_all(
            "#intraday .agents li",
            "ns => ns.map(n => [...n.children].map(c => c.textContent))",
        )
        # overdue first, longest first; then not ready; then the rest; the flag in words
        assert rows == [
            ["OVERDUE", HOSTILE_AGENT, "not ready", "<b>lunch</b>", "20:00"],
            ["OVERDUE", "sa02", "wrap-up", "", "3:00"],
            ["", "sa03", "not ready", "break", "10:00"],
            ["", "sa04", "busy", "", "45 s"],
        ]
        assert await texts(page, "#intraday .agents li", "data-agent") == [
            HOSTILE_AGENT,
            "sa02",
            "sa03",
            "sa04",
        ]
        assert await page.evaluate("window.__xss") is None
        assert (
            await page.evaluate("document.querySelectorAll('#intraday svg svg, b b').length") == 0
        )
