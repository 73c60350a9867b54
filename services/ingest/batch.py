"""The pure part of ingest: a request body in, valid events and rejections out (contract 2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from services.ingest.adapters import AdapterError
from shared.events import AgentEvent, CallEvent, InvalidEvent, parse_event


class RequestError(ValueError):
    """The request as a whole is refused; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
        raise RequestError(400, f"body is not JSON: {exc}") from None
    if isinstance(raw, list):
        if len(raw) > max_events:
            raise RequestError(413, f"{len(raw)} events in one request; at most {max_events}")
        return list(raw)
    return [raw]


def split_lines(body: bytes, max_lines: int) -> list[str]:
    """A text body (an Asterisk queue_log extract) into its non-blank lines."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "body is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > max_lines:
        raise RequestError(413, f"{len(lines)} lines in one request; at most {max_lines}")
    return lines


def validate_items(items: list[object], source: str) -> Batch:
    """Validate every item on its own; fill `source` from the credential when absent."""
    batch = Batch()
    seen: set[tuple[str | None, str]] = set()
    for index, item in enumerate(items):
        if item is None:  # a vendor event with nothing to count
            continue
        if isinstance(item, AdapterError):
            batch.rejected.append(Rejection(index, None, [item.message]))
            continue
        event_id = None
        if isinstance(item, dict):
            candidate = item.get("event_id")
            event_id = candidate if isinstance(candidate, str) else None
            if item.get("source") is None:
                item = {**item, "source": source}
        try:
            event = parse_event(item)
        except InvalidEvent as exc:
            batch.rejected.append(Rejection(index, event_id, exc.errors))
            continue
        key = (event.source, event.event_id)
        if key in seen:
            batch.repeats += 1
            continue
        seen.add(key)
        batch.events.append((index, event))
    return batch
