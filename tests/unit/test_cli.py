"""The `floorwatch` command: every subcommand is listed, and bad input is a clear error."""

from __future__ import annotations

import pytest

from services.cli import build_parser, main


def test_every_subcommand_is_listed_with_its_help() -> None:
    text = build_parser().format_help()
    for name in ("up", "replay", "scenario", "rebuild-intervals", "tail-queue-log"):
        assert name in text


def test_rebuild_intervals_refuses_a_span_that_ends_before_it_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["rebuild-intervals", "--from", "2026-11-25T01:00:00Z", "--to",
                 "2026-11-25T00:00:00Z"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err == "rebuild: --to must be after --from\n"


def test_rebuild_intervals_refuses_a_time_without_offset(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["rebuild-intervals", "--from", "2026-11-25T00:00:00", "--to",
                 "2026-11-25T01:00:00Z"])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.startswith("rebuild: ")
