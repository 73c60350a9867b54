"""The read API of contract 7: queues, alerts, settings, forecast, staffing.

The action routes are in actions.py.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from services.api.auth import Principal
from services.api.state import ApiState
from shared.acks import acknowledge_alert
from shared.core.centre import merge
from shared.core.erlang import agents_for_target, erlang_a, erlang_c
from shared.core.monitor import centre_snapshot
from shared.errors import FloorwatchError
from shared.forecast import Forecast
from shared.http import JsonResponse, bearer_token, json_response
from shared.messages.alerts import AlertRecord
from shared.notify_config import NotifyConfig


class ApiError(FloorwatchError):
    """An error answered as `{"error": ...}` with `status`."""

    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message, status=status, details=details)


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(state_of)]


_bearer = HTTPBearer(auto_error=False, description="an API token: `name:role:secret`'s secret")


def _principal(role: Literal["viewer", "lead", "admin"]) -> Any:  # Any: a FastAPI dependency
    async def dep(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        api = state_of(request)
        principal = api.tokens.require(bearer_token(request), role)
        await api.admit(principal)
        return principal

    return Depends(dep)


Viewer = Annotated[Principal, _principal("viewer")]
Lead = Annotated[Principal, _principal("lead")]
Admin = Annotated[Principal, _principal("admin")]


class ErrorBody(BaseModel):
    """Every error answer (contract 7)."""

    error: str
    errors: list[str] | None = None


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "model": ErrorBody}
    for status, text in (
        (401, "missing or wrong bearer token"),
        (403, "the token's role may not do this"),
        (404, "not found, or outside the token's scope"),
        (422, "invalid input: `errors` names each field and rule"),
        (429, "the token's rate limit; retry after `Retry-After` seconds"),
        (503, "Redis or the broker unavailable; retry after `Retry-After` seconds"),
    )
}
router = APIRouter(prefix="/v1", responses=_ERRORS)


def _rules(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        out.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    return out


SNAPSHOT_EXAMPLE = {
    "queue_id": "billing",
    "as_of": "2026-11-11T20:00:00.000Z",
    "windows": {
        "300": {
            "arrivals": 50, "answered": 34, "answered_within_target": 13, "short_abandoned": 0,
            "abandoned": 12, "callbacks": 5, "overflowed": 2, "offered": 46,
            "answer_rate": 0.2826, "answer_rate_live": 0.26, "abandon_rate": 0.2609,
            "asa_s": 53.3, "aht_s": 204.5,
        }
    },
    "waiting": 6,
    "waiting_over_target": 4,
    "longest_wait_s": 87.8,
    "agents": {"available": 1, "busy": 5, "wrap_up": 2, "not_ready": 1, "staffed": 9},
    "surge": {"ratio": 1.6, "expected": 31.25, "arrivals": 50, "tier": 2,
              "since": "2026-11-11T19:58:12.000Z"},
    "sl_breach": True,
}  # fmt: skip


def _example(body: object) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": body}}}}


Model = TypeVar("Model", bound=BaseModel)


def _validated(model: type[Model], body: dict[str, Any], what: str) -> Model:
    """The body as `model`, or 422 with the rule each field breaks."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiError(422, f"invalid {what}", _rules(exc)) from None


@router.get(
    "/queues",
    summary="Every queue's latest snapshot",
    responses=_example({"as_of": "2026-11-11T20:00:00.000Z", "queues": [SNAPSHOT_EXAMPLE]}),
)
async def list_queues(who: Viewer, api: State) -> JsonResponse:
    try:
        every = await api.snapshots()
    except RedisError:  # the board's fan-out keeps the latest of each queue from Kafka
        every = [api.fanout.latest[q] for q in sorted(api.fanout.latest)]
        if not every:
            raise
    snapshots = [s for s in every if api.visible(who, s)]
    as_of = max((str(s["as_of"]) for s in snapshots), default=None)
    return json_response({"as_of": as_of, "queues": snapshots})


@router.get(
    "/queues/{queue_id:path}",
    summary="One queue's latest snapshot",
    responses=_example(SNAPSHOT_EXAMPLE),
)
async def get_queue(queue_id: str, who: Viewer, api: State) -> JsonResponse:
    try:
        raw = await api.redis.hget(api.keys.snapshots, queue_id)
        snapshot = orjson.loads(raw) if raw is not None else None
    except RedisError:
        snapshot = api.fanout.latest.get(queue_id)
        if snapshot is None:
            raise
    if snapshot is None or not api.visible(who, snapshot):
        raise ApiError(404, f"queue {queue_id!r}: no snapshot yet")
    return json_response(snapshot)


