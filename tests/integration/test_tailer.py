"""`floorwatch tail-queue-log` against a real ingest: rotation, restart, no line lost or doubled."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import orjson
import pytest

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from services.ingest.tailer import IngestSender, Retry, Tailer, load_position
from shared.localstack import LocalStack
from tests.integration.conftest import serve
from tests.integration.test_ingest import read_topic

EPOCH = int(time.time()) - 600  # ingest refuses events older than 7 days


def line(n: int) -> bytes:
    return f"{EPOCH + n}|call{n}|billing|NONE|ENTERQUEUE||0421555{n:03d}|1\n".encode()


def lines(*numbers: int) -> bytes:
    return b"".join(line(n) for n in numbers)


async def drain(tailer: Tailer) -> int:
    """Step until two steps in a row find nothing (a rotation is noticed by a step that
    finds the old file's end); the tailer is synchronous: run it off the loop."""
    total, idle = 0, 0
    while idle < 2:
        sent = await asyncio.to_thread(tailer.step)
        total += sent
        idle = idle + 1 if not sent else 0
    return total


async def test_tailer_follows_rotation_and_restarts(
    stack: LocalStack, prefix: str, tmp_path: Path
) -> None:
    settings = IngestSettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix,
        ingest_tokens="pbx:s3cret", ingest_produce_timeout_s=3.0,
    )  # fmt: skip
    log, state = tmp_path / "queue_log", tmp_path / "state" / "tail.json"
    async with serve(create_app(settings)) as url:
        sender = IngestSender(url, "s3cret")
        try:
            # 1. three lines and the start of a fourth (no newline yet: not sent)
            log.write_bytes(lines(1, 2, 3) + line(4)[:20])
            first = Tailer(log, state, sender)
            assert await drain(first) == 3
            saved = load_position(state)
            assert saved is not None and saved.offset == len(lines(1, 2, 3))
            first.close()  # the sidecar stops here

            # 2. while it is stopped: line 4 completes, 5 follows, logrotate renames the
            #    file and Asterisk starts a new one with 6 and 7
            with log.open("ab") as f:
                f.write(line(4)[20:] + line(5))
            log.rename(tmp_path / "queue_log.1")
            log.write_bytes(lines(6, 7))
            second = Tailer(log, state, sender)
            assert await drain(second) == 4  # 4 and 5 from the old file, then 6 and 7
            before_crash = load_position(state)
            assert before_crash is not None and before_crash.offset == len(lines(6, 7))

            # 3. copytruncate: 8 is written, the file copied and cut, then 9 is written
            with log.open("ab") as f:
                f.write(line(8))
            shutil.copyfile(log, tmp_path / "queue_log.2")
            with log.open("r+b") as f:
                f.truncate(0)
            with log.open("ab") as f:
                f.write(line(9))
            assert await drain(second) == 2  # 8 from the copy, 9 from the cut file
            second.close()

            # 4. a crash after ingest took 8 and 9 but before the state was saved: the
            #    restart sends them again, and ingest calls them duplicates
            state.write_bytes(before_crash.as_json())
            third = Tailer(log, state, sender)
            assert await drain(third) == 2

            # 5. a rename while it runs: 10 is read from the old file, 11 from the new one
            with log.open("ab") as f:
                f.write(line(10))
            log.rename(tmp_path / "queue_log.3")
            log.write_bytes(line(11))
            assert await drain(third) == 2
            third.close()

            # a wrong token is refused and retried, never skipped
            wrong = IngestSender(url, "wrong")
            refused = Tailer(log, tmp_path / "other.json", wrong)
            try:
                with pytest.raises(Retry, match="^ingest answered 401"):
                    await asyncio.to_thread(refused.step)
            finally:
                refused.close()
                wrong.close()
            assert load_position(tmp_path / "other.json") is None
        finally:
            sender.close()

    records = await read_topic(stack.bootstrap, prefix + "events", 11)
    calls = [str(v["call_id"]) for _, v in records]
    assert calls == [f"call{n}" for n in range(1, 12)]  # each line once, in order
    assert orjson.loads(state.read_bytes())["offset"] == len(line(11))


async def test_tailer_waits_out_a_rate_limit(
    stack: LocalStack, prefix: str, tmp_path: Path
) -> None:
    """Ten events per five seconds for this token: the first ten lines go, the next two
    are refused with 429 and its Retry-After, then sent once the window allows."""
    settings = IngestSettings(
        kafka_bootstrap=stack.bootstrap, redis_url=stack.redis_url, topic_prefix=prefix,
        ingest_tokens="pbx:s3cret", ingest_produce_timeout_s=3.0, ingest_max_events=10,
        ingest_rate_per_s=2, ingest_rate_burst=5, ingest_max_in_flight=10,
    )  # fmt: skip
    log, state = tmp_path / "queue_log", tmp_path / "tail.json"
    log.write_bytes(lines(*range(1, 13)))
    async with serve(create_app(settings)) as url:
        sender = IngestSender(url, "s3cret")
        tailer = Tailer(log, state, sender, max_lines=10)
        try:
            assert await asyncio.to_thread(tailer.step) == 10
            with pytest.raises(Retry, match="^ingest answered 429") as refused:
                await asyncio.to_thread(tailer.step)
            assert refused.value.after_s >= 1
            size = log.stat().st_size

            def done() -> bool:
                saved = load_position(state)
                return saved is not None and saved.offset == size

            await asyncio.wait_for(asyncio.to_thread(tailer.run, 0.05, done), 30)
        finally:
            tailer.close()
            sender.close()
    records = await read_topic(stack.bootstrap, prefix + "events", 12)
    assert [str(v["call_id"]) for _, v in records] == [f"call{n}" for n in range(1, 13)]
