"""Records to Kafka in one batch per topic and partition, every ack awaited (contract 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from weakref import WeakKeyDictionary

from aiokafka import AIOKafkaProducer

from shared.kafka import acknowledged

Record = tuple[str, bytes, bytes]  # topic, key, value

# one submitter at a time per producer, topic and partition: the producer holds one batch
# a partition and makes the others wait for it to drain, and its wait loop subtracts the
# time waited so far on every turn, so several requests queued on one partition would
# time out (a spurious 503) long before the bound; in turn, each waits one drain at most
_turns: WeakKeyDictionary[AIOKafkaProducer, dict[tuple[str, int], asyncio.Lock]] = (
    WeakKeyDictionary()
)


def by_partition(
    records: Sequence[Record], partition_of: dict[tuple[str, bytes], int]
) -> dict[tuple[str, int], list[tuple[bytes, bytes]]]:
    """The (key, value) pairs of each (topic, partition), in the order sent; `partition_of`
    maps every (topic, key) to its partition."""
    groups: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    for topic, key, value in records:
        partition = partition_of[(topic, key)]
        groups.setdefault((topic, partition), []).append((key, value))
    return groups


async def send_batched(
    producer: AIOKafkaProducer, records: Sequence[Record], timeout_s: float
) -> None:
    """Send every record, one batch per topic and partition (as many as the producer's
    batch size needs), each key to the partition `send` would pick; wait for every ack,
    or raise BrokerUnavailable."""

    async def _send() -> None:
        partition_of: dict[tuple[str, bytes], int] = {}
        for topic in {topic for topic, _, _ in records}:
            await producer.client._wait_on_metadata(topic)  # what `send` waits for first
        for topic, key, value in records:
            if (topic, key) not in partition_of:  # the default partitioner: murmur2 of the key
                partition_of[(topic, key)] = producer._partition(
                    topic, None, key, value, key, value
                )
        turns = _turns.setdefault(producer, {})
        futures = []
        for (topic, partition), pairs in by_partition(records, partition_of).items():
            batches = [producer.create_batch()]
            for key, value in pairs:
                if batches[-1].append(key=key, value=value, timestamp=None) is None:  # full
                    batches.append(producer.create_batch())
                    batches[-1].append(key=key, value=value, timestamp=None)  # empty: takes any
            async with turns.setdefault((topic, partition), asyncio.Lock()):
                for batch in batches:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    await acknowledged(_send(), timeout_s)
