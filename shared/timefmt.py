"""Timestamps as floorwatch writes them: RFC 3339, UTC, milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(epoch: float) -> str:
    """`2026-11-11T20:00:00.000Z` for an epoch time in seconds."""
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp that carries an offset."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"{text!r}: timestamp must include a UTC offset")
    return dt.timestamp()
