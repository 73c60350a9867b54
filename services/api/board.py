"""The wall board: its page at `/`, its static files, websocket tickets and the websocket
`WS /v1/ws/board` (contract 7)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import secrets
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, Response

from services.api.auth import Principal
from services.api.fanout import Client, Fanout
from services.api.state import ApiState
from shared.errors import FloorwatchError, NotFound
from shared.http import JsonResponse, bearer_token, json_response
from shared.tasks import within

log = logging.getLogger(__name__)
router = APIRouter()
POLICY_VIOLATION = 1008
TICKET_TTL_S = 30

# No inline script or style, nothing from another origin: a queue id holding HTML can
# neither run script nor send anything anywhere (issue 13 item 9).
BOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": BOARD_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
STATIC = {
    "board.js": "text/javascript; charset=utf-8",
    "board.css": "text/css; charset=utf-8",
}


def _static(name: str) -> str:
    return resources.files("services.api").joinpath(f"static/{name}").read_text()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(_static("board.html"), headers=SECURITY_HEADERS)


@router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    """The board's script and style sheet (a fixed list: no path is read from the URL)."""
    media_type = STATIC.get(name)
    if media_type is None:
        raise NotFound(f"no static file {name!r}")
    return Response(_static(name), media_type=media_type, headers=SECURITY_HEADERS)


def origin_allowed(origin: str | None, host: str | None, allowed: set[str]) -> bool:
    """No Origin (not a browser), a listed Origin, or the page's own host."""
    if origin is None:
        return True
    if origin.rstrip("/") in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host


def _ticket_key(api: ApiState, ticket: str) -> str:
    # only the ticket's hash is stored: a copy of Redis holds no usable ticket
    return f"{api.keys.prefix}ws:ticket:{hashlib.sha256(ticket.encode()).hexdigest()}"


def _principal_json(principal: Principal) -> bytes:
    return orjson.dumps(dataclasses.asdict(principal), default=sorted)


def _principal_from(raw: bytes | str) -> Principal | None:
    try:
        # Any: the principal's own fields, as `_principal_json` wrote them
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in orjson.loads(raw).items()
        }
        return Principal(**fields)
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        return None


@router.post(
    "/v1/ws/ticket",
    summary="A single-use websocket ticket, valid 30 s, for the bearer token's principal",
)
async def ws_ticket(request: Request) -> JsonResponse:
    api: ApiState = request.app.state.api
    principal = api.tokens.require(bearer_token(request), "viewer")
    ticket = secrets.token_urlsafe(24)
    await api.redis.set(_ticket_key(api, ticket), _principal_json(principal), ex=TICKET_TTL_S)
    return json_response({"ticket": ticket, "expires_in_s": TICKET_TTL_S, "role": principal.role})


async def redeem_ticket(api: ApiState, ticket: str) -> Principal | None:
    """The principal a ticket was issued to; a ticket works once, within its TTL."""
    if not ticket or len(ticket) > 200:
        return None
    raw = await api.redis.getdel(_ticket_key(api, ticket))
    return None if raw is None else _principal_from(raw)


class SocketRefused(FloorwatchError):
    """A websocket closed with 1008 and this reason."""


async def _first_message_token(ws: WebSocket) -> str | None:
    """A token sent as the first message (`{"token": ...}`): never in a URL, so never logged."""
    try:
        first = await within(ws.receive_text(), 10)
        message = orjson.loads(first)
    except (TimeoutError, orjson.JSONDecodeError, WebSocketDisconnect):
        return None
    value = message.get("token") if isinstance(message, dict) else None
    return value if isinstance(value, str) else None


