"""The queue_log tailer's file handling, with a sender that keeps what it is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ingest.tailer import Position, Retry, Tailer, load_position, save_position


class Collect:
    """Takes lines like ingest would; `refuse` makes the next call fail once."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.refuse = False

    def __call__(self, chunk: bytes) -> None:
        if self.refuse:
            self.refuse = False
            raise Retry("ingest answered 503", 2.0)
        self.lines += chunk.decode().splitlines()


def drain(tailer: Tailer) -> None:
    """Send all there is, then stop: each next step starts again from the state file, as
    a restarted sidecar does."""
    idle = 0
    try:
        while idle < 2:
            idle = idle + 1 if not tailer.step() else 0
    finally:
        tailer.close()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "queue_log", tmp_path / "state.json"


def test_a_refused_batch_is_sent_again_and_nothing_moves(files: tuple[Path, Path]) -> None:
    log, state = files
    log.write_text("a\nb\n")
    sent = Collect()
    tailer = Tailer(log, state, sent, max_lines=1)
    sent.refuse = True
    with pytest.raises(Retry):
        tailer.step()
    tailer.close()
    assert load_position(state) is None
    drain(tailer)
    assert sent.lines == ["a", "b"]
    assert load_position(state) == Position(log.stat().st_ino, 4, b"a\nb\n")


def test_a_truncated_file_written_past_the_old_offset_is_read_from_its_start(
    files: tuple[Path, Path],
) -> None:
    """copytruncate without a copy left beside it: the bytes before the offset differ."""
    log, state = files
    log.write_text("one\ntwo\n")
    sent = Collect()
    tailer = Tailer(log, state, sent)
    drain(tailer)
    with log.open("r+b") as f:
        f.truncate(0)
    log.write_text("three-is-longer\n")  # already past the old offset of 8 bytes
    drain(tailer)
    assert sent.lines == ["one", "two", "three-is-longer"]


def test_the_last_line_of_a_rotated_file_counts_even_without_its_newline(
    files: tuple[Path, Path],
) -> None:
    log, state = files
    log.write_text("one\ntwo")
    sent = Collect()
    tailer = Tailer(log, state, sent)
    drain(tailer)
    assert sent.lines == ["one"]
    log.rename(log.with_name("queue_log.1"))
    log.write_text("three\n")
    drain(tailer)
    assert sent.lines == ["one", "two", "three"]


def test_compressed_rotations_are_not_read(files: tuple[Path, Path]) -> None:
    """After a restart the old file was rotated and compressed: start the new one."""
    log, state = files
    log.write_text("one\ntwo\n")
    save_position(state, Position(log.stat().st_ino, 4, b"one\n"))
    log.rename(log.with_name("queue_log.1.gz"))
    log.write_text("three\n")
    sent = Collect()
    drain(Tailer(log, state, sent))
    assert sent.lines == ["three"]


def test_an_unreadable_state_file_starts_at_the_beginning(files: tuple[Path, Path]) -> None:
    log, state = files
    log.write_text("one\n")
    state.write_text("{not json")
    sent = Collect()
    drain(Tailer(log, state, sent))
    assert sent.lines == ["one"]


def test_a_file_not_there_yet_is_waited_for(files: tuple[Path, Path]) -> None:
    log, state = files
    sent = Collect()
    tailer = Tailer(log, state, sent)
    assert tailer.step() == 0
    tailer.close()
    log.write_text("one\n")
    drain(tailer)
    assert sent.lines == ["one"]