@router.get("/centre", summary="Centre totals: every queue summed, each agent once")
async def get_centre(who: Viewer, api: State) -> JsonResponse:
    if who.scoped:
        raise ApiError(404, "centre totals are for tokens that see every queue")
    parts = [orjson.loads(v) for v in (await api.redis.hgetall(api.keys.centre_parts)).values()]
    newest = max((float(p["now"]) for p in parts), default=None)
    if newest is None:
        raise ApiError(404, "no centre totals yet")
    # parts of monitors that stopped ticking are left out (their queues moved on)
    fresh = [p for p in parts if float(p["now"]) >= newest - 5 * api.settings.tick_s]
    return json_response(centre_snapshot(merge(fresh)).model_dump(mode="json"))


@router.get("/alerts", summary="Alerts, active (default) or all")
async def list_alerts(
    who: Viewer, api: State, state: Literal["active", "all"] = "active"
) -> JsonResponse:
    alerts = await api.alerts(active_only=state == "active")
    if who.scoped:
        seen = {str(s["queue_id"]) for s in await api.snapshots() if api.visible(who, s)}
        alerts = [a for a in alerts if a["queue_id"] in seen]
    return json_response({"alerts": alerts})


@router.post("/alerts/{alert_id:path}/ack", summary="Acknowledge an alert (lead)")
async def ack_alert(alert_id: str, who: Lead, api: State) -> JsonResponse:
    if who.scoped:
        raw = await api.redis.hget(api.keys.alerts, alert_id)
        if raw is not None:
            await api.check_queue(who, AlertRecord.model_validate_json(raw).queue_id)
    record, change = await acknowledge_alert(api.redis, api.keys, alert_id, who.name, api.clock())
    if record is None:
        raise ApiError(404, f"alert {alert_id!r} not found")
    if change is not None:
        await api.publish("alerts", change.queue_id, change.as_json())
        await api.audit(who, "alert.ack", alert_id, None, {"acknowledged_by": who.name})
    return json_response(record.as_json())


@router.put(
    "/forecast",
    summary="Upload a queue's forecast (admin)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "queue_id": "billing",
                        "start": "2026-11-11T18:00:00Z",
                        "interval_s": 900,
                        "arrivals": [120, 130, 150, 140],
                    }
                }
            }
        }
    },
)
async def put_forecast(
    who: Admin, api: State, body: Annotated[dict[str, Any], Body()]
) -> JsonResponse:
    forecast = _validated(Forecast, body, "forecast")
    await api.check_queue(who, forecast.queue_id)
    before = await api.redis.hget(api.keys.forecasts, forecast.queue_id)
    await api.redis.hset(api.keys.forecasts, forecast.queue_id, forecast.model_dump_json())
    await api.audit(
        who,
        "forecast.put",
        forecast.queue_id,
        orjson.loads(before) if before else None,
        forecast.model_dump(mode="json"),
    )
    return json_response(forecast.model_dump(mode="json"))


@router.get("/settings/queues/{queue_id:path}", summary="A queue's settings (defaults when unset)")
async def get_settings(queue_id: str, who: Viewer, api: State) -> JsonResponse:
    await api.check_queue(who, queue_id)
    return json_response((await api.queue_settings(queue_id)).model_dump())


@router.put(
    "/settings/queues/{queue_id:path}",
    summary="Change a queue's settings (admin); a partial object changes only what it names",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"example": {"sl_alert_below": 0.8}}}}
    },
)
async def put_settings(
    queue_id: str, who: Admin, api: State, body: Annotated[dict[str, Any], Body()]
) -> JsonResponse:
    if not 1 <= len(queue_id) <= 256:
        raise ApiError(422, "queue_id: 1 to 256 characters")
    await api.check_queue(who, queue_id)
    current = await api.queue_settings(queue_id)
    try:
        updated = current.updated(body)
    except ValidationError as exc:
        raise ApiError(422, "invalid settings", _rules(exc)) from None
    await api.redis.hset(api.keys.queue_settings, queue_id, updated.model_dump_json())
    await api.audit(who, "settings.put", queue_id, current.model_dump(), updated.model_dump())
    return json_response(updated.model_dump())


@router.get("/notifications", summary="Pushes to on-call leads, newest first, with status")
async def list_notifications(_: Viewer, api: State) -> JsonResponse:
    log_key = api.keys.notify_deliveries
    records = [orjson.loads(v) for v in (await api.redis.hgetall(log_key)).values()]
    records.sort(
        key=lambda r: (str(r.get("created_at")), str(r["push"]["delivery_id"])), reverse=True
    )
    return json_response({"notifications": records})