async def authenticate(ws: WebSocket, api: ApiState) -> Principal:
    """A ticket (`?ticket=`), an `Authorization` header, a viewer's `?token=` (unattended
    wall displays), or a token as the first message (contract 7)."""
    ticket = ws.query_params.get("ticket")
    if ticket is not None:
        principal = await redeem_ticket(api, ticket)
        if principal is None:
            raise SocketRefused("ticket unknown, used or expired")
        return principal
    header = ws.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if header:
        principal = api.tokens.identify(value.strip() if scheme.lower() == "bearer" else None)
        if principal is None:
            raise SocketRefused("missing or wrong token")
        return principal
    token = ws.query_params.get("token")
    if token is not None:
        principal = api.tokens.identify(token)
        if principal is None:
            raise SocketRefused("missing or wrong token")
        if principal.role != "viewer":
            raise SocketRefused("only a viewer token may be put in a URL; use a ticket")
        return principal
    principal = api.tokens.identify(await _first_message_token(ws))
    if principal is None:
        raise SocketRefused("missing or wrong token")
    return principal


class Scope:
    """What one board client is sent: everything, or a scoped token's own queues, with
    only its own sites in their `by_site` (contract 7)."""

    def __init__(self, principal: Principal, fanout: Fanout) -> None:
        self.principal = principal
        self.fanout = fanout

    def _sites(self, queue_id: str) -> list[str]:
        latest = self.fanout.latest.get(queue_id) or {}
        return list(latest.get("by_site") or {})

    def sees(self, queue_id: object) -> bool:
        return isinstance(queue_id, str) and self.principal.sees(queue_id, self._sites(queue_id))

    def snapshots(self, snaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for snap in snaps:
            by_site = snap.get("by_site") or {}
            if not self.principal.sees(str(snap["queue_id"]), list(by_site)):
                continue
            if self.principal.sites and by_site:
                own = {k: v for k, v in by_site.items() if k in self.principal.sites}
                snap = {**snap, "by_site": own}
            out.append(snap)
        return out

    def welcome(self, welcome: dict[str, Any]) -> dict[str, Any]:
        if not self.principal.scoped:
            return welcome
        queues = self.snapshots(welcome["queues"])
        shown = {q["queue_id"] for q in queues}
        return {
            **welcome,
            "queues": queues,
            "history": {q: h for q, h in welcome.get("history", {}).items() if q in shown},
            "alerts": [a for a in welcome["alerts"] if self.sees(a.get("queue_id"))],
            "actions": [a for a in welcome["actions"] if self.sees(a.get("queue_id"))],
        }

    def message(self, data: bytes) -> bytes | None:
        """The message as this client may see it; None when it may see none of it."""
        if not self.principal.scoped:
            return data
        message = orjson.loads(data)
        kind = message.get("type")
        if kind == "tick":  # sent even when empty: it says the feed is alive
            return orjson.dumps({**message, "queues": self.snapshots(message["queues"])})
        body = message.get(kind) if isinstance(kind, str) else None
        if isinstance(body, dict) and self.sees(body.get("queue_id")):
            return data
        return None


@router.websocket("/v1/ws/board")
async def board_socket(ws: WebSocket) -> None:
    api: ApiState = ws.app.state.api
    await ws.accept()  # then close with 1008, which a browser can see, rather than a bare 403
    if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), api.settings.origins()):
        await ws.close(code=POLICY_VIOLATION, reason="origin not allowed")
        return
    try:
        principal = await authenticate(ws, api)
    except SocketRefused as refused:
        await ws.close(code=POLICY_VIOLATION, reason=refused.message)
        return
    client = api.fanout.connect()
    try:
        welcome = api.fanout.welcome(
            await api.alerts(active_only=True), await api.actions(), api.settings.tick_s
        )
        welcome["role"] = principal.role
        if not welcome["queues"]:
            welcome["queues"] = await api.snapshots()
        scope = Scope(principal, api.fanout)
        await ws.send_text(orjson.dumps(scope.welcome(welcome)).decode())
        await _pump(ws, client, scope)
    finally:
        api.fanout.disconnect(client)


async def _pump(ws: WebSocket, client: Client, scope: Scope) -> None:
    """Send the outbox and read (and ignore) the client until either side ends."""

    async def send() -> None:
        while True:
            message = scope.message(await client.outbox.get())
            if message is not None:
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
