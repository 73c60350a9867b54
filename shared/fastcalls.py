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
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import force_setattr

EventId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+\Z")]
Ident = Annotated[str, Meta(min_length=1, max_length=256)]
# at most 1e15: an integer that large is exact as a float, and beyond it msgspec and
# pydantic round a long integer differently (pydantic decides those, and infinity)
NUMBER_LIMIT = 1e15
NonNegative = Annotated[float, Meta(ge=0, le=NUMBER_LIMIT)]
# the offset's minutes below 60: Python reads "+00:99" as 1 h 39 min, pydantic refuses it
Timestamp = Annotated[
    str,
    Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
         r"(Z|[+-][0-9]{2}:[0-5][0-9])\Z"),
]  # fmt: skip
_PARSE = datetime.fromisoformat


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
    try:  # the same float as the pydantic event's `epoch`: CPython's own sum
        force_setattr(event, "epoch", _PARSE(event.ts).timestamp())
    except (ValueError, OverflowError) as exc:  # a day or hour that does not exist
        raise msgspec.ValidationError(f"ts: {exc}") from None
    return event
