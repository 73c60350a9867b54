"""Dispatcher actions for leads (contract 6 and 7): list, approve, reject, undo, propose.

The API never plans: it checks what it can see (the action exists, is in a state that
allows the request, the queue is in the token's scope), audits the change, and hands
the lead's request to the dispatcher on `floorwatch.actions` as an `ActionRequest`; the
dispatcher answers by publishing the action in its new state.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from services.api.auth import Principal
from services.api.routes import ApiError, Lead, State, Viewer, _validated
from services.api.state import ApiState
from shared.http import JsonResponse, json_response
from shared.kafka import dumps
from shared.messages.actions import ActionRequest
from shared.queue_settings import Lever
from shared.timefmt import iso_ms

router = APIRouter(prefix="/v1", tags=["actions"])


class HandAction(BaseModel):
    """`POST /v1/actions`: a lead's own action, planned and bounded like the dispatcher's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_id: Annotated[str, Field(min_length=1, max_length=256)]
    lever: Lever
    count: Annotated[int, Field(ge=1, le=200)] = 1


@router.get("/actions", summary="Dispatcher actions, newest first")
async def list_actions(who: Viewer, api: State) -> JsonResponse:
    actions = await api.actions()
    if who.scoped:
        seen = {str(s["queue_id"]) for s in await api.snapshots() if api.visible(who, s)}
        actions = [a for a in actions if a.get("queue_id") in seen]
    return json_response({"actions": actions})


async def _stored(api: ApiState, who: Principal, action_id: str) -> dict[str, Any]:
    raw = await api.redis.hget(api.keys.actions, action_id)
    if raw is None:
        raise ApiError(404, f"action {action_id!r} not found")
    action: dict[str, Any] = orjson.loads(raw)
    await api.check_queue(who, str(action["queue_id"]))
    return action


async def _request(
    api: ApiState, who: Principal, verb: str, key: str, **fields: Any
) -> ActionRequest:
    request = ActionRequest.model_validate(
        {"request_id": secrets.token_hex(8), "verb": verb, "by": who.name,
         "at": datetime.fromtimestamp(api.clock(), UTC), **fields}
    )  # fmt: skip
    await api.publish("actions", key, request.model_dump(mode="json", exclude_none=True))
    return request


async def _decide(action_id: str, who: Principal, api: ApiState, verdict: str) -> JsonResponse:
    action = await _stored(api, who, action_id)
    if action["state"] != "proposed":
        raise ApiError(409, f"action {action_id!r} is {action['state']}, not proposed")
    at = iso_ms(api.clock())
    before = action["state"]
    action = {
        **action,
        "state": verdict,
        "changed_by": who.name,
        "changed_at": at,
        "history": [*action.get("history", []), {"state": verdict, "by": who.name, "at": at}],
    }
    await api.redis.hset(api.keys.actions, action_id, dumps(action))
    verb = "approve" if verdict == "approved" else "reject"
    await _request(api, who, verb, str(action["queue_id"]), action_id=action_id)
    await api.audit(who, f"action.{verb}", action_id, {"state": before}, {"state": verdict})
    return json_response(action)


@router.post("/actions/{action_id:path}/approve", summary="Approve a proposed action (lead)")
async def approve(action_id: str, who: Lead, api: State) -> JsonResponse:
    return await _decide(action_id, who, api, "approved")


@router.post("/actions/{action_id:path}/reject", summary="Reject a proposed action (lead)")
async def reject(action_id: str, who: Lead, api: State) -> JsonResponse:
    return await _decide(action_id, who, api, "rejected")


@router.post(
    "/actions/{action_id:path}/undo",
    summary="Undo a sent action (lead): its agents go back, its routing is turned off",
    status_code=202,
)
async def undo(action_id: str, who: Lead, api: State) -> JsonResponse:
    action = await _stored(api, who, action_id)
    if action["state"] != "sent":
        raise ApiError(409, f"action {action_id!r} is {action['state']}, not sent")
    if not action.get("undo"):
        raise ApiError(409, f"action {action_id!r} has nothing to undo")
    request = await _request(api, who, "undo", str(action["queue_id"]), action_id=action_id)
    await api.audit(who, "action.undo", action_id, {"state": "sent"}, {"state": "reverted"})
    return json_response(
        {"request_id": request.request_id, "action_id": action_id, "verb": "undo"}, 202
    )


@router.post(
    "/actions",
    summary="Propose an action by hand (lead): a lever and a count, bounded like the "
    "dispatcher's own",
    status_code=202,
)
async def propose(
    who: Lead,
    api: State,
    body: Annotated[
        dict[str, Any], Body(examples=[{"queue_id": "sales", "lever": "standby", "count": 3}])
    ],  # fmt: skip
) -> JsonResponse:
    hand = _validated(HandAction, body, "action")
    await api.check_queue(who, hand.queue_id)
    request = await _request(
        api, who, "propose", hand.queue_id, queue_id=hand.queue_id, lever=hand.lever,
        count=hand.count,
    )  # fmt: skip
    await api.audit(who, "action.propose", hand.queue_id, None, hand.model_dump())
    return json_response(
        {"request_id": request.request_id, **hand.model_dump(), "state": "requested"}, 202
    )
