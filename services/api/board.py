"""The wall board: its page at `/` and its websocket `WS /v1/ws/board` (contract 7)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib import resources
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse

from services.api.fanout import Client
from services.api.state import ApiState

log = logging.getLogger(__name__)
router = APIRouter()
POLICY_VIOLATION = 1008


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    html = resources.files("services.api").joinpath("static/board.html").read_text()
    return HTMLResponse(html)


def origin_allowed(origin: str | None, host: str | None, allowed: set[str]) -> bool:
    """No Origin (not a browser), a listed Origin, or the page's own host."""
    if origin is None:
        return True
    if origin.rstrip("/") in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host


async def _token(ws: WebSocket) -> str | None:
    token = ws.query_params.get("token")
    if token:
        return token
    try:
        first = await asyncio.wait_for(ws.receive_text(), 10)
        message = orjson.loads(first)
    except (TimeoutError, orjson.JSONDecodeError, WebSocketDisconnect):
        return None
    value = message.get("token") if isinstance(message, dict) else None
    return value if isinstance(value, str) else None


@router.websocket("/v1/ws/board")
async def board_socket(ws: WebSocket) -> None:
    api: ApiState = ws.app.state.api
    await ws.accept()  # then close with 1008, which a browser can see, rather than a bare 403
    if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), api.settings.origins()):
        await ws.close(code=POLICY_VIOLATION, reason="origin not allowed")
        return
    principal = api.tokens.identify(await _token(ws))
    if principal is None:
        await ws.close(code=POLICY_VIOLATION, reason="missing or wrong token")
        return
    client = api.fanout.connect()
    try:
        welcome = api.fanout.welcome(
            await api.alerts(active_only=True), await api.actions(), api.settings.tick_s
        )
        welcome["role"] = principal.role
        if not welcome["queues"]:
            welcome["queues"] = await api.snapshots()
        await ws.send_text(orjson.dumps(welcome).decode())
        await _pump(ws, client)
    finally:
        api.fanout.disconnect(client)


async def _pump(ws: WebSocket, client: Client) -> None:
    """Send the outbox and read (and ignore) the client until either side ends."""

    async def send() -> None:
        while True:
            message = await client.outbox.get()
            await ws.send_text(message.decode())

    async def receive() -> None:
        while True:
            if (await ws.receive())["type"] == "websocket.disconnect":
                return

    async def dropped() -> None:
        await client.dropped.wait()
        log.warning("board client too slow: dropped")

    tasks = [asyncio.create_task(f()) for f in (send, receive, dropped)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
    if client.dropped.is_set():
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(code=1013, reason="too slow; reconnect")
