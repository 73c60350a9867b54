"""An incident's after-action page in headless Chromium, opened from the signed link a push
carries; its chart is drawn on the server. The screenshot is docs/incident.png."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from playwright.async_api import Browser, async_playwright

from services.api import incidents as incident_routes
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.core.incidents import Tracker, action_from_json, sample_from_snapshot
from shared.localstack import LocalStack
from shared.messages.alerts import AlertChange
from shared.messages.incidents import Incident
from shared.notify_config import page_link
from shared.timefmt import iso_ms
from tests.integration.conftest import serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "incident.png"
T0 = 1_794_427_200.0  # 2026-11-11T20:00:00Z
QUEUE = "Soporte Técnico"


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            yield browser
        finally:
            await browser.close()


def rate(t: float) -> float:
    """The answer rate of the story: 93%, 40.5% in the surge, back over 90% from t = 900 s."""
    if t < 90:
        return 0.93
    if t < 400:
        return 0.405
    return min(0.95, 0.405 + (t - 400) / 1000)


def snapshot(t: float) -> dict[str, Any]:
    arrivals = 50 if t < 60 or t > 1500 else 200 if t < 1200 else 120
    agents = 20 + (4 if 180 <= t < 1800 else 0) + (6 if 400 <= t < 1850 else 0)
    # today's counts: (400, 370, 10, 0, 0) before the surge, (1000, 700, 90, 60, 52) from 1900 s
    share = 0.0 if t < 60 else min(1.0, (t - 60) / 1840)
    today = {"offered": 400 + round(600 * share), "answered_within_target": 370 + round(330 * share),
             "abandoned": 10 + round(80 * share), "callbacks": round(60 * share),
             "callbacks_completed": round(52 * share)}  # fmt: skip
    return {"queue_id": QUEUE, "as_of": iso_ms(T0 + t), "today": today,
            "callbacks_pending": 8 if 420 <= t < 1900 else 0,
            "windows": {"300": {"answer_rate_live": rate(t), "abandon_rate": 0.02}},
            "surge": {"ratio": arrivals / 50, "expected": 50.0, "arrivals": arrivals},
            "agents": {"staffed": agents}}  # fmt: skip


def alert(t: float, kind: str, transition: str, tier: int, **extra: Any) -> AlertChange:
    return AlertChange.model_validate(
        {"alert_id": f"{kind}:{QUEUE}:1", "kind": kind, "queue_id": QUEUE, "transition": transition,
         "tier": tier, "at": iso_ms(T0 + t), "numbers": {"ratio": 4.0, "answer_rate_live": rate(t)}, **extra}
    )  # fmt: skip


def action(
    t: float,
    action_id: str,
    state: str,
    created: float,
    summary: str,
    commands: list[dict[str, Any]],
) -> dict[str, Any]:
    return {"action_id": action_id, "queue_id": QUEUE, "state": state, "summary": summary,
            "created_at": iso_ms(T0 + created), "changed_at": iso_ms(T0 + t), "changed_by": "dispatcher",
            "plan": commands, "projected": {"answer_rate_before": 0.41, "answer_rate_after": 0.62}}  # fmt: skip


def story() -> Incident:
    """Thirty-odd minutes of a surge, tick by tick, through the tracker."""
    standby = [
        {"type": "agent.activate", "agent_id": f"sb{i}", "pool": "standby"} for i in range(4)
    ]
    cross = [
        {"type": "agent.reassign", "agent_id": f"bi{i}", "from_queue": "billing"} for i in range(6)
    ]
    callback = [{"type": "queue.callback", "enabled": True, "offer_after_s": 90}]
    events: list[tuple[float, Any]] = [
        (60, alert(60, "surge", "raised", 1)), (90, alert(90, "surge", "escalated", 3)),
        (100, alert(100, "sl_breach", "raised", 0)), (150, alert(150, "surge", "acknowledged", 3, by="Zoë Ñúñez")),
        (180, action(180, "a1", "sent", 180, "call in 4 standby agents", standby)),
        (400, action(400, "a2", "sent", 400, "move 6 from billing", cross)),
        (420, action(420, "a3", "sent", 420, "offer callback after 90 s", callback)),
        (1300, alert(1300, "sl_breach", "cleared", 0)), (1500, alert(1500, "surge", "deescalated", 1)),
        (1700, alert(1700, "surge", "cleared", 0)), (1800, action(1800, "a1", "reverted", 180, "call in 4 standby agents", standby)),
        (1850, action(1850, "a2", "reverted", 400, "move 6 from billing", cross)),
        (1850, action(1850, "a3", "done", 420, "offer callback after 90 s", callback)),
    ]  # fmt: skip
    events += [(t, snapshot(t)) for t in range(0, 2101, 10)]
    tracker = Tracker(targets=lambda q: (120.0, 0.9))
    closed: list[Incident] = []
    for t, item in sorted(events, key=lambda e: (e[0], isinstance(e[1], dict) and "as_of" in e[1])):
        if isinstance(item, AlertChange):
            tracker.on_alert(item)
        elif "as_of" in item:
            tracker.on_sample(QUEUE, *sample_from_snapshot(item))
        else:
            tracker.on_action(QUEUE, action_from_json(item))
        closed += tracker.tick(T0 + t)
    [incident] = closed
    return incident


async def test_the_incident_page_shows_its_summary_and_chart(
    stack: LocalStack, prefix: str
) -> None:
    incident = story()
    assert (incident.opened_at - T0, incident.closed_at) == (
        60.0,
        T0 + 2020,
    )  # calm at 1900 + 120 s
    redis = aioredis.Redis.from_url(stack.redis_url)
    key = b"k" * 32
    await redis.set(f"{prefix}notify:link_key", key.hex())
    await redis.hset(f"{prefix}incidents", incident.incident_id, incident.model_dump_json())
    await redis.aclose()
    settings = ApiSettings(kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url,
                           topic_prefix=prefix, api_tokens="ops:viewer:v-secret")  # fmt: skip
    app = create_app(settings)
    if not any(getattr(r, "path", "") == "/incidents/{incident_id}" for r in app.routes):
        app.include_router(incident_routes.router)
    async with serve(app) as url, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        await page.goto(page_link(url, key, incident.incident_id, time.time(), 600))
        assert await page.inner_text("#title") == f"Incident on {QUEUE}"
        summary = await page.eval_on_selector_all(
            "#summary tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
        )
        assert summary == [
            ["state", "closed"], ["opened", "20:01:00"], ["closed", "20:33:40"], ["duration", "32 min 40 s"],
            ["time to first action", "2 min 00 s"], ["time to recover", "14 min 00 s"],
            ["answer rate during", "55.0%"], ["abandonment during", "13.3%"], ["agents moved", "10"],
            ["callbacks offered", "60"], ["callbacks kept", "52"], ["highest tier", "3"],
        ]  # fmt: skip
        chart = await page.query_selector("#chart svg")
        assert chart is not None
        box = await chart.bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 450
        timeline = await page.eval_on_selector_all(
            "#timeline li", "ls => ls.map(l => l.textContent)"
        )
        assert timeline[0] == "20:01:00 raised: surge tier 1, 400% of expected, answer rate 93%"
        assert "20:02:30 surge acknowledged by Zoë Ñúñez" in timeline
        assert timeline[-1] == "20:33:40 calm: no alert, action or callback pending"
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)
