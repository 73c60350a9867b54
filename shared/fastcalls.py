"""The call events of contract section 1 as msgspec structs: the batch decoder's fast path.

`decode_events` tries these first and falls back to the pydantic models of
`shared.events`, which stay the one definition of what is valid. A record is taken here
only when it has nothing the two could read differently: known fields only (an event
with extra fields goes to pydantic, which keeps them; a sent `epoch`, no field of the
contract, is replaced), `ts` in the one RFC 3339 shape `2026-11-11T20:00:00.123456Z` /
`+01:00` with at most six digits of fraction (more would be rounded here and cut there),
numbers up to 1e15. Anything taken here pydantic accepts too, with the same values:
`tests/unit/test_fastcalls.py` holds the two to that, field by field and on random
records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import force_setattr

# `event_id`'s characters and the one shape of `ts` taken here (the offset's minutes below
# 60: Python reads "+00:99" as 1 h 39 min, pydantic refuses it), each matched whole after
# decoding rather than as a msgspec pattern: msgspec calls Python's `re` once a field and
# a record, where `decode_fast_many` matches a whole batch's values in one call
PATTERNS = {
    "event_id": r"[A-Za-z0-9._:-]+",
    "ts": r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-5][0-9])",
}
EventId = Annotated[str, Meta(min_length=1, max_length=128)]  # and PATTERNS["event_id"]
Ident = Annotated[str, Meta(min_length=1, max_length=256)]
# at most 1e15: an integer that large is exact as a float, and beyond it msgspec and
# pydantic round a long integer differently (pydantic decides those, and infinity)
NUMBER_LIMIT = 1e15
NonNegative = Annotated[float, Meta(ge=0, le=NUMBER_LIMIT)]
Timestamp = str  # and PATTERNS["ts"]
_PARSE = datetime.fromisoformat
# one value, and a batch's values one a line (no value taken holds a line break)
_ID, _TS = (re.compile(PATTERNS[name]).fullmatch for name in ("event_id", "ts"))
_IDS, _TSS = (
    re.compile(rf"(?:{PATTERNS[name]}\n)*{PATTERNS[name]}").fullmatch for name in ("event_id", "ts")
)


class _Call(
    Struct, frozen=True, kw_only=True, gc=False, forbid_unknown_fields=True, tag_field="type"
):
    """Fields common to every call event, and `epoch`: `ts` in seconds since the epoch,
    set on decoding (an event whose `ts` names no real time is not taken here)."""

    event_id: EventId
    ts: Timestamp
    call_id: Ident
    queue_id: Ident
    site: str | None = None
    source: str | None = None
    epoch: float = math.nan  # always set from `ts` (a sent "epoch" is replaced)


class FastQueued(_Call, tag="call.queued", frozen=True):
    priority: Annotated[int, Meta(ge=0, le=3)] = 2
    channel: Literal["voice", "chat", "email", "callback"] = "voice"


class FastAnswered(_Call, tag="call.answered", frozen=True):
    agent_id: Ident
    wait_s: NonNegative | None = None


class FastAbandoned(_Call, tag="call.abandoned", frozen=True):
    wait_s: NonNegative | None = None


class FastOverflowed(_Call, tag="call.overflowed", frozen=True):
    to_queue_id: Ident
    wait_s: NonNegative | None = None


class FastCallbackRequested(_Call, tag="call.callback_requested", frozen=True):
    wait_s: NonNegative | None = None


class FastCallbackCompleted(_Call, tag="call.callback_completed", frozen=True):
    outcome: Literal["connected", "no_answer", "cancelled"]
    agent_id: Ident | None = None
    wait_s: NonNegative | None = None


class FastEnded(_Call, tag="call.ended", frozen=True):
    agent_id: Ident
    talk_s: NonNegative
    hold_s: NonNegative = 0.0
    wrap_s: NonNegative = 0.0


FastCall = (
    FastQueued
    | FastAnswered
    | FastAbandoned
    | FastOverflowed
    | FastCallbackRequested
    | FastCallbackCompleted
    | FastEnded
)
_DECODE = msgspec.json.Decoder(FastCall).decode


def decode_fast(raw: bytes) -> FastCall:
    """One record as a call event, its `epoch` set from `ts`; msgspec.DecodeError (a
    ValidationError among them) for anything not taken here (`epoch` is set here rather
    than in a `__post_init__`: the same work, up to 0.15 us less an event)."""
    event: FastCall = _DECODE(raw)
    if _ID(event.event_id) is None or _TS(event.ts) is None:
        raise msgspec.ValidationError("event_id or ts: not of the one shape taken here")
    try:  # the same float as the pydantic event's `epoch`: CPython's own sum
        force_setattr(event, "epoch", _PARSE(event.ts).timestamp())
    except (ValueError, OverflowError) as exc:  # a day or hour that does not exist
        raise msgspec.ValidationError(f"ts: {exc}") from None
    return event


def decode_fast_many(data: Sequence[bytes]) -> list[FastCall | None]:
    """`decode_fast` of each record, None where it raises (bytes msgspec cannot read
    among them); the patterns of every record taken matched in one call a field."""
    decode, parse = _DECODE, _PARSE
    out: list[FastCall | None] = []
    ids: list[str] = []
    stamps: list[str] = []
    for raw in data:
        try:
            event: FastCall = decode(raw)
            force_setattr(event, "epoch", parse(event.ts).timestamp())
        except (msgspec.DecodeError, ValueError, OverflowError, OSError, RecursionError):
            # UnicodeDecodeError is a ValueError; OSError: a `ts` with no offset (the
            # pattern refuses it below) read in local time where the platform cannot
            out.append(None)
            continue
        out.append(event)
        ids.append(event.event_id)
        stamps.append(event.ts)
    if ids and not (_every(_IDS, ids) and _every(_TSS, stamps)):  # which: one by one
        out = [e if e is not None and _ID(e.event_id) and _TS(e.ts) else None for e in out]
    return out


def _every(match: Callable[[str], re.Match[str] | None], values: list[str]) -> bool:
    """Whether `match` takes `values` one a line: each value whole (a value with a line
    break of its own would make more lines than values)."""
    text = "\n".join(values)
    return text.count("\n") == len(values) - 1 and match(text) is not None
