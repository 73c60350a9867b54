"""`floorwatch tail-queue-log`: follow Asterisk's queue_log as a sidecar on the PBX.

Complete lines are posted in order to ingest's `/v1/adapters/asterisk/queue_log`; the
position (the file's inode, the offset and the last bytes before it) is saved in a small
state file only after ingest acknowledged the lines, so a restart resumes where it
stopped and a crash between the acknowledgement and the save resends lines whose event
ids make the resend harmless. Rotation:
- rename (logrotate's default, Asterisk's own `logger rotate`): the old file is drained
  to its end before the new one is read from its start; after a restart, the old file
  is found again beside the new one by its inode;
- copytruncate: the file shrinks below the offset; lines written after the last read
  are taken from the copy beside it (recognised by the bytes before the offset), then
  the truncated file is read from its start.
429 and 503 are retried after their Retry-After; other failures with a growing backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import orjson

log = logging.getLogger(__name__)

_TAIL = 64  # bytes before the offset that recognise the file in a copy
_PACKED = (".gz", ".bz2", ".xz", ".zst", ".zip")


class Retry(Exception):
    """Ingest did not take the lines; try the same lines again after `after_s`."""

    def __init__(self, message: str, after_s: float) -> None:
        super().__init__(message)
        self.after_s = after_s


@dataclass
class Position:
    inode: int
    offset: int
    tail: bytes = b""

    def as_json(self) -> bytes:
        return orjson.dumps({"inode": self.inode, "offset": self.offset, "tail": self.tail.hex()})


def load_position(path: Path) -> Position | None:
    """The saved position, None when there is none (or it cannot be read)."""
    try:
        raw = orjson.loads(path.read_bytes())
        return Position(int(raw["inode"]), int(raw["offset"]), bytes.fromhex(raw.get("tail", "")))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        log.warning(
            "state file unreadable; starting at the file's beginning", extra={"path": str(path)}
        )
        return None


def save_position(path: Path, position: Position) -> None:
    """Write the position atomically and durably (a crash leaves the old or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    with scratch.open("wb") as f:
        f.write(position.as_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(scratch, path)


class IngestSender:
    """Posts queue_log lines to ingest; raises Retry when they were not taken."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + "/v1/adapters/asterisk/queue_log"
        self.client = httpx.Client(
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        )

    def __call__(self, lines: bytes) -> None:
        try:
            r = self.client.post(self.url, content=lines)
        except httpx.HTTPError as exc:
            raise Retry(f"ingest unreachable: {exc!r}", 0) from None
        if r.status_code in (202, 422):  # 422: every line refused, none worth resending
            if r.status_code == 422:
                log.warning("ingest refused every line of a batch", extra={"body": r.text[:500]})
            return
        after = r.headers.get("retry-after", "")
        wait = float(after) if after.isdigit() else 0.0
        raise Retry(f"ingest answered {r.status_code}: {r.text[:200]}", wait)

    def close(self) -> None:
        self.client.close()


class Tailer:
    """Follows one queue_log file; `step` sends what is new, `run` loops."""

    def __init__(
        self,
        path: Path,
        state_path: Path,
        send: Callable[[bytes], None],
        max_lines: int = 1000,
        max_bytes: int = 512 * 1024,
    ) -> None:
        self.path = path
        self.state_path = state_path
        self.send = send
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.file: IO[bytes] | None = None
        self.pos = Position(0, 0)
        self.pending: list[Path] = []  # rotated copies to finish first

    # ---- opening, after a start or a rotation ------------------------------------

    def _siblings(self) -> list[Path]:
        found = [
            p
            for p in self.path.parent.glob(self.path.name + "*")
            if p != self.path and not p.name.endswith(_PACKED) and p != self.state_path
            and not p.name.endswith(".tmp")
        ]  # fmt: skip
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)

    def _open(self, path: Path, offset: int) -> None:
        self.close()
        self.file = path.open("rb")
        self.file.seek(offset)
        inode = os.fstat(self.file.fileno()).st_ino
        tail = self.pos.tail if offset else b""
        self.pos = Position(inode, offset, tail)

    def _start(self) -> bool:
        """Open where the saved position says; False while the file does not exist."""
        saved = load_position(self.state_path)
        try:
            current = self.path.stat()
        except FileNotFoundError:
            return False
        if saved is None:
            self._open(self.path, 0)
            return True
        self.pos = saved
        if saved.inode == current.st_ino and saved.offset <= current.st_size:
            self._open(self.path, saved.offset)
            return True
        # rotated while stopped: finish the old file (found by inode) or its copy first
        old = self._rotated_copy(saved, by_inode=saved.inode != current.st_ino)
        if old is not None:
            self._open(old, saved.offset)
            self.pending = [self.path]
        else:
            log.warning("queue_log rotated while stopped and the old file is gone")
            self._open(self.path, 0)
        return True

    def _rotated_copy(self, pos: Position, by_inode: bool) -> Path | None:
        for p in self._siblings():
            try:
                st = p.stat()
                if by_inode and st.st_ino == pos.inode and st.st_size >= pos.offset:
                    return p
                if not by_inode and st.st_size >= pos.offset and self._ends_with(p, pos):
                    return p
            except OSError:
                continue
        return None

    @staticmethod
    def _ends_with(path: Path, pos: Position) -> bool:
        if not pos.tail:
            return False
        with path.open("rb") as f:
            f.seek(pos.offset - len(pos.tail))
            return f.read(len(pos.tail)) == pos.tail

    # ---- reading and sending ------------------------------------------------------

    def step(self) -> int:
        """Send the next batch of complete lines; the number of lines sent (0: none new)."""
        if self.file is None and not self._start():
            return 0
        file = self.file
        if file is None:
            return 0
        tail = self.pos.tail
        file.seek(self.pos.offset - len(tail))
        if file.read(len(tail)) != tail:  # truncated, and written again past the offset
            return self._truncated()
        data = file.read(self.max_bytes)
        cut = _cut(data, self.max_lines)
        if cut == 0:
            return self._at_end(data)
        chunk = data[:cut]
        self.send(chunk)  # raises Retry: nothing moves, the same lines are sent again
        self._advance(chunk)
        return chunk.count(b"\n")

    def _advance(self, chunk: bytes) -> None:
        offset = self.pos.offset + len(chunk)
        tail = (self.pos.tail + chunk)[-_TAIL:]
        self.pos = Position(self.pos.inode, offset, tail)
        save_position(self.state_path, self.pos)

    def _at_end(self, rest: bytes) -> int:
        """No complete line left here: move on if the file was rotated or truncated."""
        try:
            current = self.path.stat()
        except FileNotFoundError:
            current = None  # renamed, the new file not yet created: wait for it
        moved = current is not None and current.st_ino != self.pos.inode
        if self.pending and not moved:
            moved = True  # finishing a rotated file found at start
        if moved and current is not None:
            if rest:  # a last line without its newline: it will get none now
                self.send(rest + b"\n")
                self._advance(rest)
            self.pending = []
            self.pos = Position(current.st_ino, 0)
            self._open(self.path, 0)
            save_position(self.state_path, self.pos)
            return 0
        if current is not None and current.st_size < self.pos.offset:  # copytruncate
            return self._truncated()
        return 0

    def _truncated(self) -> int:
        """The file was cut short under us: finish its copy, then read it from the start."""
        copy = self._rotated_copy(self.pos, by_inode=False)
        if copy is not None:
            self._open(copy, self.pos.offset)
            self.pending = [self.path]
            return 0
        log.warning("queue_log truncated and no copy found; reading it from the start")
        self._open(self.path, 0)
        save_position(self.state_path, self.pos)
        return 0

    def run(self, poll_s: float = 0.5, stop: Callable[[], bool] = lambda: False) -> None:
        """Follow the file until `stop()` says so."""
        backoff = 0.5
        while not stop():
            try:
                sent = self.step()
                backoff = 0.5
            except Retry as exc:
                wait = exc.after_s or backoff
                backoff = min(backoff * 2, 30.0)
                log.warning("lines not taken; retrying", extra={"reason": str(exc), "wait_s": wait})
                time.sleep(min(wait, 60.0))
                continue
            if not sent:
                time.sleep(poll_s)

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None


def _cut(data: bytes, max_lines: int) -> int:
    """Bytes of `data` up to the end of its last complete line (at most `max_lines`)."""
    end = 0
    for _ in range(max_lines):
        nl = data.find(b"\n", end)
        if nl < 0:
            break
        end = nl + 1
    return end


def default_state_path(path: Path) -> Path:
    """Where the position of `path` is kept: the user's state directory."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    name = str(path.resolve()).strip("/").replace("/", "_")
    return base / "floorwatch" / f"tail-{name}.json"


def tail_queue_log(
    path: Path, ingest_url: str, token: str, state_path: Path | None, poll_s: float
) -> int:
    """The command: follow `path` until interrupted."""
    sender = IngestSender(ingest_url, token)
    tailer = Tailer(path, state_path or default_state_path(path), sender)
    try:
        tailer.run(poll_s)
    except KeyboardInterrupt:
        pass
    finally:
        tailer.close()
        sender.close()
    return 0
