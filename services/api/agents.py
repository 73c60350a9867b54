"""`GET /v1/queues/{queue_id}/agents`: a queue's agents with state, reason and time in
state, overdue ones first (`shared.core.roster`); `GET /v1/agents` counts them per queue.

The monitor that owns a queue writes its list to Redis when the list or its overdue
agents change; this answers it at the queue's latest tick (`as_of`, the later of the
snapshot's and the list's), times in state and overdue flags computed at that instant.
A token scoped to sites sees the agents of those sites alone.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request

from services.api.auth import Principal
from services.api.routes import _ERRORS, State, Viewer, get_queue
from services.api.state import ApiState
from shared.core.roster import Entry, Limits, QueueAgents, listing, stored_entries
from shared.errors import NotFound
from shared.http import JsonResponse, json_response
from shared.store import text
from shared.timefmt import parse_ts

router = APIRouter(prefix="/v1", tags=["agents"], responses=_ERRORS)

EXAMPLE = {
    "queue_id": "billing",
    "as_of": "2026-11-11T20:00:00.000Z",
    "agents": [
        {"agent_id": "a3", "state": "not_ready", "reason": "training",
         "since": "2026-11-11T19:43:20.000Z", "in_state_s": 1000.0, "overdue": True,
         "site": "north"},
        {"agent_id": "a1", "state": "not_ready", "reason": "break",
         "since": "2026-11-11T19:51:40.000Z", "in_state_s": 500.0, "overdue": False,
         "site": "north"},
        {"agent_id": "a4", "state": "busy", "reason": None,
         "since": "2026-11-11T19:59:10.000Z", "in_state_s": 50.0, "overdue": False,
         "site": "south"},
    ],
    "overdue": 1,
    "staffed": 3,
    "not_ready_alert_s": 900.0,
    "wrap_up_alert_s": 120.0,
}  # fmt: skip


def _at(queue_id: str, as_of: float, stored: dict[str, Any] | None, who: Principal) -> QueueAgents:
    """The queue's list at its latest tick (`as_of`, or the list's own if later), as this
    token may see it."""
    entries: list[Entry] = []
    limits = Limits()
    staffed: int | None = None
    if stored is not None:
        written, entries, limits = stored_entries(stored)
        as_of = max(as_of, written)
        staffed = int(stored["staffed"])  # the list is bounded; this counts them all
    if who.sites:
        entries = [e for e in entries if e.site in who.sites]
        staffed = None
    out = listing(queue_id, as_of, entries, limits)
    if staffed is not None and staffed > out.staffed:
        out = QueueAgents(queue_id, as_of, out.agents, out.overdue, staffed, limits)
    return out


def _visible(api: ApiState, who: Principal, queue_id: str, snapshot: dict[str, Any] | None) -> bool:
    return api.visible(who, snapshot if snapshot is not None else {"queue_id": queue_id})


@router.get(
    "/queues/{queue_id:path}/agents",
    summary="A queue's agents: state, reason, time in state, overdue ones first",
    responses={200: {"content": {"application/json": {"example": EXAMPLE}}}},
)
async def queue_agents(queue_id: str, request: Request, who: Viewer, api: State) -> JsonResponse:
    raw_path = request.scope.get("raw_path")
    if isinstance(raw_path, bytes) and not raw_path.endswith(b"/agents"):
        # `.../x%2Fagents`: the snapshot of a queue whose id ends in "/agents"
        return await get_queue(f"{queue_id}/agents", who, api)
    pipe = api.redis.pipeline(transaction=False)
    pipe.hget(api.keys.snapshots, queue_id)
    pipe.hget(api.keys.agent_lists, queue_id)
    raw_snapshot, raw_list = await pipe.execute()
    snapshot = orjson.loads(raw_snapshot) if raw_snapshot is not None else None
    stored = orjson.loads(raw_list) if raw_list is not None else None
    if (snapshot is None and stored is None) or not _visible(api, who, queue_id, snapshot):
        raise NotFound(f"queue {queue_id!r}: no snapshot yet")
    as_of = parse_ts(str(snapshot["as_of"])) if snapshot is not None else float("-inf")
    return json_response(_at(queue_id, as_of, stored, who).as_json())


@router.get(
    "/agents",
    summary="Per queue: agents staffed and overdue, overdue by the agents' site (the tiles)",
)
async def overdue_counts(who: Viewer, api: State) -> JsonResponse:
    # the counts the monitors write with each list (small, unlike the lists), at the
    # latest tick of any monitor: a count changes only with a list written again; the
    # snapshots are read only for a scoped token, to know where each queue is served
    pipe = api.redis.pipeline(transaction=False)
    pipe.get(api.keys.snapshots_as_of)
    pipe.hgetall(api.keys.agent_counts)
    raw_as_of, raw_counts = await pipe.execute()
    counts = {text(k): orjson.loads(v) for k, v in raw_counts.items()}
    snapshots = {str(s["queue_id"]): s for s in await api.snapshots()} if who.scoped else {}
    queues = []
    for queue_id in sorted(counts):
        if not _visible(api, who, queue_id, snapshots.get(queue_id)):
            continue
        c = counts[queue_id]
        sites: dict[str, dict[str, int]] = c["by_site"]
        if who.sites:
            sites = {name: n for name, n in sites.items() if name in who.sites}
            staffed = sum(n["staffed"] for n in sites.values())
            overdue = sum(n["overdue"] for n in sites.values())
        else:
            staffed, overdue = int(c["staffed"]), int(c["overdue"])
        by_site = {name: n["overdue"] for name, n in sites.items() if n["overdue"]}
        queues.append(
            {
                "queue_id": queue_id,
                "overdue": overdue,
                "staffed": staffed,
                "overdue_by_site": by_site,
            }
        )
    as_of = str(orjson.loads(raw_as_of)) if raw_as_of else None
    return json_response({"as_of": as_of if queues else None, "queues": queues})
