"""Vendor formats into the contract's events (contract 2): Asterisk queue_log, Twilio TaskRouter.

Pure functions. Each returns, per input line or callback, the canonical event (a dict
for the usual validation), None for vendor events that carry nothing floorwatch
counts (a queue reload, a ring without answer), or an AdapterError naming the problem.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


@dataclass(frozen=True)
class AdapterError:
    message: str


Item = dict[str, Any] | AdapterError | None  # Any: event fields


def _ts(epoch: str) -> str:
    return datetime.fromtimestamp(float(epoch), UTC).isoformat()


def _id(*parts: str) -> str:
    return _UNSAFE.sub("_", ":".join(parts))[:128]


def _seconds(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number") from None
    if number < 0:
        raise ValueError(f"{name} {value!r} is negative")
    return number


# ---- Asterisk queue_log: epoch|callid|queue|agent|EVENT|data1|data2|... ----------------


def asterisk_line(line: str) -> Item:
    """One queue_log line as an event."""
    fields = line.rstrip("\r\n").split("|")
    if len(fields) < 5:
        return AdapterError("expected epoch|callid|queue|agent|event|data... (at least 5 fields)")
    epoch, callid, queue, agent, event, *data = fields
    try:
        ts = _ts(epoch)
    except (ValueError, OverflowError):
        return AdapterError(f"epoch {epoch!r} is not a Unix time")
    agent_id = agent.split("/")[-1] if agent and agent != "NONE" else ""
    base = {"ts": ts, "event_id": _id("ast", callid, event, epoch)}
    call = {**base, "call_id": callid, "queue_id": queue}
    try:
        if event == "ENTERQUEUE":
            return {**call, "type": "call.queued"}
        if event == "CONNECT":  # holdtime|bridgedchanneluniqueid|ringtime
            return {
                **call,
                "type": "call.answered",
                "agent_id": agent_id,
                "wait_s": _seconds(data[0], "holdtime"),
            }
        if event == "ABANDON":  # position|origposition|waittime
            return {**call, "type": "call.abandoned", "wait_s": _seconds(data[2], "waittime")}
        if event == "EXITWITHTIMEOUT":  # position|origposition|waittime: sent on by the dialplan
            return {
                **call,
                "type": "call.overflowed",
                "to_queue_id": "asterisk:timeout",
                "wait_s": _seconds(data[2], "waittime"),
            }
        if event in ("COMPLETEAGENT", "COMPLETECALLER"):  # holdtime|calltime|origposition
            return {
                **call,
                "type": "call.ended",
                "agent_id": agent_id,
                "talk_s": _seconds(data[1], "calltime"),
            }
        if event == "TRANSFER":  # extension|context|holdtime|calltime
            return {
                **call,
                "type": "call.ended",
                "agent_id": agent_id,
                "talk_s": _seconds(data[3], "calltime"),
            }
    except IndexError:
        return AdapterError(f"{event}: missing data fields")
    except ValueError as exc:
        return AdapterError(f"{event}: {exc}")
    agent_base = {**base, "type": "agent.state", "agent_id": agent_id}
    if event in ("AGENTLOGIN", "UNPAUSE", "UNPAUSEALL"):
        return {**agent_base, "state": "available"}
    if event == "AGENTLOGOFF":
        return {**agent_base, "state": "offline"}
    if event in ("PAUSE", "PAUSEALL"):
        reason = data[0] if data and data[0] else None
        return {**agent_base, "state": "not_ready", **({"reason": reason} if reason else {})}
    return None  # CONFIGRELOAD, RINGNOANSWER, ADDMEMBER, ...: nothing floorwatch counts


def asterisk_lines(lines: list[str]) -> list[Item]:
    return [asterisk_line(line) for line in lines]


# ---- Twilio TaskRouter event callbacks (form fields) -----------------------------------

_ACTIVITY = {
    "available": "available",
    "idle": "available",
    "offline": "offline",
    "busy": "busy",
    "wrapup": "wrap_up",
    "wrap_up": "wrap_up",
    "wrap-up": "wrap_up",
    "wrapping": "wrap_up",
}


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 over the URL and the sorted form fields."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    mac = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def taskrouter_event(params: Mapping[str, str]) -> Item:
    """One TaskRouter event callback as an event."""
    kind = params.get("EventType", "")
    stamp = params.get("Timestamp", "")
    try:
        ts = _ts(stamp)
    except (ValueError, OverflowError):
        return AdapterError(f"Timestamp {stamp!r} is not a Unix time")
    base = {
        "ts": ts,
        "event_id": _id(
            "tr",
            params.get("Sid")
            or params.get("EventSid")
            or f"{kind}:{stamp}:{params.get('ResourceSid', '')}",
        ),
    }
    queue = params.get("TaskQueueName") or params.get("TaskQueueSid", "")
    task = params.get("TaskSid", "")
    worker = params.get("WorkerName") or params.get("WorkerSid", "")
    try:
        age = _seconds(params["TaskAge"], "TaskAge") if params.get("TaskAge") else None
    except ValueError as exc:
        return AdapterError(str(exc))
    waited = {"wait_s": age} if age is not None else {}
    if kind == "task-queue.entered":
        return {**base, "type": "call.queued", "call_id": task, "queue_id": queue}
    if kind == "reservation.accepted":
        return {
            **base,
            "type": "call.answered",
            "call_id": task,
            "queue_id": queue,
            "agent_id": worker,
            **waited,
        }
    if kind == "task.canceled":  # the caller hung up before anyone took it
        return {**base, "type": "call.abandoned", "call_id": task, "queue_id": queue, **waited}
    if kind == "worker.activity.update":
        activity = params.get("WorkerActivityName", "")
        state = _ACTIVITY.get(activity.strip().lower().replace(" ", ""), "not_ready")
        reason = {"reason": activity.lower()} if state == "not_ready" and activity else {}
        return {**base, "type": "agent.state", "agent_id": worker, "state": state, **reason}
    return None
