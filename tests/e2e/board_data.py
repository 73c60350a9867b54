"""Hand-made board state for the browser tests: snapshots, alerts and actions whose
every number is known, and the helpers that serve them to a real Chromium."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, async_playwright

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from shared.localstack import LocalStack
from tests.integration.conftest import serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKENS = "ops:admin:board-admin,wall:viewer:board-viewer,lee:lead:board-lead"
AS_OF = "2026-11-11T20:00:00.000Z"
HOSTILE_QUEUE = '<img src=x onerror="window.__xss=1">'
HOSTILE_ALERT_QUEUE = '"><script>window.__xss=2</script>'
HOSTILE_AGENT = "<svg onload=window.__xss=3>bi99"


def snapshot(
    queue_id: str,
    *,
    offered: int,
    within: int,
    live: float | None,
    waiting: int,
    over: int,
    longest: float,
    tier: int = 0,
    ratio: float | None = None,
    breach: bool = False,
    v2: dict[str, Any] | None = None,
    as_of: str = AS_OF,
) -> dict[str, Any]:
    """A snapshot of contract 7 with the primary window only; `v2` adds the new fields."""
    snap: dict[str, Any] = {
        "queue_id": queue_id,
        "as_of": as_of,
        "windows": {
            "300": {
                "arrivals": offered + waiting, "answered": within, "answered_within_target": within,
                "short_abandoned": 0, "abandoned": offered - within, "callbacks": 0,
                "overflowed": 0, "offered": offered, "answer_rate": within / offered,
                "answer_rate_live": live, "abandon_rate": (offered - within) / offered,
                "asa_s": 42.0, "aht_s": 245.0,
            }
        },
        "waiting": waiting,
        "waiting_over_target": over,
        "longest_wait_s": longest,
        "agents": {"available": 1, "busy": 15, "wrap_up": 2, "not_ready": 2, "staffed": 20},
        "surge": {"ratio": ratio, "expected": 31.25 if ratio else None,
                  "arrivals": round(31.25 * ratio) if ratio else 0, "tier": tier,
                  "since": "2026-11-11T19:58:00.000Z" if tier else None},
        "sl_breach": breach,
    }  # fmt: skip
    for key, value in (v2 or {}).items():
        if isinstance(value, dict) and isinstance(snap.get(key), dict):
            snap[key] = {**snap[key], **value}
        else:
            snap[key] = value
    return snap


def site(offered: int, within: int, live: float, waiting: int) -> dict[str, Any]:
    """One site's figures in a snapshot's `by_site` (contract 4: the queue's shape)."""
    return {
        "windows": {"300": {"offered": offered, "answered_within_target": within,
                            "answer_rate": within / offered, "answer_rate_live": live,
                            "abandoned": offered - within, "abandon_rate": 1 - within / offered}},
        "waiting": waiting, "waiting_over_target": waiting, "longest_wait_s": 245.0,
        "agents": {"available": 0, "staffed": 10},
    }  # fmt: skip


# sales: 30 of 150 within 30 s (20.0%), 30 of 200 counting the 50 still waiting past
# 30 s (15.0%): the worst. billing 87.0% now: below its 90% target, above the 85% line.
SNAPSHOTS = [
    snapshot(
        "support", offered=100, within=95, live=0.95, waiting=1, over=0, longest=12.0,
        tier=1, ratio=1.25, v2={"callbacks_pending": 0, "oldest_callback_s": 0,
                                "staffing": {"needed": 14, "have": 20, "lent": 3, "borrowed": 0}},
    ),
    snapshot(
        "sales", offered=150, within=30, live=0.15, waiting=60, over=50, longest=245.0,
        tier=3, ratio=6.4, breach=True,
        v2={"callbacks_pending": 12, "oldest_callback_s": 300.0,
            "staffing": {"needed": 45, "have": 20, "lent": 0, "borrowed": 8},
            "surge": {"window_s": 300, "p": 1e-12, "basis": "forecast"},
            "by_site": {"lon": site(100, 10, 0.08, waiting=40), "nyc": site(50, 20, 0.3, waiting=20)}},
    ),
    snapshot(HOSTILE_QUEUE, offered=10, within=10, live=1.0, waiting=0, over=0, longest=0.0),
    snapshot("billing", offered=100, within=87, live=0.87, waiting=3, over=0, longest=20.0),
]  # fmt: skip
TILE_ORDER = ["sales", "billing", "support", HOSTILE_QUEUE]


def alert(
    alert_id: str, kind: str, queue_id: str, tier: int, numbers: dict[str, Any]
) -> dict[str, Any]:
    return {
        "alert_id": alert_id, "kind": kind, "queue_id": queue_id, "state": "active",
        "tier": tier, "raised_at": "2026-11-11T19:58:00.000Z",
        "updated_at": "2026-11-11T19:58:00.000Z", "acknowledged_by": None,
        "acknowledged_at": None, "cleared_at": None, "numbers": numbers, "history": [],
    }  # fmt: skip


# the numbers when raised (ratio 1.6, 70%) are not the numbers now (640%, 15%)
ALERTS = [
    alert("surge:support:1", "surge", "support", 1, {"ratio": 1.21, "answer_rate_live": 0.9}),
    alert("sl:sales:1", "sl_breach", "sales", 0, {"answer_rate_live": 0.8}),
    alert(
        "surge:hostile:1", "surge", HOSTILE_ALERT_QUEUE, 1, {"ratio": 1.3, "answer_rate_live": 0.5}
    ),
    alert("surge:sales:1", "surge", "sales", 3, {"ratio": 1.6, "answer_rate_live": 0.7}),
    # billing is back above its 85% line: this alert is clearing, so it goes last
    alert("sl:billing:1", "sl_breach", "billing", 0, {"answer_rate_live": 0.6}),
]
CHIP_ORDER = ["surge:sales:1", "sl:sales:1", "surge:support:1", "surge:hostile:1", "sl:billing:1"]


def action(agent: str, created: str, state: str, before: float, after: float) -> dict[str, Any]:
    action_id = f"sales:reassign:{agent}:{created}"
    return {
        "action_id": action_id, "queue_id": "sales", "type": "agent.reassign", "tier": 3,
        "agent_id": agent, "reason": {"tier": 3, "ratio": 6.4, "answer_rate_live": 0.1,
                                      "agents_needed": 45, "agents_staffed": 20},
        "summary": f"move {agent} from billing", "reason_text": "tier 3",
        "plan": [{"type": "agent.reassign", "agent_id": agent, "from_queue": "billing",
                  "to_queue": "sales", "command_id": f"{action_id}:do"}],
        "undo": [], "projected": {"answer_rate_before": before, "answer_rate_after": after},
        "state": state, "created_at": created, "changed_by": "dispatcher", "changed_at": created,
        "history": [],
    }  # fmt: skip


def plan(created: str) -> dict[str, Any]:
    """A dispatcher action as v2 writes it: one plan of several commands, sent, measured."""
    action_id = f"sales:plan:{created}"
    moves = [
        {
            "type": "agent.reassign",
            "agent_id": a,
            "from_queue": "support",
            "to_queue": "sales",
            "command_id": f"{action_id}:{i}",
        }
        for i, a in enumerate(["su01", "su02"])
    ]
    return {
        "message": "action", "action_id": action_id, "queue_id": "sales", "kind": "plan",
        "levers": ["cross_skill", "standby", "callback"],
        "reason": {"trigger": "3", "tier": 3, "ratio": 6.4, "answer_rate_live": 0.1,
                   "agents_needed": 45, "agents_staffed": 20.0, "text": "tier 3"},
        "commands": [*moves,
                     {"type": "agent.activate", "agent_id": "sb01", "queue_id": "sales",
                      "command_id": f"{action_id}:2"},
                     {"type": "queue.callback", "queue_id": "sales", "enabled": True,
                      "offer_after_s": 60.0, "command_id": f"{action_id}:3"}],
        "undo": [], "projected": {"agents_before": 20, "agents_after": 23,
                                  "answer_rate_before": 0.1, "answer_rate_after": 0.35,
                                  "abandon_rate_before": 0.3, "abandon_rate_after": 0.2},
        "state": "sent", "created_at": created, "changed_by": "dispatcher", "changed_at": created,
        "sent_at": created, "measured": {"at": created, "answer_rate": 0.45, "projected": 0.35},
        "history": [],
    }  # fmt: skip


# three plans, newest first: a v2 plan sent at 20:00:01 (measured 45% in the 15 minutes
# after), two v1 moves proposed together at 20:00:00 (10% -> 30%), one sent at 19:59:00
ACTIONS = [
    action("bi01", "2026-11-11T20:00:00.000Z", "proposed", 0.1, 0.2),
    action(HOSTILE_AGENT, "2026-11-11T20:00:00.000Z", "proposed", 0.2, 0.3),
    action("su07", "2026-11-11T19:59:00.000Z", "sent", 0.05, 0.1),
    plan("2026-11-11T20:00:01.000Z"),
]


def listed(agent_id: str, state: str, reason: str | None, since: str, site: str) -> dict[str, Any]:
    """One agent as the monitor stores a queue's list (`in_state_s`, `overdue` as of then)."""
    return {"agent_id": agent_id, "state": state, "reason": reason, "since": since,
            "in_state_s": 0.0, "overdue": False, "site": site}  # fmt: skip


# sales at 20:00:00, limits not_ready 900 s, wrap_up 120 s: the hostile id not_ready for
# 20:00 and sa02 in wrap-up for 3:00 are overdue; sa03 not_ready for 10:00 is not; sa04
# busy for 45 s. billing: one agent, available. The API recomputes times and flags.
AGENT_LISTS = {
    "sales": {
        "queue_id": "sales", "as_of": AS_OF, "overdue": 2, "staffed": 4,
        "not_ready_alert_s": 900.0, "wrap_up_alert_s": 120.0,
        "agents": [
            listed("sa04", "busy", None, "2026-11-11T19:59:15.000Z", "nyc"),
            listed("sa03", "not_ready", "break", "2026-11-11T19:50:00.000Z", "lon"),
            listed("sa02", "wrap_up", None, "2026-11-11T19:57:00.000Z", "lon"),
            listed(HOSTILE_AGENT, "not_ready", "<b>lunch</b>", "2026-11-11T19:40:00.000Z", "lon"),
        ],
    },
    "billing": {
        "queue_id": "billing", "as_of": AS_OF, "overdue": 0, "staffed": 1,
        "not_ready_alert_s": 900.0, "wrap_up_alert_s": 120.0,
        "agents": [listed("bi02", "available", None, "2026-11-11T19:59:00.000Z", "lon")],
    },
}  # fmt: skip


# the counts the monitor writes with the lists: sales 2 overdue of 4 (both at lon)
AGENT_COUNTS = {
    "sales": {"queue_id": "sales", "as_of": AS_OF, "staffed": 4, "overdue": 2,
              "by_site": {"lon": {"staffed": 3, "overdue": 2}, "nyc": {"staffed": 1, "overdue": 0}}},
    "billing": {"queue_id": "billing", "as_of": AS_OF, "staffed": 1, "overdue": 0,
                "by_site": {"lon": {"staffed": 1, "overdue": 0}}},
}  # fmt: skip


async def seed_agents(redis_url: str, prefix: str) -> None:
    """Write the agents lists where the monitor writes them."""
    redis = aioredis.Redis.from_url(redis_url)
    try:
        for queue_id, body in AGENT_LISTS.items():
            await redis.hset(f"{prefix}agents:queues", queue_id, orjson.dumps(body))
        for queue_id, counts in AGENT_COUNTS.items():
            await redis.hset(f"{prefix}agents:counts", queue_id, orjson.dumps(counts))
    finally:
        await redis.aclose()


async def seed(redis_url: str, prefix: str) -> None:
    """Write the hand-made snapshots, alerts and actions where the API reads them."""
    redis = aioredis.Redis.from_url(redis_url)
    try:
        for snap in SNAPSHOTS:
            await redis.hset(f"{prefix}snapshots", snap["queue_id"], orjson.dumps(snap))
        for a in ALERTS:
            await redis.hset(f"{prefix}alerts", a["alert_id"], orjson.dumps(a))
        for a in ACTIONS:
            await redis.hset(f"{prefix}actions", a["action_id"], orjson.dumps(a))
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def api_server(
    stack: LocalStack, prefix: str, tokens: str = TOKENS, **settings: Any
) -> AsyncIterator[str]:
    app = create_api(
        ApiSettings(
            kafka_bootstrap=stack.bootstrap,
            redis_url=stack.redis_url,
            topic_prefix=prefix,
            api_tokens=tokens,
            **settings,
        )
    )
    async with serve(app) as url:
        yield url


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
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
        try:
            yield browser
        finally:
            await browser.close()


async def texts(page: Page, selector: str, attribute: str | None = None) -> list[str]:
    """The text (or an attribute) of every element matching `selector`, in page order."""
    if attribute is None:
        return list(await page.eval_on_selector_all(selector, "ns => ns.map(n => n.textContent)"))
    return list(
        await page.eval_on_selector_all(
            selector, "(ns, a) => ns.map(n => n.getAttribute(a))", attribute
        )
    )


# everything visible that sticks out sideways, tiles that clip, and (but on a phone,
# which scrolls) tiles below the fold
OFF_SCREEN = """phone => {
  const out = [];
  const W = innerWidth, H = innerHeight;
  if (document.documentElement.scrollWidth > W) out.push("page wider: " + document.documentElement.scrollWidth);
  for (const n of document.querySelectorAll("body *")) {
    const r = n.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(n).visibility === "hidden") continue;
    if (n.closest("#login")) continue;
    if (r.right > W + 1 || r.left < -1) out.push(n.tagName + "." + n.className + " x " + r.left + ".." + r.right);
  }
  for (const b of document.querySelectorAll(".figs b, .rate, .chip, .plan > *")) {
    if (b.scrollWidth > b.clientWidth + 1) out.push("text cut " + b.textContent);
  }
  for (const t of document.querySelectorAll(".tile")) {
    if (t.scrollHeight > t.clientHeight + 1) out.push("tile clips " + t.dataset.queue + " " + t.scrollHeight + ">" + t.clientHeight);
    const r = t.getBoundingClientRect();
    if (!phone && r.bottom > H + 1) out.push("tile below the fold " + t.dataset.queue + " " + r.bottom);
  }
  return out;
}"""
