"""Amazon Connect into the contract's events (contract 2).

Two record shapes, told apart by their fields:
- contact events as EventBridge delivers them (`detail-type` "Amazon Connect Contact
  Event", the event in `detail`), sent by an EventBridge API destination;
- agent event stream records (`EventType` STATE_CHANGE, HEART_BEAT, LOGIN, LOGOUT with
  `CurrentAgentSnapshot`), forwarded from the stream's Kinesis data stream.

- QUEUED: `call.queued` at `queueInfo.enqueueTimestamp` (a contact its flow moves from
  another queue first gets `call.overflowed` there); of a callback contact
  (`initiationMethod` CALLBACK): `call.callback_requested` for the contact that asked
  (`previousContactId`).
- CONNECTED_TO_AGENT: `call.answered`, wait = connected - enqueued; of a callback
  contact: `call.callback_completed` connected.
- DISCONNECTED while queued with no agent: `call.abandoned` when the customer hung up
  (or no reason is given), else `call.overflowed` to `connect:<reason>`; of a callback
  contact: `call.callback_completed` no_answer.
- COMPLETED with an agent: `call.ended` (talk from connected to disconnect, wrap = the
  after-contact work).
- an agent record: `agent.state` (status Available, and its contacts: busy, or wrap_up
  in after-contact work; Offline or LOGOUT: offline; any other status: not_ready with its
  name) and `agent.skills` from the routing profile's inbound queues (at login, at each
  heartbeat, and when they change).

Queues and agents are named by their id (the last part of their ARN); an agent record's
events also carry the user name as `name`.
A contact leaves a queue once: its abandon, flow-out or callback request share one event
id, so whichever Connect reports first counts (a callback's QUEUED and the original
contact's flow disconnect say the same thing). INITIATED, CONNECTED_TO_SYSTEM,
CONTACT_DATA_UPDATED and the rest carry nothing floorwatch counts.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.ingest.adapters import AdapterError, Event, Item, epoch_ts, event_id, text

SECRET_HEADER = "x-floorwatch-secret"  # noqa: S105  # the header's name, not a secret
_CHANNEL = {"VOICE": "voice", "CHAT": "chat", "EMAIL": "email", "TASK": "email"}
_BUSY = {"CONNECTING", "CONNECTED", "CONNECTED_ONHOLD", "INCOMING", "PENDING"}


def secret_matches(expected: str, given: str | None) -> bool:
    """The per-source shared secret, compared in constant time; an empty one never matches."""
    return bool(expected) and hmac.compare_digest(expected.encode(), (given or "").encode())


@dataclass
class Contacts:
    """The queue each contact was last queued in, and the one before (to close it when
    Connect moves the contact on; a QUEUED sent again gives the same items again);
    bounded by `limit`."""

    queue_of: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    limit: int = 100_000

    def queued(self, contact: str, queue: str) -> str | None:
        """The queue the contact leaves for `queue`, None when it was in none."""
        entry = self.queue_of.pop(contact, None)
        before = None if entry is None else entry[1] if entry[0] == queue else entry[0]
        if len(self.queue_of) >= self.limit:
            del self.queue_of[next(iter(self.queue_of))]
        self.queue_of[contact] = (queue, before)
        return before


def _arn_id(arn: object) -> str:
    return text(str(arn).rsplit("/", 1)[-1]) if arn else ""


def _epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return stamp.timestamp()


def _iso(value: float) -> str:
    return epoch_ts(value)


def connect_items(record: object, book: Contacts | None = None) -> list[Item]:
    """One Connect record (contact event or agent record) as items."""
    book = book if book is not None else Contacts()
    if not isinstance(record, Mapping):
        return [AdapterError("a Connect record must be a JSON object")]
    try:
        if record.get("detail-type") == "Amazon Connect Contact Event":
            return _contact(record, book)
        if "CurrentAgentSnapshot" in record or record.get("EventType") == "LOGOUT":
            return _agent(record)
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        return [AdapterError(f"Connect record: {exc}")]
    return [AdapterError("neither an Amazon Connect Contact Event nor an agent event record")]


def _contact(record: Mapping[str, Any], book: Contacts) -> list[Item]:  # Any: JSON
    detail = record.get("detail") or {}
    kind = detail.get("eventType", "")
    contact = text(detail.get("contactId", ""))
    if not contact:
        return [AdapterError(f"{kind}: detail.contactId missing")]
    queue_info = detail.get("queueInfo") or {}
    agent_info = detail.get("agentInfo") or {}
    queue = _arn_id(queue_info.get("queueArn"))
    enqueued = _epoch(queue_info.get("enqueueTimestamp"))
    callback = detail.get("initiationMethod") == "CALLBACK"
    asker = text(detail.get("previousContactId") or contact) if callback else contact
    when = _epoch(record.get("time"))
    if when is None:
        return [AdapterError(f"{kind}: time missing")]
    base: Event = {"ts": _iso(when), "event_id": event_id("cx", str(record.get("id") or ""),
                                                          contact, kind)}  # fmt: skip
    call: Event = {**base, "call_id": asker, "queue_id": queue}
    left: Event = {**call, "event_id": event_id("cx", asker, "left", queue)}
    if not queue:
        return []  # never queued (IVR only, outbound): nothing in a queue to count
    if kind == "QUEUED":
        at = _iso(enqueued) if enqueued is not None else base["ts"]
        if callback:  # the wait is the asking contact's, derived from its call.queued
            return [{**left, "ts": at, "type": "call.callback_requested"}]
        out: list[Item] = []
        before = book.queued(contact, queue)
        if before:  # moved by its flow from another queue
            out.append({**base, "event_id": event_id("cx", contact, "left", before),
                        "call_id": contact, "queue_id": before, "type": "call.overflowed",
                        "to_queue_id": queue})  # fmt: skip
        channel = _CHANNEL.get(str(detail.get("channel", "VOICE")), "voice")
        out.append({**call, "ts": at, "type": "call.queued", "channel": channel})
        return out
    agent = _arn_id(agent_info.get("agentArn"))
    connected = _epoch(agent_info.get("connectedToAgentTimestamp"))
    if kind == "CONNECTED_TO_AGENT":
        if not agent:
            return [AdapterError("CONNECTED_TO_AGENT: agentInfo.agentArn missing")]
        at = connected if connected is not None else when
        ts = _iso(at)
        if callback:
            asked = _epoch(detail.get("initiationTimestamp"))
            waited = {"wait_s": max(0.0, at - asked)} if asked is not None else {}
            return [{**call, "ts": ts, "type": "call.callback_completed", "outcome": "connected",
                     "agent_id": agent, **waited}]  # fmt: skip
        waited = {"wait_s": max(0.0, at - enqueued)} if enqueued is not None else {}
        return [{**call, "ts": ts, "type": "call.answered", "agent_id": agent, **waited}]
    if kind == "DISCONNECTED" and not agent:
        book.queue_of.pop(contact, None)
        reason = str(detail.get("disconnectReason") or "CUSTOMER_DISCONNECT")
        if callback:
            return [{**call, "type": "call.callback_completed", "outcome": "no_answer"}]
        waited = {"wait_s": max(0.0, when - enqueued)} if enqueued is not None else {}
        if reason == "CUSTOMER_DISCONNECT":
            return [{**left, "type": "call.abandoned", **waited}]
        to = text(f"connect:{reason.lower()}")
        return [{**left, "type": "call.overflowed", "to_queue_id": to, **waited}]
    if kind == "COMPLETED" and agent and connected is not None:
        book.queue_of.pop(contact, None)
        ended = _epoch(detail.get("disconnectTimestamp")) or when
        acw = agent_info.get("afterContactWorkDuration")
        wrap = float(acw) if isinstance(acw, int | float) and acw >= 0 else 0.0
        return [{**call, "type": "call.ended", "agent_id": agent,
                 "talk_s": max(0.0, ended - connected), "wrap_s": wrap}]  # fmt: skip
    return []


def _agent(record: Mapping[str, Any]) -> list[Item]:  # Any: JSON
    kind = str(record.get("EventType", ""))
    when = _epoch(record.get("EventTimestamp"))
    if when is None:
        return [AdapterError(f"{kind}: EventTimestamp missing")]
    snapshot = record.get("CurrentAgentSnapshot") or {}
    config = snapshot.get("Configuration") or {}
    # the agent's id, as contact events name agents by their ARN; the user name rides along
    agent = _arn_id(record.get("AgentARN")) or text(config.get("Username") or "")
    if not agent:
        return [AdapterError(f"{kind}: no agent named")]
    eid = str(record.get("EventId") or f"{agent}:{record.get('EventTimestamp')}")
    name = {"name": text(config["Username"])} if config.get("Username") else {}
    base: Event = {"ts": _iso(when), "agent_id": agent, **name}
    if kind == "LOGOUT":
        return [
            {**base, "event_id": event_id("cxa", eid), "type": "agent.state", "state": "offline"}
        ]
    status = str((snapshot.get("AgentStatus") or {}).get("Name", ""))
    contacts = [c for c in snapshot.get("Contacts") or [] if isinstance(c, Mapping)]
    states = {str(c.get("State", "")) for c in contacts}
    if status.lower() == "offline":
        state, reason = "offline", None
    elif states & _BUSY:
        state, reason = "busy", None
    elif "ENDED" in states:  # after-contact work
        state, reason = "wrap_up", None
    elif status.lower() == "available":
        state, reason = "available", None
    else:
        state, reason = "not_ready", text(status.lower()) or None
    out: list[Item] = [{**base, "event_id": event_id("cxa", eid), "type": "agent.state",
                        "state": state, **({"reason": reason} if reason else {})}]  # fmt: skip
    queues = _queues(snapshot)
    before = _queues(record.get("PreviousAgentSnapshot") or {})
    if kind in ("LOGIN", "HEART_BEAT") or queues != before:
        listed = [{"queue_id": q, "level": 1} for q in sorted(queues)][:200]
        out.append({**base, "event_id": event_id("cxa", eid, "skills"), "type": "agent.skills",
                    "skills": listed})  # fmt: skip
    return out


def _queues(snapshot: Mapping[str, Any]) -> set[str]:  # Any: JSON
    profile = (snapshot.get("Configuration") or {}).get("RoutingProfile") or {}
    return {_arn_id(q.get("ARN")) for q in profile.get("InboundQueues") or []
            if isinstance(q, Mapping) and q.get("ARN")}  # fmt: skip
