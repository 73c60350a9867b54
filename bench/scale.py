"""Events per second through 1, 2 and 3 monitor processes in one consumer group.

The events topic is filled first (6 partitions, keys spread over 300 queues); then k
monitors start together and the time from the first event counted to the last is taken
from their own `/metrics`. On this 2-core machine a third process has no core of its
own: the figure says what the group buys per core, not what a cluster would.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.stack import events
from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port
from shared.settings import CommonSettings

COUNTED = re.compile(r'floorwatch_monitor_events_total\{outcome="counted"\} ([0-9.e+]+)')


async def fill(bootstrap: str, prefix: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for i in range(0, count, 5000):
            futures = [
                await producer.send(
                    f"{prefix}events", orjson.dumps(e), key=str(e["queue_id"]).encode()
                )
                for e in events(5000, start=i, queues=300)
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def counted(ports: list[int], http: httpx.AsyncClient) -> float:
    total = 0.0
    for port in ports:
        try:
            m = COUNTED.search((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
        except httpx.HTTPError:
            continue
        total += float(m.group(1)) if m else 0.0
    return total


async def events_per_s(monitors: int, count: int = 200_000, timeout_s: float = 300) -> float:
    local = LocalStack().start()
    prefix = "scale."
    procs: list[subprocess.Popen[bytes]] = []
    try:
        settings = CommonSettings(
            kafka_bootstrap=local.bootstrap, topic_prefix=prefix, topic_partitions=6
        )
        await ensure_topics(settings)
        await fill(local.bootstrap, prefix, count)
        ports = [free_port() for _ in range(monitors)]
        for port in ports:
            env = {
                **local.env(),
                "FLOORWATCH_TOPIC_PREFIX": prefix,
                "FLOORWATCH_TOPIC_PARTITIONS": "6",
                "FLOORWATCH_MONITOR_PORT": str(port),
                "FLOORWATCH_LOG_LEVEL": "WARNING",
            }
            procs.append(
                subprocess.Popen([sys.executable, "-m", "services.monitor"], env=env)  # noqa: S603
            )
        began = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as http:
            first: tuple[float, float] | None = None
            while time.monotonic() - began < timeout_s:
                done = await counted(ports, http)
                if done > 0 and first is None:
                    first = (time.monotonic(), done)
                if first is not None and done >= count:
                    return (done - first[1]) / max(1e-9, time.monotonic() - first[0])
                await asyncio.sleep(0.05)
        raise TimeoutError(f"{monitors} monitors did not count {count} events in {timeout_s} s")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        local.stop()


def curve() -> dict[str, int]:
    """Events/s for 1, 2 and 3 monitors."""
    return {str(k): round(asyncio.run(events_per_s(k))) for k in (1, 2, 3)}


def main() -> None:
    """`python -m bench.scale`: one JSON object."""
    print(orjson.dumps({"monitor.scale_events_per_s": curve()}).decode())  # noqa: T201


if __name__ == "__main__":
    main()
