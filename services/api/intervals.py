"""`GET /v1/intervals` (contract 7): a queue's closed 15-minute intervals, oldest first.

The monitor writes them to Redis as it closes them (`services.monitor.intervals`); this
reads one queue's (or one site of it) whose start lies in [from, to). `to` defaults to
now, `from` to a day before `to`; a span over 35 days (what is kept) is refused.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import ValidationError

from services.api.routes import _ERRORS, State, Viewer
from shared.core.intervals import KEEP_S
from shared.errors import Invalid, NotFound
from shared.http import JsonResponse, json_response
from shared.messages.intervals import Interval
from shared.timefmt import iso_ms, parse_ts

router = APIRouter(prefix="/v1", tags=["intervals"], responses=_ERRORS)
DEFAULT_SPAN_S = 86400.0

EXAMPLE = {
    "queue_id": "billing",
    "site": None,
    "from": "2026-11-11T10:00:00.000Z",
    "to": "2026-11-11T10:30:00.000Z",
    "intervals": [
        {
            "queue_id": "billing", "site": None, "start": "2026-11-11T10:00:00.000Z",
            "end": "2026-11-11T10:15:00.000Z", "arrivals": 7, "forecast": 6.0, "offered": 4,
            "answered_within_target": 1, "answer_rate": 0.25, "abandon_rate": 0.25,
            "aht_s": 250.0, "asa_s": 40.0, "agents_staffed_avg": 1.667, "agents_required": 4,
        }
    ],
}  # fmt: skip


def _instant(name: str, value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise Invalid(f"{name}: {exc} (an RFC 3339 timestamp with an offset)") from None


@router.get(
    "/intervals",
    summary="A queue's closed 15-minute intervals (or one site's), oldest first",
    responses={200: {"content": {"application/json": {"example": EXAMPLE}}}},
)
async def list_intervals(
    who: Viewer,
    api: State,
    queue_id: Annotated[str | None, Query(max_length=256)] = None,
    site: Annotated[str | None, Query(max_length=256)] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
) -> JsonResponse:
    if not queue_id:
        raise Invalid("queue_id: required (the queue whose intervals to show)")
    end = _instant("to", to, api.clock())
    start = _instant("from", from_, end - DEFAULT_SPAN_S)
    if end <= start:
        raise Invalid("to: must be after from")
    if end - start > KEEP_S:
        raise Invalid("from, to: at most 35 days apart (intervals are kept 35 days)")
    await api.check_queue(who, queue_id)
    if site is not None and who.sites and site not in who.sites:
        raise NotFound(f"site {site!r} not found")
    members = await api.redis.zrangebyscore(api.keys.intervals(queue_id, site), start, f"({end}")
    out = []
    for member in members:
        if not isinstance(member, bytes | str):
            continue  # no scores asked for: never a pair
        try:
            out.append(Interval.model_validate_json(member).public())
        except ValidationError:
            continue  # written by a newer or older monitor: not this API's to show
    body = {"queue_id": queue_id, "site": site, "from": iso_ms(start), "to": iso_ms(end)}
    return json_response({**body, "intervals": out})
