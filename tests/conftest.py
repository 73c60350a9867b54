"""Fixtures shared by every tier of tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 11, 20, 0, 0, tzinfo=UTC)


def iso(offset_s: float, base: datetime = T0) -> str:
    """An RFC 3339 timestamp `offset_s` seconds after `base` (20:00:00Z by default)."""
    return (base + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")
