"""Websocket tickets, tokens kept out of URLs and logs, and the offline `/docs`
(contract 7; issue 13 item 11)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
import websockets
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.api import docs
from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from shared.localstack import LocalStack, free_port
from shared.logs import setup_logging
from tests.e2e.board_data import SNAPSHOTS, TOKENS, api_server, chromium, seed
from tests.integration.conftest import serve

pytestmark = pytest.mark.e2e


async def refused(url: str, **kwargs: object) -> tuple[int, str]:
    """The close code and reason of a websocket the board refuses."""
    async with websockets.connect(url, **kwargs) as ws:  # type: ignore[arg-type]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def welcome_role(url: str, **kwargs: object) -> str:
    async with websockets.connect(url, **kwargs) as ws:  # type: ignore[arg-type]
        welcome = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
    assert welcome["type"] == "state"
    return str(welcome["role"])


async def test_tickets_are_single_use_short_lived_and_url_tokens_viewer_only(
    stack: LocalStack, prefix: str
) -> None:
    redis = aioredis.Redis.from_url(stack.redis_url)
    async with api_server(stack, prefix) as url, httpx.AsyncClient() as http:
        board = url.replace("http", "ws") + "/v1/ws/board"
        r = await http.post(url + "/v1/ws/ticket")
        assert (r.status_code, r.json()) == (401, {"error": "missing or wrong bearer token"})

        r = await http.post(url + "/v1/ws/ticket", headers={"Authorization": "Bearer board-viewer"})
        body = r.json()
        assert (r.status_code, body["expires_in_s"], body["role"]) == (200, 30, "viewer")
        ticket = body["ticket"]
        key = f"{prefix}ws:ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"
        assert 29_000 < await redis.pttl(key) <= 30_000
        stored = [k async for k in redis.scan_iter(f"{prefix}ws:ticket:*")]
        assert stored == [key.encode()]  # the ticket itself is not kept, only its hash
        assert ticket.encode() not in (await redis.get(key) or b"")

        assert await welcome_role(f"{board}?ticket={ticket}") == "viewer"
        assert await refused(f"{board}?ticket={ticket}") == (
            1008,
            "ticket unknown, used or expired",
        )

        # a lead's ticket past its 30 s
        r = await http.post(url + "/v1/ws/ticket", headers={"Authorization": "Bearer board-lead"})
        late = r.json()["ticket"]
        await redis.pexpire(f"{prefix}ws:ticket:{hashlib.sha256(late.encode()).hexdigest()}", 1)
        await asyncio.sleep(0.05)
        assert await refused(f"{board}?ticket={late}") == (1008, "ticket unknown, used or expired")

        assert await welcome_role(f"{board}?token=board-viewer") == "viewer"
        assert await refused(f"{board}?token=board-admin") == (
            1008,
            "only a viewer token may be put in a URL; use a ticket",
        )
        assert await refused(f"{board}?token=nope") == (1008, "missing or wrong token")
        header = {"additional_headers": {"Authorization": "Bearer board-lead"}}
        assert await welcome_role(board, **header) == "lead"
        wrong = {"additional_headers": {"Authorization": "Bearer nope"}}
        assert await refused(board, **wrong) == (1008, "missing or wrong token")
    await redis.aclose()


async def test_a_scoped_token_sees_its_own_queues_and_sites_on_the_board(
    stack: LocalStack, prefix: str
) -> None:
    await seed(stack.redis_url, prefix)
    tokens = f"{TOKENS},lon:viewer:board-lon:site=lon,bill:viewer:board-bill:queue=billing"
    async with api_server(stack, prefix, tokens=tokens) as url:
        board = url.replace("http", "ws") + "/v1/ws/board"
        async with (
            websockets.connect(f"{board}?token=board-lon") as lon,
            websockets.connect(f"{board}?token=board-bill") as bill,
        ):
            first = orjson.loads(await asyncio.wait_for(lon.recv(), 10))
            # sales is served at lon and nyc: lon sees sales, with its own site only
            assert [q["queue_id"] for q in first["queues"]] == ["sales"]
            assert list(first["queues"][0]["by_site"]) == ["lon"]
            assert sorted(a["alert_id"] for a in first["alerts"]) == ["sl:sales:1", "surge:sales:1"]
            assert len(first["actions"]) == 4 and set(first["history"]) <= {"sales"}
            other = orjson.loads(await asyncio.wait_for(bill.recv(), 10))
            assert [q["queue_id"] for q in other["queues"]] == ["billing"]
            assert [a["alert_id"] for a in other["alerts"]] == ["sl:billing:1"]
            assert other["actions"] == []

            newer = {**SNAPSHOTS[1], "as_of": "2026-11-11T20:00:02.000Z"}
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(f"{prefix}metrics", orjson.dumps(newer), key=b"sales")
            finally:
                await producer.stop()
            tick = orjson.loads(await asyncio.wait_for(lon.recv(), 10))
            assert (tick["type"], [q["queue_id"] for q in tick["queues"]]) == ("tick", ["sales"])
            assert list(tick["queues"][0]["by_site"]) == ["lon"]
            empty = orjson.loads(await asyncio.wait_for(bill.recv(), 10))
            assert (empty["type"], empty["queues"]) == ("tick", [])


@contextlib.asynccontextmanager
async def logged_server(app: FastAPI) -> AsyncIterator[tuple[str, io.StringIO]]:
    """The app under uvicorn as `python -m services.api` runs it (JSON logs, uvicorn's own
    access log on), every log line captured."""
    # as in a fresh process: uvicorn's loggers hand their records to the root's handler
    # (servers run earlier in this session configured them their own way)
    saved: dict[str, tuple[list[logging.Handler], bool, int]] = {}
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate, logger.level)
        logger.handlers, logger.propagate, logger.level = [], True, logging.NOTSET
    setup_logging("INFO")
    root = logging.getLogger()
    handler = next(h for h in root.handlers if getattr(h, "_floorwatch", False))
    assert isinstance(handler, logging.StreamHandler)
    captured = io.StringIO()
    handler.setStream(captured)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}", captured
    finally:
        server.should_exit = True
        await task
        root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        for name, (handlers, propagate, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate, logger.level = handlers, propagate, level


async def test_no_token_ticket_or_signature_reaches_the_log(stack: LocalStack, prefix: str) -> None:
    app = create_api(
        ApiSettings(
            kafka_bootstrap=stack.bootstrap,
            redis_url=stack.redis_url,
            topic_prefix=prefix,
            api_tokens=TOKENS,
        )
    )
    async with logged_server(app) as (url, captured), httpx.AsyncClient() as http:
        board = url.replace("http", "ws") + "/v1/ws/board"
        assert (await http.get(url + "/?token=board-viewer")).status_code == 200
        r = await http.get(url + "/v1/queues?x=1&TOKEN=board-admin")
        assert r.status_code == 401  # a token in the query is not a credential for the API
        await http.get(url + "/ack/a1?sig=sig-0123456789abcdef")
        ticket = (
            await http.post(url + "/v1/ws/ticket", headers={"Authorization": "Bearer board-lead"})
        ).json()["ticket"]
        assert await welcome_role(f"{board}?ticket={ticket}") == "lead"
        assert await welcome_role(f"{board}?token=board-viewer") == "viewer"
        await asyncio.sleep(0.2)
    text = captured.getvalue()
    for secret in ("board-viewer", "board-admin", "board-lead", "sig-0123456789abcdef", ticket):
        assert secret not in text
    lines = [orjson.loads(line)["msg"] for line in text.splitlines()]
    assert '"GET /?token=[redacted] HTTP/1.1" 200' in " ".join(lines)
    assert '"GET /v1/queues?x=1&TOKEN=[redacted] HTTP/1.1" 401' in " ".join(lines)
    assert '"GET /ack/a1?sig=[redacted] HTTP/1.1" 403' in " ".join(lines)  # a wrong signature
    ws_lines = [
        m for m in lines if m.endswith('"WebSocket /v1/ws/board?ticket=[redacted]" [accepted]')
    ]
    assert len(ws_lines) == 1


async def test_docs_work_offline_and_take_a_bearer_token(stack: LocalStack, prefix: str) -> None:
    app = create_api(
        ApiSettings(
            kafka_bootstrap=stack.bootstrap,
            redis_url=stack.redis_url,
            topic_prefix=prefix,
            api_tokens=TOKENS,
        )
    )
    docs.install(app)  # the line services/api/app.py needs
    async with serve(app) as url:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            outside: list[str] = []

            async def only_local(route, request) -> None:  # type: ignore[no-untyped-def]
                if request.url.startswith(url):
                    await route.continue_()
                else:
                    outside.append(request.url)
                    await route.abort()

            await page.route("**/*", only_local)
            await page.goto(url + "/docs")
            await page.wait_for_selector(".swagger-ui .btn.authorize", timeout=15_000)
            await page.click(".swagger-ui .btn.authorize")
            await page.fill(".auth-container input", "board-viewer")
            await page.click(".auth-btn-wrapper .authorize")
            await page.click(".auth-btn-wrapper .btn-done")
            queues = '.opblock-get:has(.opblock-summary-path[data-path="/v1/queues"])'
            await page.click(f"{queues} .opblock-summary")
            await page.click(f"{queues} .try-out__btn")
            await page.click(f"{queues} .execute")
            status = page.locator(f"{queues} .live-responses-table tbody .response-col_status")
            await status.first.wait_for(timeout=10_000)
            assert (await status.first.inner_text()).strip() == "200"
            assert outside == []
