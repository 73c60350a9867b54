"""Incidents (contract 7): `GET /v1/incidents`, the after-action page `GET /incidents/{id}`
with its chart drawn on the server, the one-tap ack link `GET /ack/{alert_id}`, and the
demo lead's inbox page `GET /inbox`."""

from __future__ import annotations

import asyncio
import html
import io
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure

from services.api.auth import Principal
from services.api.routes import State, Viewer
from services.api.state import ApiState
from shared.acks import acknowledge_alert
from shared.errors import Forbidden, NotFound
from shared.http import JsonResponse, bearer_token, json_response
from shared.messages.incidents import Incident
from shared.notify_config import ack_what, link_ok, page_what
from shared.store import text

router = APIRouter()
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def link_key(api: ApiState) -> bytes:
    """The key of signed links, shared with the notifier (made by whichever comes first)."""
    await api.redis.set(api.keys.link_key, secrets.token_hex(32), nx=True)
    return bytes.fromhex(text(await api.redis.get(api.keys.link_key) or b""))


async def incidents(api: ApiState) -> list[Incident]:
    raw = await api.redis.hgetall(api.keys.incidents)
    found = [Incident.model_validate_json(v) for v in raw.values()]
    return sorted(found, key=lambda i: i.opened_at, reverse=True)


async def one(api: ApiState, incident_id: str) -> Incident:
    raw = await api.redis.hget(api.keys.incidents, incident_id[:100])
    if raw is None:
        raise NotFound(f"incident {incident_id[:100]!r} not found")
    return Incident.model_validate_json(raw)


async def seen_by(who: Principal, api: ApiState, incident: Incident) -> bool:
    """Whether a token scoped to sites or queues may see this incident's queue."""
    try:
        await api.check_queue(who, incident.queue_id)
    except NotFound:
        return False
    return True


@router.get("/v1/incidents", summary="Incidents, open (default) or all, newest first")
async def list_incidents(
    who: Viewer, api: State, state: Literal["open", "all"] = "open"
) -> JsonResponse:
    found = [i for i in await incidents(api) if state == "all" or i.state == "open"]
    shown = [i.as_json() for i in found if await seen_by(who, api, i)]
    return json_response({"incidents": shown})


@router.get("/v1/incidents/{incident_id}", summary="One incident: timeline and summary")
async def get_incident(incident_id: str, who: Viewer, api: State) -> JsonResponse:
    incident = await one(api, incident_id)
    await api.check_queue(who, incident.queue_id)
    return json_response(incident.as_json())


def chart_svg(incident: Incident) -> str:
    """Answer rate, arrivals against expected, and agents over the incident, as SVG."""
    series = incident.series
    when = [datetime.fromtimestamp(s.at, UTC) for s in series]
    fig = Figure(figsize=(8, 6.4), dpi=100)
    rate, arrivals, agents = fig.subplots(3, 1, sharex=True)
    rate.plot(when, [None if s.answer_rate is None else 100 * s.answer_rate for s in series],
              color="#1f6feb", label="answer rate (30 s), %")  # fmt: skip
    rate.axhline(100 * incident.sl_target, color="#2da44e", linestyle="--", label="target")
    rate.set_ylim(0, 105)
    rate.set_ylabel("answer rate %")
    arrivals.plot(when, [s.arrivals for s in series], color="#cf222e", label="arrivals")
    arrivals.plot(when, [s.expected for s in series], color="#57606a", linestyle="--",
                  label="expected")  # fmt: skip
    arrivals.set_ylabel("calls / window")
    agents.step(when, [s.agents for s in series], where="post", color="#8250df", label="staffed")
    agents.set_ylabel("agents")
    for ax in (rate, arrivals, agents):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
        for action in incident.actions:
            ax.axvline(datetime.fromtimestamp(action.created_at, UTC), color="#bf8700", alpha=0.5)
    hours = DateFormatter("%H:%M")  # type: ignore[no-untyped-call]  # matplotlib leaves it untyped
    agents.xaxis.set_major_formatter(hours)
    agents.set_xlabel("time (UTC); orange lines: dispatcher actions")
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    svg = out.getvalue()
    return svg[svg.index("<svg") :]


