"""Timestamps as floorwatch writes them: RFC 3339, UTC, milliseconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def iso_ms(epoch: float) -> str:
    """`2026-11-11T20:00:00.000Z` for an epoch time in seconds."""
    ms = round(epoch * 1000)
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def whole_ms(epoch: float) -> float:
    """`epoch` cut to whole milliseconds, so that `iso_ms` names it exactly."""
    return math.floor(epoch * 1000) / 1000


def parse_ts(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp that carries an offset."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"{text!r}: timestamp must include a UTC offset")
    return dt.timestamp()
