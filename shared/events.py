"""The canonical telephony events of contract section 1, and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from shared.fastcalls import FastCall, decode_fast_many
from shared.timefmt import epoch

EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=256)]
# contract v2, section 1: numbers are JSON numbers (no "12" strings) and finite
NonNegative = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]
AgentState = Literal["available", "busy", "wrap_up", "not_ready", "offline"]

CALL_TYPES = (
    "call.queued",
    "call.answered",
    "call.abandoned",
    "call.overflowed",
    "call.callback_requested",
    "call.callback_completed",
    "call.ended",
)
AGENT_TYPES = ("agent.state", "agent.skills")
EVENT_TYPES = CALL_TYPES + AGENT_TYPES


class _Event(BaseModel):
    """Fields common to every event; unknown extra fields are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: EventId
    ts: AwareDatetime
    site: str | None = None
    source: str | None = None

    @property
    def epoch(self) -> float:
        """The event time as seconds since the Unix epoch."""
        return epoch(self.ts)


class CallQueued(_Event):
    type: Literal["call.queued"]
    call_id: Ident
    queue_id: Ident
    priority: Annotated[int, Field(ge=0, le=3, strict=True)] = 2
    channel: Literal["voice", "chat", "email", "callback"] = "voice"


class CallAnswered(_Event):
    type: Literal["call.answered"]
    call_id: Ident
    queue_id: Ident
    agent_id: Ident
    wait_s: NonNegative | None = None


class CallAbandoned(_Event):
    type: Literal["call.abandoned"]
    call_id: Ident
    queue_id: Ident
    wait_s: NonNegative | None = None


class CallOverflowed(_Event):
    type: Literal["call.overflowed"]
    call_id: Ident
    queue_id: Ident
    to_queue_id: Ident
    wait_s: NonNegative | None = None


class CallbackRequested(_Event):
    type: Literal["call.callback_requested"]
    call_id: Ident
    queue_id: Ident
    wait_s: NonNegative | None = None


class CallbackCompleted(_Event):
    type: Literal["call.callback_completed"]
    call_id: Ident
    queue_id: Ident
    outcome: Literal["connected", "no_answer", "cancelled"]
    agent_id: Ident | None = None
    wait_s: NonNegative | None = None  # seconds from the request to this event


class CallEnded(_Event):
    type: Literal["call.ended"]
    call_id: Ident
    queue_id: Ident
    agent_id: Ident
    talk_s: NonNegative
    hold_s: NonNegative = 0.0
    wrap_s: NonNegative = 0.0


class AgentStateChanged(_Event):
    type: Literal["agent.state"]
    agent_id: Ident
    state: AgentState
    reason: str | None = None


class Skill(BaseModel):
    model_config = ConfigDict(frozen=True)

    queue_id: Ident
    level: Annotated[int, Field(ge=1, le=10, strict=True)]


class AgentSkillsChanged(_Event):
    type: Literal["agent.skills"]
    agent_id: Ident
    skills: Annotated[list[Skill], Field(max_length=200)]
    serving: Annotated[list[Ident], Field(max_length=200)] | None = None
    pool: Literal["regular", "standby", "partner", "emergency"] = "regular"

    def serving_queues(self) -> frozenset[str]:
        """The queues routed to the agent: `serving`, or all its skills by default."""
        if self.serving is not None:
            return frozenset(self.serving)
        return frozenset(s.queue_id for s in self.skills)


