"""Vendor formats into the contract's events (contract 2): the parts every adapter shares.

The adapters themselves are `asterisk.py` (queue_log lines), `twilio.py` (TaskRouter event
callbacks) and `connect.py` (Amazon Connect contact events and agent event stream
records). Each takes one vendor record and returns a list of items: canonical event
dicts, validated afterwards like any posted event, or AdapterError naming what is
wrong. A record that carries nothing floorwatch counts gives an empty list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.ingest.asterisk import Members
    from services.ingest.connect import Contacts
    from services.ingest.twilio import Tasks

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")
MAX_TEXT = 256  # contract 1: strings are at most 256 characters


@dataclass(frozen=True)
class AdapterError:
    message: str


Event = dict[str, Any]  # Any: the fields of one canonical event, validated by ingest
Item = Event | AdapterError


def epoch_ts(epoch: str | float) -> str:
    """A Unix time (seconds, may carry a fraction) as RFC 3339 UTC."""
    return datetime.fromtimestamp(float(epoch), UTC).isoformat()


def event_id(*parts: str) -> str:
    """An event id of the contract's alphabet from vendor identifiers."""
    return _UNSAFE.sub("_", ":".join(parts))[:128]


def seconds(value: str | float, name: str) -> float:
    """A non-negative, finite number of seconds, or ValueError naming the field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"{name} {value!r} is not a duration")
    return number


def text(value: object) -> str:
    """A vendor string cut to the contract's bound."""
    return str(value)[:MAX_TEXT]


@dataclass
class AdapterMemory:
    """What the adapters remember between requests, in one ingest process: Asterisk
    members per source, Twilio tasks and workers, Connect contacts."""

    members: dict[str, Members] = field(default_factory=dict)
    tasks: Tasks = field(default_factory=lambda: _tasks())
    contacts: Contacts = field(default_factory=lambda: _contacts())

    def members_of(self, source: str) -> Members:
        """The member book of one Asterisk source (a copy: see `keep_members`)."""
        book = self.members.get(source)
        if book is None:
            from services.ingest.asterisk import Members

            book = self.members[source] = Members()
        return book.copy()

    def keep_members(self, source: str, book: Members) -> None:
        """Keep the book a request was parsed with, once ingest took the request."""
        self.members[source] = book


# the vendor modules import this one: theirs are imported when first needed
def _tasks() -> Tasks:
    from services.ingest.twilio import Tasks

    return Tasks()


def _contacts() -> Contacts:
    from services.ingest.connect import Contacts

    return Contacts()


# ---- older names ------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature of a form POST (see `twilio.signature`)."""
    from services.ingest.twilio import signature

    return signature(auth_token, url, params)
