"""Reading a file a person names on the command line: bounded, with errors they can act on."""

from __future__ import annotations

from pathlib import Path


def read_bounded(path: Path, limit: int, label: str) -> bytes:
    """The file's bytes, or ValueError naming it (`label`) when unreadable or over `limit`."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"{label[:200]}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ValueError(f"{label[:200]}: larger than {limit} bytes")
    return data
