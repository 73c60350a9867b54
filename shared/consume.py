"""The one consumer loop every floorwatch consumer runs (contract 3, architecture 4-5).

Decode each record with its typed model; hand good records to the handler; send bad ones
to the DLQ with topic, partition, offset and reason; commit after handling; retry what
failed for a passing reason (the broker or Redis away) without skipping the record; and
never die on one record.

A loop may also take a poll's records together (`decode_many`, `handle_many`): a
partition's records decoded in one call, the good ones between two bad ones handed over
as one `Batch`. When a batch's handler fails, the records it had not finished are handled
one by one as above, so the guarantees are the same either way.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from shared.events import AgentEvent, AnyEvent, CallEvent, InvalidEvent, decode_event, decode_events
from shared.kafka import dumps
from shared.tasks import stop_if_cancelled, within

log = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# failures that pass: the record is retried, never dead-lettered
RETRIABLE = (KafkaError, RedisError, OSError, TimeoutError)


class Poison(ValueError):
    """A record that can never be handled; `reason` says why (it goes to the DLQ)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def model_decoder(model: type[M]) -> Callable[[bytes | None], M]:
    """A decoder for JSON records of a pydantic model; invalid ones are Poison."""

    def decode(value: bytes | None) -> M:
        try:
            return model.model_validate_json(value or b"")
        except ValidationError as exc:
            errors = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise Poison("; ".join(errors)[:2000]) from None

    return decode


def decode_event_record(value: bytes | None) -> CallEvent | AgentEvent:
    """A record of the events topic (`decode_event`); an invalid one is Poison."""
    try:
        return decode_event(value or b"")
    except InvalidEvent as exc:
        raise Poison("; ".join(exc.errors)) from None


def decode_event_records(values: list[bytes]) -> list[AnyEvent | Poison]:
    """A poll's records of the events topic in one call (`decode_events`); each invalid one
    a Poison saying why."""
    return [
        Poison("; ".join(e.errors)) if isinstance(e, InvalidEvent) else e
        for e in decode_events(values)
    ]


