"""Ingest acknowledges only records that land in a topic the broker lists (contract 2).

The local broker keeps its topics in memory. After a restart it lists none, yet it takes
records for the partitions a producer still knows and acknowledges them, and it refuses
offset commits for those partitions (the monitor then reads one poll per commit bound).
Creating the topic afterwards drops some of the records it took meanwhile. So whenever
the producer's connection to the broker is not the one the topics were last seen on,
floorwatch's topics are looked for (and made again) before anything more is sent, and
a request during which topics had to be made is answered 503, not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaError

from shared.kafka import ensure_topics, lost_topics
from shared.settings import CommonSettings
from shared.tasks import stop_if_cancelled, within

log = logging.getLogger(__name__)


def connections(producer: AIOKafkaProducer) -> tuple[AIOKafkaConnection, ...]:
    """The producer's connections to the brokers (aiokafka keeps one object per broker,
    made anew after a broken one: a new object is a new connection)."""
    return tuple(producer.client._conns.values())


@dataclass
class TopicGuard:
    """Makes floorwatch's topics again when the broker has lost them, before ingest
    sends to them; `made` counts the times it had to."""

    settings: CommonSettings
    timeout_s: float = 5.0
    made: int = 0
    seen: tuple[AIOKafkaConnection, ...] = ()  # those the topics were last seen on
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def changed(self, producer: AIOKafkaProducer, since: tuple[AIOKafkaConnection, ...]) -> bool:
        """Whether the producer's connections are not (or no longer) those of `since`."""
        now = connections(producer)
        return now != since or not all(c.connected() for c in now)

    async def ensure(self, producer: AIOKafkaProducer) -> None:
        """Look for the topics when the connection is a new one (before a send, and after
        it); a broker that cannot be asked is left to the send's own bound."""
        if not self.changed(producer, self.seen):
            return
        async with self.lock:  # one look for every request that noticed it at once
            if not self.changed(producer, self.seen):
                return
            now = connections(producer)
            try:
                await self.check()
            except (KafkaError, OSError, TimeoutError):  # the send then waits its own bound
                log.debug("topics not looked for: broker away", exc_info=True)
                return
            self.seen = now

    async def check(self) -> bool:
        """Make the topics the broker does not list; True when there were any."""
        missing = await within(lost_topics(self.settings), self.timeout_s)
        if not missing:
            return False
        created = await within(ensure_topics(self.settings), self.timeout_s)
        self.made += 1
        log.warning("the broker had lost its topics; made again", extra={"topics": created})
        return True

    async def watch(self, every_s: float) -> None:
        """Look for lost topics every `every_s` until cancelled, so that they are back
        within that time of the broker's return even while nothing is sent."""
        while True:
            stop_if_cancelled()  # one a client swallowed last round (its error is caught)
            await asyncio.sleep(every_s)
            try:
                async with self.lock:
                    await self.check()
            except (KafkaError, OSError, TimeoutError):
                log.debug("topics not looked for: broker away", exc_info=True)
