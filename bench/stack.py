"""Benchmarks against the real local stack: ingest, raw producer, monitor, end to end."""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import websockets
from aiokafka import AIOKafkaProducer

from services.up import Service, Stack
from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port
from shared.settings import CommonSettings
from shared.timefmt import parse_ts

TOKEN = "bench-secret"
API_TOKEN = "bench-api"


def events(n: int, start: int = 0, queues: int = 50) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": f"b{i}",
            "type": "call.queued",
            "ts": now,
            "call_id": f"c{i}",
            "queue_id": f"q{i % queues}",
        }
        for i in range(start, start + n)
    ]


@asynccontextmanager
async def services(
    names: list[str], prefix: str, tick_s: float = 2.0
) -> AsyncIterator[dict[str, str]]:
    """The local broker and Redis, and the named services as `floorwatch up` runs them."""
    local = LocalStack().start()
    env = {
        **local.env(),
        "FLOORWATCH_TOPIC_PREFIX": prefix,
        "FLOORWATCH_INGEST_TOKENS": f"bench:{TOKEN}",
        "FLOORWATCH_API_TOKENS": f"bench:admin:{API_TOKEN}",
        "FLOORWATCH_TICK_S": str(tick_s),
        "FLOORWATCH_LOG_LEVEL": "WARNING",
        # throughput, not admission, is measured: the per-token rate limit (2,000/s by
        # default) would refuse most of the load with 429s; it is still checked per request
        "FLOORWATCH_INGEST_RATE_PER_S": "100000000",
    }
    stack = Stack(env, local=local)
    urls: dict[str, str] = {"bootstrap": local.bootstrap}
    try:
        await ensure_topics(CommonSettings(kafka_bootstrap=local.bootstrap, topic_prefix=prefix))
        for name in names:
            port = free_port()
            env[f"FLOORWATCH_{name.upper()}_PORT"] = str(port)
            stack.start(Service(name, f"services.{name}", port))
            urls[name] = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(stack.wait_ready)
        yield urls
    finally:
        stack.stop()


