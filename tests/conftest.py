"""Fixtures shared by every tier of tests: time helpers, and the real local broker and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.localstack import LocalStack

T0 = datetime(2026, 11, 11, 20, 0, 0, tzinfo=UTC)


def iso(offset_s: float, base: datetime = T0) -> str:
    """An RFC 3339 timestamp `offset_s` seconds after `base` (20:00:00Z by default)."""
    return (base + timedelta(seconds=offset_s)).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """A broker and a Redis server on free ports for the whole session."""
    local = LocalStack().start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def prefix() -> str:
    """A topic and key prefix of its own for each test, so tests never see each other."""
    return f"t{uuid.uuid4().hex[:10]}."


_TIERS = {"integration": "integration", "e2e": "e2e", "faults": "faults", "deploy": "integration"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so `-m "not integration"` runs the pure tier alone."""
    for item in items:
        parts = item.path.parts
        folder = parts[parts.index("tests") + 1] if "tests" in parts else ""
        marker = _TIERS.get(folder)
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))
