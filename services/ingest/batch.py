"""The pure part of ingest: a request body in, valid events and rejections out (contract 1, 2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import get_args

import orjson

from services.ingest.adapters import AdapterError
from shared.errors import BadRequest, TooLarge
from shared.events import (
    AgentEvent,
    AgentSkillsChanged,
    CallEvent,
    InvalidEvent,
    parse_event,
    parse_events,
)

MAX_DEPTH = 32  # contract 1: JSON nesting at most 32 deep (the event object is level 1)
MAX_TEXT = 256  # contract 1: strings at most 256 characters, pass-through fields aside


# every field the contract names on some event type; any other field is passed through
DECLARED = frozenset(
    name for model in get_args(CallEvent | AgentEvent) for name in model.model_fields
)


@dataclass(frozen=True)
class Bounds:
    """Ingest's clock and the contract's bounds on `ts` (section 1)."""

    now: float
    max_future_skew_s: float
    max_age_s: float


@dataclass(frozen=True)
class Rejection:
    index: int
    event_id: str | None
    errors: list[str]

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "event_id": self.event_id, "errors": self.errors}


@dataclass
class Batch:
    """A parsed body: valid events (with their index) and rejected items."""

    events: list[tuple[int, CallEvent | AgentEvent]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    repeats: int = 0  # the same (source, event_id) twice within this body


def split_body(body: bytes, max_events: int) -> list[object]:
    """Decode a body into its items: one event object or an array of them."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if isinstance(raw, list):
        if len(raw) > max_events:
            raise TooLarge(f"{len(raw)} events in one request; at most {max_events}")
        return list(raw)
    return [raw]


def is_flat(body: bytes, items: list[object]) -> bool:
    """True when no event object of the body holds an object or array: its braces and
    brackets are only the objects' own and the array's (one inside a string only adds
    to the count, so True is never wrong)."""
    own = sum(1 for item in items if item.__class__ is dict) + body.lstrip().startswith(b"[")
    return body.count(b"{") + body.count(b"[") <= own


def split_lines(body: bytes, max_lines: int) -> list[str]:
    """A text body (an Asterisk queue_log extract) into its non-blank lines."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > max_lines:
        raise TooLarge(f"{len(lines)} lines in one request; at most {max_lines}")
    return lines


def nested_deeper_than(value: dict[str, object] | list[object], limit: int) -> bool:
    """True when containers nest more than `limit` deep in `value` (itself 1 deep)."""
    stack: list[tuple[dict[str, object] | list[object], int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        children = current.values() if isinstance(current, dict) else current
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def bound_errors(item: Mapping[str, object], flat: bool = False) -> list[str]:
    """Contract 1's bounds on one event object: nesting depth and declared strings' length
    (`flat`: nothing nested, by `is_flat`)."""
    if flat:
        return [
            f"{name}: at most {MAX_TEXT} characters"
            for name, value in item.items()
            if value.__class__ is str and len(value) > MAX_TEXT and name in DECLARED
        ]
    errors: list[str] = []
    for name, value in item.items():
        if isinstance(value, dict | list) and nested_deeper_than(value, MAX_DEPTH - 1):
            errors.append(f"{name}: JSON nesting deeper than {MAX_DEPTH} levels")
        elif isinstance(value, str) and len(value) > MAX_TEXT and name in DECLARED:
            errors.append(f"{name}: at most {MAX_TEXT} characters")
    return errors


def ts_errors(epoch: float, bounds: Bounds) -> list[str]:
    """`ts` within `max_future_skew_s` ahead of ingest's clock and `max_age_s` behind it."""
    if epoch > bounds.now + bounds.max_future_skew_s:
        ahead = f"{bounds.max_future_skew_s:g} s ahead of ingest's clock"
        return [f"ts: more than {ahead} (max_future_skew_s)"]
    if epoch < bounds.now - bounds.max_age_s:
        return [f"ts: more than {bounds.max_age_s:g} s behind ingest's clock (max_age_s)"]
    return []


def queues_named(event: CallEvent | AgentEvent) -> list[str]:
    """The queue ids an event makes the monitor keep figures for (its queue, an agent's skills)."""
    if isinstance(event, AgentSkillsChanged):
        return sorted({s.queue_id for s in event.skills} | set(event.serving or ()))
    queue_id = getattr(event, "queue_id", None)
    return [queue_id] if isinstance(queue_id, str) else []


def validate_items(items: list[object], source: str, bounds: Bounds, flat: bool = False) -> Batch:
    """Validate every item on its own; `source` is always the credential's (contract 1).
    `flat`: no item nests objects or arrays (`is_flat`), so depth is not walked."""
    batch = Batch()
    checked: list[tuple[int, str | None, object]] = []
    for index, item in enumerate(items):
        if item is None:  # a vendor event with nothing to count
            continue
        if isinstance(item, AdapterError):
            batch.rejected.append(Rejection(index, None, [item.message]))
            continue
        event_id = None
        if isinstance(item, dict):
            candidate = item.get("event_id")
            event_id = candidate[:128] if isinstance(candidate, str) else None
            errors = bound_errors(item, flat)
            if errors:
                batch.rejected.append(Rejection(index, event_id, errors))
                continue
            # a body's `source` is never trusted: another system's ids are not ours to claim
            item = {**item, "source": source}
        checked.append((index, event_id, item))
    # every item in one call; only when one is invalid, each on its own to say why
    events = parse_events([item for _, _, item in checked])
    seen: set[tuple[str | None, str]] = set()
    earliest, latest = bounds.now - bounds.max_age_s, bounds.now + bounds.max_future_skew_s
    for n, (index, event_id, item) in enumerate(checked):
        if events is not None:
            event = events[n]
        else:
            try:
                event = parse_event(item)
            except InvalidEvent as exc:
                batch.rejected.append(Rejection(index, event_id, exc.errors))
                continue
        epoch = event.epoch
        if not earliest <= epoch <= latest:
            batch.rejected.append(Rejection(index, event_id, ts_errors(epoch, bounds)))
            continue
        key = (event.source, event.event_id)
        if key in seen:
            batch.repeats += 1
            continue
        seen.add(key)
        batch.events.append((index, event))
    return batch
