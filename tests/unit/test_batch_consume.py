"""The consumer loop's batch path: a partition's records decoded together, the good ones
handed over in batches, with the per-record guarantees (DLQ with topic, partition, offset
and reason; retries without skipping; every record handled once, in order)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.consume import Batch, ConsumerLoop, DeadLetters, Poison

TP = TopicPartition("t.events", 3)


def record(offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        topic=TP.topic, partition=TP.partition, offset=offset, timestamp=0,
        timestamp_type=0, key=None, value=value, checksum=None, serialized_key_size=0,
        serialized_value_size=len(value or b""), headers=(),
    )  # fmt: skip


@dataclass
class Producer:
    """Stands in for the DLQ's producer: keeps what was sent, in order."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # Any: JSON

    async def send_and_wait(self, topic: str, value: bytes) -> None:
        self.sent.append((topic, orjson.loads(value)))


@dataclass
class Consumer:
    """Hands out one poll, then nothing; records each commit."""

    polls: list[dict[TopicPartition, list[ConsumerRecord]]]
    commits: int = 0
    committed: asyncio.Event = field(default_factory=asyncio.Event)

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        if self.polls:
            return self.polls.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self) -> None:
        self.commits += 1
        self.committed.set()


def decode(value: bytes | None) -> int:
    if not (value or b"").isdigit():
        raise Poison(f"not a number: {value!r}")
    return int(value or b"")


def decode_many(values: list[bytes]) -> list[int | Poison]:
    out: list[int | Poison] = []
    for v in values:
        try:
            out.append(decode(v))
        except Poison as exc:
            out.append(exc)
    return out


@dataclass
class Handler:
    """Keeps what it handled, by offset; fails as told."""

    handled: list[tuple[int, int]] = field(default_factory=list)  # (offset, value)
    batches: list[list[int]] = field(default_factory=list)  # the offsets of each batch
    batch_fails_at: int | None = None  # the value on which a batch raises
    batch_error: Exception = field(default_factory=lambda: RuntimeError("engine bug"))
    one_fails: dict[int, list[Exception]] = field(default_factory=dict)  # value -> errors

    async def one(self, rec: ConsumerRecord, value: int) -> None:
        errors = self.one_fails.get(value)
        if errors:
            raise errors.pop(0)
        self.handled.append((rec.offset, value))

    async def many(self, batch: Batch[int]) -> None:
        self.batches.append([r.offset for r in batch.records])
        for rec, value in zip(batch.records, batch.values, strict=True):
            if value == self.batch_fails_at:
                raise self.batch_error
            self.handled.append((rec.offset, value))
            batch.done += 1


def loop_of(
    handler: Handler, producer: Producer, consumer: Consumer | None = None, **kw: Any
) -> ConsumerLoop[int]:  # Any: ConsumerLoop's keyword options
    return ConsumerLoop(
        consumer,  # type: ignore[arg-type]  # the two calls the loop makes
        decode,
        handler.one,
        DeadLetters(producer, "t.dlq"),  # type: ignore[arg-type]  # only send_and_wait
        handle_many=handler.many,
        retry_s=0.001,
        **kw,
    )


@pytest.mark.parametrize("many", [decode_many, None])
async def test_a_poison_record_in_the_middle_of_a_batch(many: Any) -> None:
    handler, producer = Handler(), Producer()
    values = [b"10", b"11", b"12", b"oops", b"14", b"15"]
    records = [record(100 + i, v) for i, v in enumerate(values)]
    await loop_of(handler, producer, decode_many=many).many(records)
    # the good records around it are handled, in order, in two batches
    assert handler.handled == [(100, 10), (101, 11), (102, 12), (104, 14), (105, 15)]
    assert handler.batches == [[100, 101, 102], [104, 105]]
    # the bad one is in the DLQ with its topic, partition, offset and reason
    assert producer.sent == [
        (
            "t.dlq",
            {
                "topic": "t.events",
                "partition": 3,
                "offset": 103,
                "reason": "not a number: b'oops'",
                "value_b64": "b29wcw==",
            },
        )
    ]


async def test_bad_records_at_both_ends_and_side_by_side() -> None:
    handler, producer = Handler(), Producer()
    values = [b"x", b"1", b"y", b"z", b"4", None]
    await loop_of(handler, producer, decode_many=decode_many).many(
        [record(i, v) for i, v in enumerate(values)]
    )
    assert handler.handled == [(1, 1), (4, 4)]
    assert handler.batches == [[1], [4]]
    assert [body["offset"] for _, body in producer.sent] == [0, 2, 3, 5]
    assert producer.sent[-1][1]["reason"] == "not a number: b''"


async def test_a_batch_that_fails_goes_on_one_by_one_from_where_it_stopped() -> None:
    # the batch stops at 12 (a bug); 12 then fails on its own too and is dead-lettered;
    # 13 fails twice for a passing reason and is retried, never skipped
    handler = Handler(
        batch_fails_at=12,
        one_fails={
            12: [RuntimeError("engine bug")],
            13: [RedisConnectionError("away"), RedisConnectionError("away")],
        },
    )
    producer = Producer()
    records = [record(i, str(v).encode()) for i, v in enumerate([10, 11, 12, 13, 14])]
    await loop_of(handler, producer, decode_many=decode_many).many(records)
    assert handler.handled == [(0, 10), (1, 11), (3, 13), (4, 14)]  # each once, in order
    assert [(b["offset"], b["reason"]) for _, b in producer.sent] == [
        (2, "handler: RuntimeError: engine bug")
    ]


async def test_a_batch_failing_for_a_passing_reason_loses_nothing() -> None:
    handler = Handler(batch_fails_at=11, batch_error=RedisConnectionError("away"))
    producer = Producer()
    records = [record(i, str(v).encode()) for i, v in enumerate([10, 11, 12])]
    await loop_of(handler, producer, decode_many=decode_many).many(records)
    assert handler.handled == [(0, 10), (1, 11), (2, 12)]
    assert producer.sent == []


async def test_a_decoder_that_loses_records_is_an_error() -> None:
    loop = loop_of(Handler(), Producer(), decode_many=lambda values: decode_many(values)[1:])
    with pytest.raises(RuntimeError, match="decoded 1 of 2 records"):
        await loop.many([record(0, b"1"), record(1, b"2")])


async def test_the_loop_cuts_a_poll_into_batches_and_commits_after_handling() -> None:
    handler, producer = Handler(), Producer()
    other = TopicPartition("t.events", 4)
    poll = {
        TP: [record(i, str(i).encode()) for i in range(5)],
        other: [record(7, b"7"), record(8, b"bad")],
    }
    consumer = Consumer([poll])
    loop = loop_of(handler, producer, consumer, decode_many=decode_many, commit=True, batch_size=2)
    task = asyncio.create_task(loop.run())
    await asyncio.wait_for(consumer.committed.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handler.batches == [[0, 1], [2, 3], [4], [7]]
    assert [offset for offset, _ in handler.handled] == [0, 1, 2, 3, 4, 7]
    assert [b["offset"] for _, b in producer.sent] == [8]
    assert consumer.commits == 1