CallEvent = (
    CallQueued
    | CallAnswered
    | CallAbandoned
    | CallOverflowed
    | CallbackRequested
    | CallbackCompleted
    | CallEnded
)
AgentEvent = AgentStateChanged | AgentSkillsChanged
# an event as `decode_events` gives it: a model, or a call event's msgspec twin
AnyEvent = CallEvent | AgentEvent | FastCall
# the agent events' classes, for a set lookup on hot paths (cheaper than a union isinstance)
AGENT_EVENTS = frozenset({AgentStateChanged, AgentSkillsChanged})
Event = Annotated[CallEvent | AgentEvent, Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[CallEvent | AgentEvent] = TypeAdapter(Event)
# a whole batch in one call into pydantic-core (no Python between its events)
EVENTS_ADAPTER: TypeAdapter[list[CallEvent | AgentEvent]] = TypeAdapter(list[Event])
_VALIDATE_JSON = EVENT_ADAPTER.validator.validate_json  # without the adapter's wrapper

_MESSAGES = {
    "timezone_aware": "timestamp must include a UTC offset",
    "datetime_from_date_parsing": "must be an RFC 3339 timestamp",
    "datetime_parsing": "must be an RFC 3339 timestamp",
    "datetime_type": "must be an RFC 3339 timestamp",
    "missing": "field required",
    "string_pattern_mismatch": "must be 1..128 characters of [A-Za-z0-9._:-]",
    "greater_than_equal": "must be >= {ge}",
    "less_than_equal": "must be <= {le}",
    "union_tag_invalid": "must be one of " + ", ".join(EVENT_TYPES),
    "union_tag_not_found": "field required (one of " + ", ".join(EVENT_TYPES) + ")",
    "model_attributes_type": "event must be a JSON object",
    "model_type": "event must be a JSON object",
    "finite_number": "must be a finite number",
    "float_type": "must be a number",
    "int_type": "must be a whole number",
    "too_long": "at most {max_length} items",
}


def _location(loc: tuple[int | str, ...], tag: object) -> str:
    parts = list(loc)
    if parts and parts[0] == tag:  # a discriminated union puts the tag first
        parts = parts[1:]
    return ".".join(str(p) for p in parts)


def describe_errors(exc: ValidationError, raw: object) -> list[str]:
    """Turn pydantic errors into `field: rule` messages a sender can act on."""
    tag = raw.get("type") if isinstance(raw, Mapping) else None
    out: list[str] = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        where = _location(err["loc"], tag)
        template = _MESSAGES.get(kind)
        ctx = err.get("ctx") or {}
        msg = template.format(**ctx) if template else str(err["msg"])
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            where = "type"
        if kind in ("model_attributes_type", "model_type") and not where:
            out.append(msg)
            continue
        out.append(f"{where}: {msg}" if where else msg)
    return out


class InvalidEvent(ValueError):
    """An event that breaks the contract; `errors` name each field and rule."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def parse_event(raw: object) -> CallEvent | AgentEvent:
    """Validate one decoded JSON value as an event, or raise InvalidEvent."""
    if not isinstance(raw, Mapping):
        raise InvalidEvent(["event must be a JSON object"])
    try:
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise InvalidEvent(describe_errors(exc, raw)) from None


def decode_event(data: bytes | str) -> CallEvent | AgentEvent:
    """Decode and validate one JSON-encoded event, or raise InvalidEvent."""
    try:
        return EVENT_ADAPTER.validate_json(data)  # the fast path: one pass in pydantic-core
    except ValidationError:
        pass  # decode again to say what is wrong, field by field
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent([f"not JSON: {exc}"]) from None
    return parse_event(raw)


def parse_events(raws: list[object]) -> list[CallEvent | AgentEvent] | None:
    """Validate decoded JSON values as events in one call; None when any is invalid (then
    `parse_event` on each says which and why)."""
    try:
        return EVENTS_ADAPTER.validate_python(raws)
    except ValidationError:
        return None


def decode_events(data: list[bytes]) -> list[AnyEvent | InvalidEvent]:
    """Decode and validate JSON-encoded events: each the event `decode_event` returns (or
    its `FastCall` twin: the same fields and values, `ts` as its text, `epoch` read from
    it), or the InvalidEvent it raises. Each record on its own (records joined into one
    array could pair a string opened in one with a quote in the next): a call event with
    known fields only through msgspec (`shared.fastcalls`), anything else straight into
    pydantic-core's validator."""
    validate = _VALIDATE_JSON
    out: list[AnyEvent | InvalidEvent] = []
    for raw, fast in zip(data, decode_fast_many(data), strict=True):
        if fast is not None:
            out.append(fast)
            continue
        # not one fastcalls takes (or bytes it cannot read): pydantic says what it is
        try:
            out.append(validate(raw))
        except ValidationError:
            try:
                out.append(decode_event(raw))
            except InvalidEvent as exc:
                out.append(exc)
    return out


def encode_event(event: CallEvent | AgentEvent) -> bytes:
    """The canonical JSON form of an event (extra fields included)."""
    return event.model_dump_json(exclude_none=True).encode()


def event_key(event: CallEvent | AgentEvent) -> str:
    """The Kafka key of an event: `queue_id` for calls, `agent_id` for agents (contract 3)."""
    if isinstance(event, AgentStateChanged | AgentSkillsChanged):
        return event.agent_id
    return event.queue_id


def is_agent_event(event: CallEvent | AgentEvent) -> bool:
    return isinstance(event, AgentStateChanged | AgentSkillsChanged)
