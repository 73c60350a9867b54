"""Twilio TaskRouter event callbacks into the contract's events (contract 2).

TaskRouter POSTs one event per callback as form fields (EventType, Sid, Timestamp in
Unix seconds, and the task, reservation, worker and queue fields of that event).
What each event type becomes:

- task-queue.entered: `call.queued` in TaskQueueName at TaskQueueEnteredDate.
- reservation.accepted: `call.answered`, wait = Timestamp - TaskQueueEnteredDate (TaskAge
  counts from the task's creation, not from entering this queue); the worker is busy.
- task.canceled: `call.abandoned` when the caller hung up; a TTL or workflow timeout
  (TaskCanceledReason) is no abandon: `call.overflowed` to `twilio:timeout`.
- task-queue.timeout, task-queue.moved: `call.overflowed` to `twilio:next` (the next
  queue's task-queue.entered follows).
- task.wrapup: the worker is in wrap_up; task.completed: `call.ended` (talk from accept
  to wrap-up, wrap from wrap-up to completion), the worker is available.
- worker.activity.update: `agent.state` from the activity name (Available/Idle/Ready,
  Busy, WrapUp, Offline; any other is not_ready with the activity as reason).
- worker.created, worker.attributes.update: `agent.skills` from the attributes
  (`routing.skills` with `routing.levels`, or `skills`), plus the queues the worker was
  reserved from; worker.deleted: offline.

A task leaves a queue once: timeout, move and cancel share one event id per task and
queue, so whichever TaskRouter reports first counts. Other events (task.created,
task.updated, reservation.created/rejected/timeout/canceled/rescinded, workflow.*,
activity.*, worker.capacity.update) carry nothing floorwatch counts: a reservation that
is rejected or times out leaves the task waiting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from services.ingest.adapters import AdapterError, Event, Item, epoch_ts, event_id, text

_ACTIVITY = {
    "available": "available",
    "idle": "available",
    "ready": "available",
    "offline": "offline",
    "busy": "busy",
    "wrapup": "wrap_up",
    "wrapping": "wrap_up",
}
_CHANNEL = {"voice": "voice", "chat": "chat", "sms": "chat", "whatsapp": "chat",
            "messenger": "chat", "email": "email"}  # fmt: skip
_TIMEOUT_WORDS = ("ttl", "timeout", "timed out", "expired")


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL and the sorted form fields."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    mac = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


@dataclass
class _Task:
    queue: str
    worker: str
    accepted: float
    wrapup: float | None = None


@dataclass
class Tasks:
    """What earlier callbacks told: accepted tasks (for handle time) and each worker's
    skills from attributes plus the queues it was reserved from. Bounded by `limit`.
    A callback sent again (after a 429 or 503) gives the same items again."""

    tasks: dict[str, _Task] = field(default_factory=dict)
    skills: dict[str, dict[str, int]] = field(default_factory=dict)
    learnt: dict[str, dict[str, str]] = field(default_factory=dict)  # worker: queue -> task
    limit: int = 50_000

    def remember(self, sid: str, task: _Task) -> None:
        self.tasks.pop(sid, None)
        if len(self.tasks) >= self.limit:
            del self.tasks[next(iter(self.tasks))]
        self.tasks[sid] = task

    def skill_set(self, worker: str) -> list[dict[str, object]]:
        levels = dict.fromkeys(sorted(self.learnt.get(worker, ())), 1)
        levels.update(self.skills.get(worker, {}))
        return [{"queue_id": q, "level": v} for q, v in sorted(levels.items())][:200]


def _iso_epoch(value: str) -> float:
    """A date of a callback: Unix seconds or milliseconds (callbacks send numbers), or ISO
    8601 with an offset (the REST resources' form)."""
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        return number / 1000 if number > 1e11 else number
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return stamp.timestamp()


def _attributes(raw: str) -> dict[str, object]:
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _skills_of(attrs: dict[str, object]) -> dict[str, int]:
    """Flex's `routing.skills` with `routing.levels`, or a plain `skills` list."""
    routing = attrs.get("routing")
    names: object = attrs.get("skills")
    levels: object = {}
    if isinstance(routing, dict):
        names, levels = routing.get("skills", names), routing.get("levels", {})
    if not isinstance(names, list):
        return {}
    out: dict[str, int] = {}
    for name in names[:200]:
        if isinstance(name, str) and name:
            level = levels.get(name, 1) if isinstance(levels, dict) else 1
            level = level if isinstance(level, int) and not isinstance(level, bool) else 1
            out[text(name)] = min(10, max(1, level))
    return out


def taskrouter_items(params: Mapping[str, str], book: Tasks | None = None) -> list[Item]:
    """One TaskRouter event callback as items; `book` is the memory of earlier callbacks."""
    book = book if book is not None else Tasks()
    kind = params.get("EventType", "")
    stamp = params.get("Timestamp", "")
    try:
        now = float(stamp)
        ts = epoch_ts(now)
    except (ValueError, OverflowError, OSError):
        return [AdapterError(f"Timestamp {stamp!r} is not a Unix time")]
    sid = (
        params.get("Sid")
        or params.get("EventSid")
        or f"{kind}:{stamp}:{params.get('ResourceSid', '')}"
    )
    base: Event = {"ts": ts, "event_id": event_id("tr", sid)}
    queue = text(params.get("TaskQueueName") or params.get("TaskQueueSid", ""))
    task = text(params.get("TaskSid", ""))
    worker = text(params.get("WorkerName") or params.get("WorkerSid", ""))
    try:
        entered = params.get("TaskQueueEnteredDate")
        entered_at = _iso_epoch(entered) if entered else None
    except ValueError:
        return [AdapterError(f"TaskQueueEnteredDate {entered!r} is not a time")]
    # contract 1: the wait in this queue, from entering it (TaskAge counts from creation)
    waited = {"wait_s": max(0.0, now - entered_at)} if entered_at is not None else {}
    call: Event = {**base, "call_id": task, "queue_id": queue}
    left: Event = {**call, "event_id": event_id("tr", task, "left", queue)}

    def state(agent: str, value: str, reason: str | None = None) -> Event:
        why = {"reason": reason} if reason else {}
        return {**base, "event_id": event_id("tr", sid, "state"), "type": "agent.state",
                "agent_id": agent, "state": value, **why}  # fmt: skip

    if kind.startswith(("task", "reservation")) and kind != "task.created" and not task:
        return [AdapterError(f"{kind}: TaskSid missing")]
    if kind == "task-queue.entered":
        channel = _CHANNEL.get(params.get("TaskChannelUniqueName", "voice").lower(), "voice")
        at = epoch_ts(entered_at) if entered_at is not None else ts
        return [{**call, "ts": at, "type": "call.queued", "channel": channel}]
    if kind == "reservation.accepted":
        if not worker:
            return [AdapterError("reservation.accepted: WorkerName missing")]
        book.remember(task, _Task(queue, worker, now))
        out: list[Item] = [{**call, "type": "call.answered", "agent_id": worker, **waited}]
        learnt = book.learnt.setdefault(worker, {})
        if queue not in book.skills.get(worker, {}) and learnt.setdefault(queue, task) == task:
            out.append({**base, "event_id": event_id("tr", sid, "skills"),
                        "type": "agent.skills", "agent_id": worker,
                        "skills": book.skill_set(worker)})  # fmt: skip
        return [*out, state(worker, "busy")]
    if kind == "task.canceled":
        if not queue:
            return []  # canceled before it reached a queue
        reason = params.get("TaskCanceledReason", "")
        if any(word in reason.lower() for word in _TIMEOUT_WORDS):
            return [{**left, "type": "call.overflowed", "to_queue_id": "twilio:timeout", **waited}]
        return [{**left, "type": "call.abandoned", **waited}]
    if kind in ("task-queue.timeout", "task-queue.moved"):
        return [{**left, "type": "call.overflowed", "to_queue_id": "twilio:next", **waited}]
    if kind == "task.wrapup":
        held = book.tasks.get(task)
        if held is None:
            return []
        held.wrapup = now
        return [state(held.worker, "wrap_up")]
    if kind == "task.completed":
        held = book.tasks.get(task)  # kept (until evicted): a resent callback says the same
        if held is None:
            return []  # accepted before this process started: the handle time is unknown
        end = held.wrapup if held.wrapup is not None else now
        ended: Event = {**base, "type": "call.ended", "call_id": task, "queue_id": held.queue,
                        "agent_id": held.worker, "talk_s": max(0.0, end - held.accepted),
                        "wrap_s": max(0.0, now - end)}  # fmt: skip
        return [ended, state(held.worker, "available")]
    if kind == "worker.activity.update":
        if not worker:
            return [AdapterError("worker.activity.update: WorkerName missing")]
        activity = params.get("WorkerActivityName", "")
        key = activity.strip().lower().replace(" ", "").replace("-", "").replace("_", "")
        value = _ACTIVITY.get(key, "not_ready")
        return [state(worker, value, text(activity.lower()) if value == "not_ready" else None)]
    if kind in ("worker.created", "worker.attributes.update"):
        if not worker:
            return [AdapterError(f"{kind}: WorkerName missing")]
        book.skills[worker] = _skills_of(_attributes(params.get("WorkerAttributes", "")))
        return [{**base, "type": "agent.skills", "agent_id": worker,
                 "skills": book.skill_set(worker)}]  # fmt: skip
    if kind == "worker.deleted" and worker:
        return [state(worker, "offline")]
    return []
