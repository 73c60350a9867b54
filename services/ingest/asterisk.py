"""Asterisk app_queue's queue_log into the contract's events (contract 2).

A line is `epoch|callid|queue|member|EVENT|data1|data2|...`. The data fields of each
event type, old layouts included, are those app_queue writes (apps/app_queue.c):

- ENTERQUEUE (url, callerid[, position]): `call.queued`.
- CONNECT (holdtime[, bridged uniqueid[, ringtime]]): `call.answered`, wait = holdtime;
  the member is busy.
- ABANDON (position, origposition, waittime): `call.abandoned`.
- EXITWITHTIMEOUT (position[, origposition, waittime]; Asterisk <= 1.4 writes the position
  only), EXITWITHKEY (key, position[, origposition, waittime]) and EXITEMPTY (position,
  origposition, waittime): `call.overflowed` to `asterisk:timeout`, `asterisk:key:<key>`,
  `asterisk:empty`; without a waittime the wait is derived from ENTERQUEUE.
- FULL, JOINEMPTY, JOINUNAVAIL (the caller could not join): `call.queued` and
  `call.overflowed` at once (wait 0), so that the turned-away caller counts as a miss.
- COMPLETEAGENT, COMPLETECALLER (holdtime, calltime, origposition), TRANSFER (exten,
  context[, holdtime, calltime[, origposition]]), BLINDTRANSFER (exten, context, holdtime,
  calltime, origposition), ATTENDEDTRANSFER (method, data, holdtime, calltime,
  origposition): `call.ended` with talk = calltime; the member is available again.
- ADDMEMBER, REMOVEMEMBER ([PAUSED]): `agent.skills` (and a state for a new or gone member).
- PAUSE, PAUSEALL ([reason]): not_ready; UNPAUSE, UNPAUSEALL: available; AGENTLOGIN,
  AGENTCALLBACKLOGIN: available; AGENTLOGOFF, AGENTCALLBACKLOGOFF: offline.

A caller who leaves the queue without hanging up (timeout, key, empty queue) is sent
on by the dialplan: a flow-out of contract 4 (`call.overflowed`), never an abandon.
RINGNOANSWER, RINGCANCELED, AGENTDUMP and SYSCOMPAT leave the caller waiting; like any
line naming a member and a queue they tell that the member serves that queue. Other
lines (QUEUESTART, CONFIGRELOAD, DID, INFO, MEMBERPENALTY, custom dialplan lines) carry
nothing floorwatch counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from services.ingest.adapters import (
    AdapterError,
    Event,
    Item,
    epoch_ts,
    event_id,
    seconds,
    text,
)

LEVEL = 1  # queue_log says nothing of skill levels: every queue a member serves is level 1
_FLOWOUT = {"EXITWITHTIMEOUT": "asterisk:timeout", "EXITEMPTY": "asterisk:empty"}
_TURNED_AWAY = {"FULL": "asterisk:full", "JOINEMPTY": "asterisk:joinempty",
                "JOINUNAVAIL": "asterisk:joinunavail"}  # fmt: skip
_ENDS = {  # event -> index of calltime in its data
    "COMPLETEAGENT": 1,
    "COMPLETECALLER": 1,
    "TRANSFER": 3,
    "BLINDTRANSFER": 3,
    "ATTENDEDTRANSFER": 3,
}
_MEMBER_IN_QUEUE = {"CONNECT", "RINGNOANSWER", "RINGCANCELED", "AGENTDUMP", "SYSCOMPAT",
                    "PAUSE", "UNPAUSE", *_ENDS}  # fmt: skip


@dataclass
class Members:
    """What queue_log lines have told of each member: its queues and whether it is paused.

    queue_log names one queue per line, while `agent.skills` replaces the whole set; this
    memory lets an ADDMEMBER in a third queue keep the first two. It is bounded: past
    `limit` members the oldest is forgotten (and relearnt from its next line)."""

    queues: dict[str, set[str]] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    limit: int = 20_000

    def copy(self) -> Members:
        """A copy to parse a request with, kept only once ingest took the request (a
        request refused with 429 or 503 and sent again must give the same items)."""
        return Members({m: set(q) for m, q in self.queues.items()}, set(self.paused), self.limit)

    def _touch(self, member: str) -> set[str]:
        queues = self.queues.pop(member, None)
        if queues is None:
            queues = set()
            if len(self.queues) >= self.limit:
                oldest = next(iter(self.queues))
                del self.queues[oldest]
                self.paused.discard(oldest)
        self.queues[member] = queues  # most recently seen last
        return queues


def decode_body(body: bytes) -> str:
    """A queue_log extract as text, line by line UTF-8, else Latin-1 (a caller name in a
    legacy encoding spoils only its own line's name, never the body)."""
    out = []
    for raw in body.splitlines(keepends=True):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(raw.decode("latin-1"))
    return "".join(out)


def _line_id(line: str, epoch: str, callid: str, event: str) -> str:
    # the whole line decides the id: two members pausing in the same second differ, and
    # the same line sent twice (a tailer's resend) is the same event
    digest = hashlib.blake2b(line.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
    return event_id("ast", epoch, callid[:40], event[:20], digest)


def parse_line(line: str, members: Members | None = None) -> list[Item]:
    """One queue_log line as items; `members` is the memory of earlier lines."""
    book = members if members is not None else Members()
    line = line.rstrip("\r\n")
    fields = line.split("|")
    if len(fields) < 5:
        return [AdapterError("expected epoch|callid|queue|agent|event|data... (at least 5 fields)")]
    epoch, callid, queue, member, event, *data = fields
    try:
        ts = epoch_ts(epoch)
    except (ValueError, OverflowError, OSError):
        return [AdapterError(f"epoch {epoch!r} is not a Unix time")]
    eid = _line_id(line, epoch, callid, event)
    queue = queue.strip()
    member = "" if member in ("", "NONE") else text(member)  # kept whole: Local/2004@x/n
    try:
        items = _calls(event, data, ts, eid, callid, queue, member)
    except (IndexError, ValueError) as exc:
        reason = "missing data fields" if isinstance(exc, IndexError) else str(exc)
        return [AdapterError(f"{event}: {reason}")]
    return items + _agents(event, data, ts, eid, queue, member, book)


def _wait(data: list[str], index: int, name: str = "waittime") -> dict[str, float]:
    """`wait_s` from an optional field (old layouts lack it: the wait is then derived)."""
    if len(data) > index and data[index] != "":
        return {"wait_s": seconds(data[index], name)}
    return {}


def _calls(
    event: str, data: list[str], ts: str, eid: str, callid: str, queue: str, member: str
) -> list[Item]:
    if event not in _CALL_EVENTS:
        return []
    if not callid or callid == "NONE" or not queue or queue == "NONE":
        return [AdapterError(f"{event}: a call line needs a callid and a queue")]
    call: Event = {"ts": ts, "event_id": eid, "call_id": text(callid), "queue_id": text(queue)}
    if event == "ENTERQUEUE":
        return [{**call, "type": "call.queued"}]
    if event == "CONNECT":
        if not member:
            return [AdapterError("CONNECT: no member named")]
        wait = seconds(data[0], "holdtime")
        return [{**call, "type": "call.answered", "agent_id": member, "wait_s": wait}]
    if event == "ABANDON":
        return [{**call, "type": "call.abandoned", **_wait(data, 2)}]
    if event in _FLOWOUT:
        return [{**call, "type": "call.overflowed", "to_queue_id": _FLOWOUT[event],
                 **_wait(data, 2)}]  # fmt: skip
    if event == "EXITWITHKEY":
        key = text(data[0]) or "?"
        return [{**call, "type": "call.overflowed", "to_queue_id": f"asterisk:key:{key}",
                 **_wait(data, 3)}]  # fmt: skip
    if event in _TURNED_AWAY:
        return [
            {**call, "type": "call.queued", "event_id": event_id(eid, "q")},
            {**call, "type": "call.overflowed", "to_queue_id": _TURNED_AWAY[event],
             "wait_s": 0.0},
        ]  # fmt: skip
    # a call's end: calltime is known in every layout but the oldest TRANSFER
    at = _ENDS[event]
    if not member or len(data) <= at or data[at] == "":
        return []
    talk = seconds(data[at], "calltime")
    return [{**call, "type": "call.ended", "agent_id": member, "talk_s": talk}]


_CALL_EVENTS = {"ENTERQUEUE", "CONNECT", "ABANDON", "EXITWITHKEY", *_FLOWOUT, *_TURNED_AWAY,
                *_ENDS}  # fmt: skip


def _agents(
    event: str, data: list[str], ts: str, eid: str, queue: str, member: str, book: Members
) -> list[Item]:
    if not member:
        return []
    out: list[Item] = []
    in_queue = queue not in ("", "NONE")

    def skills(queues: set[str], tag: str) -> None:
        listed = [{"queue_id": q, "level": LEVEL} for q in sorted(queues)][:200]
        out.append({"ts": ts, "event_id": event_id(eid, tag), "type": "agent.skills",
                    "agent_id": member, "skills": listed})  # fmt: skip

    def state(value: str, reason: str | None = None) -> None:
        why = {"reason": reason} if reason else {}
        out.append({"ts": ts, "event_id": event_id(eid, "state"), "type": "agent.state",
                    "agent_id": member, "state": value, **why})  # fmt: skip

    def available() -> None:
        state("not_ready", "paused") if member in book.paused else state("available")

    known = book.queues.get(member)
    if event == "ADDMEMBER" and in_queue:
        queues = book._touch(member)
        new_member = not queues
        queues.add(text(queue))
        skills(queues, "skills")
        if new_member:
            paused = bool(data) and data[0].strip().upper() == "PAUSED"
            (book.paused.add if paused else book.paused.discard)(member)
            available()
        return out
    if event == "REMOVEMEMBER" and in_queue:
        queues = book._touch(member)
        queues.discard(queue)
        skills(queues, "skills")
        if not queues:
            state("offline")
        return out
    if in_queue and event in _MEMBER_IN_QUEUE and (known is None or queue not in known):
        queues = book._touch(member)
        queues.add(text(queue))
        skills(queues, "skills")
    if event in ("PAUSE", "PAUSEALL"):
        book.paused.add(member)
        reason = text(data[0]).strip() if data and data[0].strip() else "paused"
        state("not_ready", reason)
    elif event in ("UNPAUSE", "UNPAUSEALL"):
        book.paused.discard(member)
        state("available")
    elif event in ("AGENTLOGIN", "AGENTCALLBACKLOGIN"):
        book.paused.discard(member)
        state("available")
    elif event in ("AGENTLOGOFF", "AGENTCALLBACKLOGOFF"):
        state("offline")
    elif event == "CONNECT":
        state("busy")
    elif event in _ENDS:
        available()
    return out


def parse_lines(lines: list[str], members: Members | None = None) -> list[Item]:
    """Lines of queue_log as items, in order; errors name their line (1-based)."""
    book = members if members is not None else Members()
    out: list[Item] = []
    for number, line in enumerate(lines, 1):
        for item in parse_line(line, book):
            if isinstance(item, AdapterError):
                item = AdapterError(f"line {number}: {item.message}")
            out.append(item)
    return out