@router.get("/notify/config", summary="Alert routing, rota and channels (admin)")
async def get_notify_config(_: Admin, api: State) -> JsonResponse:
    config_key = api.keys.notify_config
    raw = await api.redis.get(config_key)
    config = NotifyConfig.model_validate_json(raw) if raw else NotifyConfig()
    return json_response(config.model_dump(mode="json"))


@router.put("/notify/config", summary="Set alert routing, rota and channels (admin)")
async def put_notify_config(
    who: Admin, api: State, body: Annotated[dict[str, Any], Body()]
) -> JsonResponse:
    config = _validated(NotifyConfig, body, "notify config")
    config_key = api.keys.notify_config
    before = await api.redis.get(config_key)
    await api.redis.set(config_key, config.model_dump_json())
    await api.audit(
        who,
        "notify_config.put",
        "notify",
        orjson.loads(before) if before else None,
        config.model_dump(mode="json"),
    )
    return json_response(config.model_dump(mode="json"))


MAX_AGENTS = 10_000  # plenty for a real centre; bounds the math a viewer can ask for


@router.get("/audit", summary="Every change made through the API, newest first (admin)")
async def audit_log(
    _: Admin, api: State, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> JsonResponse:
    return json_response({"entries": await api.audit_log(limit)})


@router.get(
    "/staffing",
    summary="Erlang C and Erlang A for a load and a number of agents",
    description="The example answers `?arrivals_per_hour=60&aht_s=30&agents=1&patience_s=60`.",
    responses=_example(
        {
            "load_erlangs": 0.5,
            "erlang_c": {
                "p_wait": 0.5,
                "answer_rate": 0.6967,
                "asa_s": 30.0,
                "occupancy": 0.5,
                "agents_for_target": 2,
            },
            "erlang_a": {
                "p_wait": 0.418,
                "answer_rate": 0.7609,
                "asa_s": 7.35,
                "occupancy": 0.418,
                "abandon_rate": 0.164,
                "agents_for_target": 2,
            },
        }
    ),
)
async def staffing(
    _: Viewer,
    arrivals_per_hour: Annotated[float, Query(ge=0, le=1_000_000)],
    aht_s: Annotated[float, Query(gt=0, le=86400)],
    agents: Annotated[int, Query(ge=0, le=MAX_AGENTS)],
    threshold_s: Annotated[float, Query(ge=0, le=86400)] = 30,
    target: Annotated[float, Query(gt=0, lt=1)] = 0.8,
    patience_s: Annotated[float | None, Query(gt=0, le=86400)] = None,
) -> JsonResponse:
    # heavy math off the event loop, in a worker thread, bounded by the inputs' limits
    body = await asyncio.to_thread(
        _staffing, arrivals_per_hour / 3600.0, aht_s, agents, threshold_s, target, patience_s
    )
    return json_response(body)


def _staffing(
    rate: float,
    aht_s: float,
    agents: int,
    threshold_s: float,
    target: float,
    patience_s: float | None,
) -> dict[str, Any]:
    if rate * aht_s > MAX_AGENTS:
        raise ApiError(
            422, f"load {rate * aht_s:.0f} erlangs: at most {MAX_AGENTS} (arrivals x AHT)"
        )
    try:
        c = erlang_c(agents, rate, aht_s, threshold_s)
        body: dict[str, Any] = {
            "load_erlangs": rate * aht_s,
            "erlang_c": {
                **_perf(asdict(c), with_abandon=False),
                "agents_for_target": agents_for_target(rate, aht_s, threshold_s, target),
            },
        }
        if patience_s is not None:
            a = erlang_a(agents, rate, aht_s, patience_s, threshold_s)
            body["erlang_a"] = {
                **_perf(asdict(a), with_abandon=True),
                "agents_for_target": agents_for_target(
                    rate, aht_s, threshold_s, target, patience_s=patience_s
                ),
            }
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    return body


def _perf(values: dict[str, Any], with_abandon: bool) -> dict[str, Any]:
    keys = ["p_wait", "answer_rate", "asa_s", "occupancy"] + (
        ["abandon_rate"] if with_abandon else []
    )
    # an unstable queue's mean wait is unbounded: JSON has no infinity, so null
    return {
        k: (None if isinstance(values[k], float) and math.isinf(values[k]) else values[k])
        for k in keys
    }
