"""A whole stack in subprocesses on its own broker and Redis, a sender that remembers what
was acknowledged, and the brute-force recount the API's numbers are checked against."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from services.monitor.replay import replay
from shared.localstack import LocalServer, LocalStack, free_port
from shared.timefmt import parse_ts

INGEST_SECRET = "faults-ingest-secret"
API_SECRET = "faults-admin-secret"
WINDOW_FIELDS = ("arrivals", "answered", "answered_within_target", "abandoned", "offered")


@dataclass
class Proc:
    name: str
    module: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603  # our own python and module
                [sys.executable, "-m", self.module],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no goodbye, no commit, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class FaultStack:
    """Broker, Redis, ingest, API and monitors: each a process of its own."""

    local: LocalStack
    procs: dict[str, Proc] = field(default_factory=dict)
    prefix: str = "f."

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "FLOORWATCH_KAFKA_BOOTSTRAP": self.local.bootstrap,
            "FLOORWATCH_REDIS_URL": self.local.redis_url,
            "FLOORWATCH_TOPIC_PREFIX": self.prefix,
            "FLOORWATCH_INGEST_TOKENS": f"pbx:{INGEST_SECRET}",
            "FLOORWATCH_API_TOKENS": f"ops:admin:{API_SECRET}",
            "FLOORWATCH_TICK_S": "0.5",
            "FLOORWATCH_LOG_LEVEL": os.environ.get("FLOORWATCH_FAULTS_LOG_LEVEL", "WARNING"),
            **extra,
        }

    def add(self, name: str, module: str, port_var: str, **extra: str) -> Proc:
        port = free_port()
        proc = Proc(
            name, module, port, self.env(**{port_var: str(port)}, **extra),
            self.local.workdir / f"{name}.log",
        )  # fmt: skip
        self.procs[name] = proc
        proc.start()
        return proc

    def start(self) -> FaultStack:
        self.add("ingest", "services.ingest", "FLOORWATCH_INGEST_PORT")
        self.add("api", "services.api", "FLOORWATCH_API_PORT")
        self.add("monitor", "services.monitor", "FLOORWATCH_MONITOR_PORT")
        for proc in self.procs.values():
            wait_ready(proc)
        return self

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()

    def restart_server(self, server: LocalServer) -> float:
        """Kill a broker or Redis and start it again on the same port; seconds it was down."""
        began = time.monotonic()
        if server.proc is not None:
            server.proc.kill()
            server.proc.wait(10)
        server.start()
        return time.monotonic() - began


def wait_ready(proc: Proc, timeout_s: float = 60.0) -> float:
    """Seconds until `/readyz` answers 200."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if proc.proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"{proc.name} exited: {proc.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{proc.url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{proc.name} never ready: {proc.log.read_text()[-3000:]}")


def stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Sender:
    """Posts calls to ingest and keeps every event that was answered as accepted."""

    url: str
    queues: int = 5
    acked: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0  # events of requests answered 429 or 503 (not acknowledged)
    statuses: dict[int, int] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    open_calls: list[tuple[str, str, datetime]] = field(default_factory=list)

    def batch(self, size: int) -> list[dict[str, Any]]:
        """New calls, and answers or abandons of earlier ones, stamped just now."""
        now = datetime.now(UTC)
        out: list[dict[str, Any]] = []
        for _ in range(size):
            n = next(self._ids)
            if self.open_calls and n % 3:
                call_id, queue, queued = self.open_calls.pop(0)
                kind = "call.answered" if n % 5 else "call.abandoned"
                event: dict[str, Any] = {"type": kind, "call_id": call_id, "queue_id": queue}
                if kind == "call.answered":
                    event["agent_id"] = f"a{n % 7}"
                event["wait_s"] = round((now - queued).total_seconds() + n % 40, 3)
            else:
                queue = f"q{(n // 3) % self.queues}"  # every queue gets calls
                event = {"type": "call.queued", "call_id": f"c{n}", "queue_id": queue}
                self.open_calls.append((f"c{n}", queue, now))
            out.append({"event_id": f"e{n}", "ts": stamp(now - timedelta(seconds=1)), **event})
        return out

    async def post(self, client: httpx.AsyncClient, events: list[dict[str, Any]]) -> int:
        """One request; the events it acknowledged are remembered. Returns the status."""
        try:
            r = await client.post(
                f"{self.url}/v1/events",
                content=orjson.dumps(events),
                headers={"Authorization": f"Bearer {INGEST_SECRET}"},
                timeout=15,
            )
        except httpx.HTTPError:
            self.statuses[0] = self.statuses.get(0, 0) + 1
            self.refused += len(events)
            return 0
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code == 202:
            rejected = {item["index"] for item in r.json()["rejected"]}
            self.acked.extend(e for i, e in enumerate(events) if i not in rejected)
        else:
            self.refused += len(events)
        return r.status_code

    async def rounds(self, client: httpx.AsyncClient, n: int, size: int = 40) -> None:
        for _ in range(n):
            await self.post(client, self.batch(size))
            await asyncio.sleep(0.1)


async def settled_queues(api_url: str, after: float, timeout_s: float = 60.0) -> dict[str, Any]:
    """The API's `GET /v1/queues` once every queue's `as_of` is past `after` (epoch s)."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                r = await client.get(
                    f"{api_url}/v1/queues", headers={"Authorization": f"Bearer {API_SECRET}"}
                )
                if r.status_code == 200:
                    body = r.json()
                    fresh = [parse_ts(q["as_of"]) > after for q in body["queues"]]
                    if fresh and all(fresh):
                        return body
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    shown = {q["queue_id"]: q["as_of"] for q in body.get("queues", [])}
    raise AssertionError(f"the API never showed every queue after {after}: {shown}")


def recount(acked: list[dict[str, Any]], as_of: str) -> dict[str, dict[str, Any]]:
    """The brute-force recount: the acknowledged events replayed at `as_of`."""
    body, bad = replay([orjson.dumps(e) for e in acked], parse_ts(as_of))
    assert bad == []
    return {q["queue_id"]: q for q in body["queues"]}  # type: ignore[attr-defined]


def mismatches(shown: dict[str, Any], acked: list[dict[str, Any]]) -> list[str]:
    """Every number the API shows that differs from the recount of the acknowledged events
    at that snapshot's own `as_of` (each monitor ticks on its own clock)."""
    truths: dict[str, dict[str, dict[str, Any]]] = {}
    live = {q["queue_id"]: q for q in shown["queues"]}
    out = []
    for queue_id, snap in sorted(live.items()):
        as_of = snap["as_of"]
        if as_of not in truths:
            truths[as_of] = recount(acked, as_of)
        truth = truths[as_of].get(queue_id)
        if truth is None:
            out.append(f"{queue_id}: shown, but no acknowledged event of it")
            continue
        for window, figures in truth["windows"].items():
            for name in WINDOW_FIELDS:
                have, want = snap["windows"][window][name], figures[name]
                if have != want:
                    out.append(f"{queue_id} {window} {name}: shown {have}, recount {want}")
        if snap["waiting"] != truth["waiting"]:
            out.append(f"{queue_id} waiting: shown {snap['waiting']}, recount {truth['waiting']}")
    every = {e["queue_id"] for e in acked if "queue_id" in e}  # agent events have none
    if every - set(live):
        out.append(f"queues never shown: {sorted(every - set(live))}")
    return out


def record(case: str, **numbers: object) -> None:
    """Append what a fault case measured to `$FLOORWATCH_FAULTS_REPORT` (JSON lines)."""
    path = os.environ.get("FLOORWATCH_FAULTS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"case": case, **numbers}) + "\n")


async def read_all(bootstrap: str, topic: str, settle_s: float = 0.5) -> list[dict[str, Any]]:
    """Every record of a topic, decoded; none when the topic does not exist (any more).
    A broker just restarted can fail a first read from inside the client: tried thrice."""
    for attempt in range(3):
        try:
            return await _read_all(bootstrap, topic, settle_s)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if (task is not None and task.cancelling()) or attempt == 2:
                raise
            await asyncio.sleep(1.0)
    return []


async def _read_all(bootstrap: str, topic: str, settle_s: float) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)  # these logs are never truncated: 0 is their beginning
        out: list[dict[str, Any]] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle_s:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records)
                quiet_since = time.monotonic()
        return out
    finally:
        await consumer.stop()