def _pct(value: object) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "–"


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _at(epoch: float | None) -> str:
    return "–" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def _numbers(n: dict[str, Any]) -> str:  # Any: alert numbers
    parts = []
    if n.get("ratio") is not None:
        parts.append(f"{_pct(n['ratio'])} of expected")
    if n.get("answer_rate_live") is not None:
        parts.append(f"answer rate {_pct(n['answer_rate_live'])}")
    return ", ".join(parts) or "–"


def _commands(commands: list[dict[str, Any]]) -> str:  # Any: command JSON
    """`agent.activate × 4, queue.callback`: each command type once, with its count."""
    counts: dict[str, int] = {}
    for c in commands:
        counts[str(c.get("type", "?"))] = counts.get(str(c.get("type", "?")), 0) + 1
    return ", ".join(f"{t} × {n}" if n > 1 else t for t, n in counts.items())[:500] or "–"


def page_html(incident: Incident, chart: str) -> str:
    """The after-action page: summary, chart, alerts, actions, timeline. Every text escaped."""
    e = html.escape
    s = incident.summary
    rows = [
        ("state", incident.state), ("opened", _at(incident.opened_at)),
        ("closed", _at(incident.closed_at)), ("duration", _secs(s.duration_s)),
        ("time to first action", _secs(s.time_to_first_action_s)),
        ("time to recover", _secs(s.time_to_recover_s)),
        ("answer rate during", _pct(s.answer_rate)), ("abandonment during", _pct(s.abandon_rate)),
        ("agents moved", str(s.agents_moved)), ("callbacks offered", str(s.callbacks_offered)),
        ("callbacks kept", str(s.callbacks_kept)), ("highest tier", str(s.max_tier)),
    ]  # fmt: skip
    summary = "".join(
        f'<tr><th>{e(k)}</th><td data-field="{e(k)}">{e(v)}</td></tr>' for k, v in rows
    )
    alerts = "".join(
        f"<tr><td>{e(a.kind)}</td><td>{a.tier}</td><td>{_at(a.raised_at)}</td>"
        f"<td>{e(_numbers(a.numbers_then))}</td><td>{e(_numbers(a.numbers_now))}</td>"
        f"<td>{e(a.acked_by or '–')} {_at(a.acked_at) if a.acked_by else ''}</td></tr>"
        for a in incident.alerts
    )
    actions = "".join(
        f"<tr><td>{_at(a.created_at)}</td><td>{e(a.summary or '–')}</td><td>{e(a.state)}</td>"
        f"<td>{e(_commands(a.commands))}</td>"
        f"<td>{e(orjson.dumps(a.projected).decode()[:300])}</td>"
        f"<td>{e(orjson.dumps(a.measured).decode()[:300]) if a.measured else '–'}</td></tr>"
        for a in incident.actions
    )
    timeline = "".join(f"<li><time>{_at(t.at)}</time> {e(t.text)}</li>" for t in incident.timeline)
    title = f"Incident on {incident.queue_id}"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e(title)}</title>