async def ingest_events_per_s(
    seconds: float = 8.0, clients: int = 8, batch: int = 500
) -> dict[str, float]:
    """Events accepted by one ingest process, and by a plain producer to the same broker."""
    async with services(["ingest"], "bench.") as urls:
        deadline = time.monotonic() + seconds
        accepted = 0

        async def client(k: int) -> None:
            nonlocal accepted
            n = 0
            async with httpx.AsyncClient(timeout=30) as http:
                while time.monotonic() < deadline:
                    body = orjson.dumps(events(batch, start=(k * 10_000_000) + n))
                    r = await http.post(
                        f"{urls['ingest']}/v1/events",
                        content=body,
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
                    accepted += r.json().get("accepted", 0)
                    n += batch

        started = time.monotonic()
        await asyncio.gather(*(client(k) for k in range(clients)))
        via_ingest = accepted / (time.monotonic() - started)
        raw = await raw_producer_events_per_s(urls["bootstrap"], "bench.events", seconds)
    return {"events_per_s": via_ingest, "raw_producer_events_per_s": raw, "ratio": via_ingest / raw}


async def raw_producer_events_per_s(bootstrap: str, topic: str, seconds: float) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    try:
        payloads = [
            (orjson.dumps(e), str(e["queue_id"]).encode()) for e in events(5000, start=90_000_000)
        ]
        sent = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            futures = [await producer.send(topic, value, key=key) for value, key in payloads]
            await asyncio.gather(*futures)
            sent += len(futures)
        return sent / (time.monotonic() - started)
    finally:
        await producer.stop()


async def monitor_events_per_s(count: int = 200_000) -> float:
    """Events consumed from Kafka and counted by one monitor process."""
    local = LocalStack().start()
    try:
        settings = CommonSettings(kafka_bootstrap=local.bootstrap, topic_prefix="mon.")
        await ensure_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=local.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        for i in range(0, count, 5000):
            futures = [
                await producer.send("mon.events", orjson.dumps(e), key=str(e["queue_id"]).encode())
                for e in events(5000, start=i)
            ]
            await asyncio.gather(*futures)
        await producer.stop()
        port = free_port()
        env = {
            **local.env(),
            "FLOORWATCH_TOPIC_PREFIX": "mon.",
            "FLOORWATCH_MONITOR_PORT": str(port),
            "FLOORWATCH_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen([sys.executable, "-m", "services.monitor"], env=env)  # noqa: S603
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                first = None
                while True:
                    try:
                        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                    except httpx.HTTPError:
                        await asyncio.sleep(0.05)
                        continue
                    m = re.search(
                        r'floorwatch_monitor_events_total\{outcome="counted"\} ([0-9.e+]+)', text
                    )
                    done = float(m.group(1)) if m else 0.0
                    if done > 0 and first is None:
                        first = (time.monotonic(), done)
                    if done >= count and first is not None:
                        return (done - first[1]) / max(1e-9, time.monotonic() - first[0])
                    await asyncio.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        local.stop()


async def e2e_latency_ms(rate: int = 2000, seconds: float = 60.0) -> dict[str, float]:
    """From ingest's 202 to a board websocket message whose snapshot includes the event."""
    async with services(["ingest", "monitor", "api"], "e2e.") as urls:
        seen: dict[int, float] = {}  # probe count -> when a tick first showed it
        acked: dict[int, float] = {}
        # where the time goes: the tick that first counted a probe (its as_of) against
        # the wall clock when ingest acknowledged it and when the board's message came
        seen_wall: dict[int, tuple[float, float]] = {}  # probe -> (as_of, received)
        acked_wall: dict[int, float] = {}
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():  # a board closes a client it finds slow: reconnect
                try:
                    await watch_once()
                except websockets.ConnectionClosed:
                    continue

        async def watch_once() -> None:
            async with websockets.connect(
                urls["api"].replace("http", "ws") + "/v1/ws/board",
                additional_headers={"Authorization": f"Bearer {API_TOKEN}"},  # not in the URL
                max_size=None,
            ) as ws:
                while not stop.is_set():
                    try:
                        msg = orjson.loads(await asyncio.wait_for(ws.recv(), 1.0))
                    except TimeoutError:
                        continue
                    for q in msg.get("queues", []):
                        if q["queue_id"] == "probe":
                            count = int(q["windows"]["300"]["arrivals"])
                            as_of = parse_ts(str(q["as_of"]))
                            for k in range(1, count + 1):
                                seen.setdefault(k, time.monotonic())
                                seen_wall.setdefault(k, (as_of, time.time()))

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(1.0)
        per_batch = rate // 20  # 20 batches a second
        probes = 0
        async with httpx.AsyncClient(timeout=30) as http:
            started = time.monotonic()
            k = 0
            while time.monotonic() - started < seconds:
                batch = events(per_batch - 1, start=k * per_batch)
                probes += 1
                batch.append(
                    {
                        "event_id": f"p{probes}",
                        "type": "call.queued",
                        "ts": datetime.now(UTC).isoformat(),
                        "call_id": f"p{probes}",
                        "queue_id": "probe",
                    }
                )
                r = await http.post(
                    f"{urls['ingest']}/v1/events",
                    content=orjson.dumps(batch),
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                if r.status_code == 202:
                    acked[probes] = time.monotonic()
                    acked_wall[probes] = time.time()
                k += 1
                await asyncio.sleep(max(0.0, started + k / 20 - time.monotonic()))
        await asyncio.sleep(5.0)
        stop.set()
        await watcher
        lat = sorted(max(0.0, seen[p] - t) * 1000 for p, t in acked.items() if p in seen)
        if not lat:
            return {
                "p50_ms": float("nan"),
                "p95_ms": float("nan"),
                "p99_ms": float("nan"),
                "samples": 0,
            }
        q = statistics.quantiles(lat, n=100, method="inclusive")
        # to the tick: from the ack to the as_of of the first tick counting the probe (the
        # wait for the tick, and for the monitor's consumer); after it: from that as_of
        # to the board's message (compute, publish, the API's consumer, the websocket)
        to_tick = [(seen_wall[p][0] - t) * 1000 for p, t in acked_wall.items() if p in seen_wall]
        after = [(seen_wall[p][1] - seen_wall[p][0]) * 1000 for p in acked_wall if p in seen_wall]
        qt = statistics.quantiles(to_tick, n=100, method="inclusive")
        qa = statistics.quantiles(after, n=100, method="inclusive")
        return {
            "p50_ms": statistics.median(lat),
            "p95_ms": q[94],
            "p99_ms": q[98],
            "samples": len(lat),
            "to_tick_p50_ms": statistics.median(to_tick),
            "to_tick_p99_ms": qt[98],
            "after_tick_p50_ms": statistics.median(after),
            "after_tick_p99_ms": qa[98],
        }


def scenario_s() -> float:
    started = time.monotonic()
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "services.cli", "scenario", "promo-night"],
        check=True,
        capture_output=True,
        env=os.environ,
    )
    return time.monotonic() - started
