"""Ingest past saturation: 48 and 96 concurrent senders against one ingest process.

`python -m bench.overload [--seconds 6] [--batch 500] [--out FILE]`: starts the local
broker, Redis and one ingest process on 127.0.0.1, then for each sender count posts
batches of fresh events for a fixed time and reports accepted events/s, request
latency (p50, p99, over every answered request), answers by status, and whether Kafka
holds exactly the events answered 202 (a refused request must write nothing). The
senders hold a token each, so the per-token rate limit (2,000 events/s) is not what binds.
Stops by itself; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import ensure_topics
from shared.localstack import LocalStack, free_port
from shared.settings import CommonSettings

SENDERS = (48, 96)


def token(sender: int) -> str:
    """Each sender is a telephony system of its own, with its own throwaway token."""
    return f"overload-{sender}"


def batch_of(sender: int, n: int, size: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    return orjson.dumps(
        [
            {
                "event_id": f"s{sender}-{n + i}",
                "type": "call.queued",
                "ts": now,
                "call_id": f"c{sender}-{n + i}",
                "queue_id": f"q{(n + i) % 50}",
            }
            for i in range(size)
        ]
    )


async def post(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str, body: bytes, secret: str
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 POST on a kept-alive connection: (status, headers, body). A plain
    client: httpx spends more CPU per request than the server under test does."""
    reader, writer = conn
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers, await reader.readexactly(int(headers.get("content-length", "0")))


def cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def written(bootstrap: str, prefix: str) -> tuple[int, int]:
    """Records in the events topic, read back to its end: (records, distinct event ids)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topic = prefix + "events"
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ids: Counter[bytes] = Counter()
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 2.0:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batch.values():
                for record in records:
                    ids[orjson.loads(record.value or b"{}")["event_id"].encode()] += 1
                quiet_since = time.monotonic()
        return sum(ids.values()), len(ids)
    finally:
        await consumer.stop()


async def run(
    url: str, bootstrap: str, prefix: str, senders: int, seconds: float, size: int
) -> dict[str, Any]:
    """One load step: `senders` concurrent clients for `seconds`."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    accepted = 0
    deadline = time.monotonic() + seconds

    host, port = url.removeprefix("http://").split(":")

    async def sender(k: int) -> None:
        nonlocal accepted
        n = 0
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.monotonic() < deadline:
            body = batch_of(k, n, size)
            n += size
            started = time.monotonic()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, int(port))
                status, headers, answer = await post(conn, "/v1/events", body, token(k))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                statuses[0] += 1
                conn = None
                continue
            latencies.append(time.monotonic() - started)
            statuses[status] += 1
            if status == 202:
                accepted += int(orjson.loads(answer)["accepted"])
            elif status in (429, 503):
                await asyncio.sleep(float(headers.get("retry-after", "1")))
        if conn is not None:
            conn[1].close()

    started = time.monotonic()
    await asyncio.gather(*(sender(k) for k in range(senders)))
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)  # anything still being written behind a refusal shows up
    in_kafka, distinct = await written(bootstrap, prefix)
    return {
        "senders": senders,
        "events_per_s": round(accepted / elapsed),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "requests": dict(sorted((str(k), v) for k, v in statuses.items())),
        "accepted": accepted,
        "in_kafka": in_kafka,
        "distinct_in_kafka": distinct,
    }


async def main(seconds: float, size: int) -> dict[str, Any]:
    local = LocalStack().start()
    results: list[dict[str, Any]] = []
    try:
        for senders in SENDERS:
            prefix = f"ovl{senders}."
            port = free_port()
            await ensure_topics(
                CommonSettings(kafka_bootstrap=local.bootstrap, topic_prefix=prefix)
            )
            env = {
                **os.environ,
                **local.env(),
                "FLOORWATCH_TOPIC_PREFIX": prefix,
                "FLOORWATCH_INGEST_TOKENS": ",".join(f"s{k}:{token(k)}" for k in range(senders)),
                "FLOORWATCH_INGEST_PORT": str(port),
                "FLOORWATCH_LOG_LEVEL": "ERROR",
            }
            proc = subprocess.Popen(  # noqa: S603  # our own python and module
                [sys.executable, "-m", "services.ingest"], env=env, stdin=subprocess.DEVNULL
            )
            try:
                url = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(timeout=2) as http:
                    for _ in range(200):
                        try:
                            if (await http.get(url + "/readyz")).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        await asyncio.sleep(0.1)
                cpu_before = cpu_s(proc.pid)
                result = await run(url, local.bootstrap, prefix, senders, seconds, size)
                # the ingest process's own CPU per event: steadier than events/s on a busy machine
                used = cpu_s(proc.pid) - cpu_before
                result["ingest_cpu_ms_per_1000_events"] = round(
                    1e6 * used / max(1, result["accepted"]), 1
                )
                results.append(result)
            finally:
                proc.terminate()
                proc.wait(10)
    finally:
        local.stop()
    return {"seconds": seconds, "batch": size, "runs": results}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(main(args.seconds, args.batch))
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