<style>body{{font:15px/1.4 system-ui,sans-serif;margin:1.5rem auto;max-width:56rem;color:#1f2328;padding:0 1rem}}
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}th,td{{border-bottom:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}}
svg{{width:100%;height:auto}}li time{{font-variant-numeric:tabular-nums;color:#57606a;margin-right:.5rem}}
@media print{{body{{margin:0;max-width:none}}h2{{break-after:avoid}}figure{{break-inside:avoid}}}}</style></head>
<body><h1 id="title">{e(title)}</h1><p>Incident <code>{e(incident.incident_id)}</code></p>
<h2>Summary</h2><table id="summary">{summary}</table>
<h2>Over the incident</h2><figure id="chart">{chart}</figure>
<h2>Alerts</h2><table><tr><th>kind</th><th>tier</th><th>raised</th><th>numbers then</th><th>numbers now</th><th>acknowledged</th></tr>{alerts}</table>
<h2>Dispatcher actions</h2><table><tr><th>at</th><th>what</th><th>state</th><th>commands</th><th>projected</th><th>measured</th></tr>{actions}</table>
<h2>Timeline</h2><ol id="timeline">{timeline}</ol></body></html>"""  # noqa: E501


def _message(title: str, body: str, status: int = 200) -> HTMLResponse:
    e = html.escape
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>{e(title)}</title></head>'
        f"<body><h1>{e(title)}</h1><p>{e(body)}</p></body></html>"
    )
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


@router.get("/incidents/{incident_id}", summary="The after-action page (signed link or token)")
async def incident_page(
    incident_id: str, request: Request, api: State, sig: str = ""
) -> HTMLResponse:
    signed = link_ok(await link_key(api), page_what(incident_id), sig[:100], api.clock())
    who = None if signed else api.tokens.require(bearer_token(request), "viewer")
    incident = await one(api, incident_id)
    if who is not None:
        await api.check_queue(who, incident.queue_id)
    chart = await asyncio.to_thread(chart_svg, incident)
    return HTMLResponse(page_html(incident, chart), headers=PAGE_HEADERS)


@router.get("/ack/{alert_id}", summary="The one-tap ack link of a push (signed, expiring)")
async def ack_link(alert_id: str, api: State, by: str = "", sig: str = "") -> HTMLResponse:
    by, at = by[:200], api.clock()
    if not link_ok(await link_key(api), ack_what(alert_id, by), sig[:100], at):
        raise Forbidden("this ack link is wrong or has expired; acknowledge on the board")
    record, change = await acknowledge_alert(api.redis, api.keys, alert_id, by, at)
    if record is None:
        raise NotFound(f"alert {alert_id[:100]!r} not found")
    if change is not None:
        await api.publish("alerts", change.queue_id, change.as_json())
        after = {"acknowledged_by": by, "via": "signed link"}
        await api.audit(Principal(by, "lead"), "alert.ack", alert_id, None, after)
    return _message("Acknowledged", f"{record.queue_id}: acknowledged by {record.acknowledged_by}")


@router.get("/inbox", summary="The demo lead's inbox: the pushes it received, newest first")
async def inbox(request: Request, api: State, token: str = "") -> HTMLResponse:
    api.tokens.require(bearer_token(request) or token[:200] or None, "viewer")
    e = html.escape
    items = []
    for raw in await api.redis.lrange(api.keys.notify_inbox, 0, 99):
        entry = orjson.loads(raw)
        data = (entry.get("body") or {}).get("data") or {}
        links = "".join(
            f' <a href="{e(str(data[k]))}">{label}</a>'
            for k, label in (("ack_url", "Ack"), ("incident_url", "Incident"))
            if isinstance(data.get(k), str) and data[k].startswith(("http://", "https://"))
        )
        lines = "".join(f"<li>{e(str(x))}</li>" for x in data.get("dispatcher") or [])
        items.append(
            f'<li class="push"><time>{e(str(entry.get("received_at")))}</time> '
            f"<b>{e(str(data.get('summary', '')))}</b>{links}<ul>{lines}</ul></li>"
        )
    body = "".join(items) or "<li>No push yet.</li>"
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" '
        'content="5"><meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Demo lead's inbox</title></head><body><h1>Demo lead's inbox</h1>"
        f'<ol id="inbox">{body}</ol><p>{e(time.strftime("%H:%M:%S", time.gmtime()))} UTC</p>'
        "</body></html>"
    )
    return HTMLResponse(page, headers=PAGE_HEADERS)