@dataclass
class DeadLetters:
    """Writes undecodable or unhandleable records to `floorwatch.dlq`, with the reason."""

    producer: AIOKafkaProducer
    topic: str
    counter: Counter | None = None

    async def send(self, record: ConsumerRecord, reason: str) -> None:
        body = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason,
            "value_b64": base64.b64encode(record.value or b"").decode(),
        }
        if self.counter is not None:
            self.counter.inc()
        log.warning(
            "record dead-lettered",
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        await self.producer.send_and_wait(self.topic, dumps(body))


@dataclass
class Batch(Generic[T]):
    """Consecutive good records of one partition and their decoded values, in order."""

    records: list[ConsumerRecord]
    values: list[T]
    # how many the handler has finished: after a failure the loop handles the rest one
    # by one (with retries and the DLQ), so a handler moves it on as it goes
    done: int = 0


def shrunk(
    ends: Mapping[TopicPartition, int], before: Mapping[TopicPartition, int]
) -> list[TopicPartition]:
    """The partitions whose log end is now lower than it was: their log was made anew."""
    return sorted(
        (tp for tp, end in ends.items() if tp in before and end < before[tp]),
        key=lambda tp: (tp.topic, tp.partition),
    )


@dataclass
class ConsumerLoop(Generic[T]):
    """Poll, decode, handle, dead-letter, commit: until cancelled."""

    consumer: AIOKafkaConsumer
    decode: Callable[[bytes | None], T]
    handle: Callable[[ConsumerRecord, T], Awaitable[None]]
    dlq: DeadLetters | None
    commit: bool = False
    # a partition's records at once: values decoded in one call (each the value or the
    # Poison `decode` would raise) and handed over in batches; `handle` stays the way
    # for what a batch's handler did not finish
    decode_many: Callable[[list[bytes]], list[T | Poison]] | None = None
    handle_many: Callable[[Batch[T]], Awaitable[None]] | None = None
    # records decoded at once: a poll's values held together outlive the young GC
    # generation and make the full collections that walk every object come more often
    batch_size: int = 500
    after_poll: Callable[[], Awaitable[None]] | None = None
    poll_ms: int = 200
    retry_s: float = 0.5
    max_retry_s: float = 10.0
    check_log_s: float = 2.0  # how often to look for a log that was recreated (0: never)
    commit_timeout_s: float = 5.0
    _ends: dict[TopicPartition, int] = field(default_factory=dict)  # at the last log check

    async def run(self) -> None:
        last_check = time.monotonic()
        while True:
            if self.check_log_s and time.monotonic() - last_check >= self.check_log_s:
                last_check = time.monotonic()
                await self.rewind_recreated()
            try:
                batches = await self.consumer.getmany(timeout_ms=self.poll_ms)
            except KafkaError:
                stop_if_cancelled()
                log.warning("poll failed; polling again", exc_info=True)
                await asyncio.sleep(self.retry_s)
                continue
            for records in batches.values():
                if self.handle_many is not None:
                    for i in range(0, len(records), self.batch_size):
                        await self.many(records[i : i + self.batch_size])
                    continue
                for record in records:
                    await self.one(record)
            if self.commit and batches:
                await self._commit()
            if self.after_poll is not None:
                await self.after_poll()

    async def rewind_recreated(self) -> None:
        """Read a partition again from its start when its log's end went backwards: the
        broker lost the log and made it anew (the local broker keeps topics in memory).
        Consumers count each record once, so reading again is harmless. A log's end is
        compared with the end seen before, not with our position: a broker may report
        as the end the first offset of the last batch, which a reader is past."""
        try:
            parts = list(self.consumer.assignment())
            if not parts:
                return
            ends = await within(self.consumer.end_offsets(parts), 5.0)
            behind = shrunk(ends, self._ends)
            self._ends = {tp: ends[tp] for tp in parts if tp in ends}
            if behind:
                log.warning("log recreated; reading it again", extra={"partitions": len(behind)})
                await self.consumer.seek_to_beginning(*behind)
        except (KafkaError, AssertionError, TimeoutError):  # AssertionError: being revoked
            log.debug("log check skipped", exc_info=True)

    async def one(self, record: ConsumerRecord) -> None:
        """Handle one record; it is dead-lettered or handled, never dropped in silence."""
        try:
            value = self.decode(record.value)
        except Poison as exc:
            await self._dead_letter(record, exc.reason)
            return
        await self._handle(record, value)

    async def many(self, records: list[ConsumerRecord]) -> None:
        """Handle a partition's records in order: the good ones between two bad ones as
        one batch, each bad one dead-lettered where it stands."""
        decoded = self._decode_all(records)
        start = 0
        for i, value in enumerate(decoded):
            if isinstance(value, Poison):
                await self._handle_batch(records[start:i], decoded[start:i])
                await self._dead_letter(records[i], value.reason)
                start = i + 1
        await self._handle_batch(records[start:], decoded[start:])

    def _decode_all(self, records: list[ConsumerRecord]) -> list[T | Poison]:
        if self.decode_many is not None:
            decoded = self.decode_many([r.value or b"" for r in records])
            if len(decoded) != len(records):  # a decoder that loses records is a bug
                raise RuntimeError(f"decoded {len(decoded)} of {len(records)} records")
            return decoded
        out: list[T | Poison] = []
        for record in records:
            try:
                out.append(self.decode(record.value))
            except Poison as exc:
                out.append(exc)
        return out

    async def _handle_batch(self, records: list[ConsumerRecord], values: list[T | Poison]) -> None:
        if not records:
            return
        assert self.handle_many is not None  # noqa: S101  # only called with a batch handler
        good = cast(list[T], values)  # the caller cut out every Poison
        batch = Batch(records, good)
        try:
            await self.handle_many(batch)
            return
        except Exception:  # noqa: BLE001  # what it did not finish goes one by one
            stop_if_cancelled()
            log.warning("batch handler failed; handling its records one by one", exc_info=True)
        for record, value in zip(records[batch.done :], good[batch.done :], strict=True):
            await self._handle(record, value)

    async def _handle(self, record: ConsumerRecord, value: T) -> None:
        """Handle a decoded record: retried while it fails for a passing reason, else
        handled or dead-lettered."""
        delay = self.retry_s
        while True:
            try:
                await self.handle(record, value)
                return
            except RETRIABLE:
                stop_if_cancelled()
                log.warning("handling failed for a passing reason; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_s)
            except Poison as exc:
                await self._dead_letter(record, exc.reason)
                return
            except Exception as exc:  # noqa: BLE001  # one record never stops the loop
                log.exception("handler failed on a record")
                await self._dead_letter(record, f"handler: {type(exc).__name__}: {exc}"[:2000])
                return

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        if self.dlq is None:
            log.warning("undecodable record skipped", extra={"offset": record.offset})
            return
        delay = self.retry_s
        while True:
            try:
                await self.dlq.send(record, reason)
                return
            except KafkaError:
                stop_if_cancelled()
                log.warning("DLQ write failed; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry_s)

    async def _commit(self) -> None:
        try:  # bounded: a broker that lost the topic would have it retried forever
            await within(self.consumer.commit(), self.commit_timeout_s)
        except (KafkaError, TimeoutError):  # a rebalance or a lost topic: read again later
            log.warning("commit failed; records may be read again", exc_info=True)
