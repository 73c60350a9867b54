"""The notifier's composition root: settings, clients, the consumer loops, the outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from services.notify import inbound
from services.notify.outbox import Outbox, OutboxMetrics
from services.notify.service import NotifySettings, NotifyShell, decode_fact, decode_snapshot
from shared.consume import ConsumerLoop, DeadLetters
from shared.http import stack_ready
from shared.kafka import ensure_topics, new_consumer, new_producer
from shared.leader import Leader, Lease, instance_id, while_leading
from shared.notify_config import webhook_key
from shared.service import Running, build_app
from shared.store import new_redis
from shared.tasks import TaskGroup


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    """Build the notifier app; its lifespan owns the consumers, the ticks and the outbox."""
    settings = settings or NotifySettings()
    if settings.notify_inbox_secret:
        webhook_key(settings.notify_inbox_secret)  # refused at start, not at the first push
    registry = CollectorRegistry()
    metrics = OutboxMetrics(registry)
    dead = Counter("floorwatch_notify_dead_letters", "records sent to the DLQ", registry=registry)

    async def start(app: FastAPI, tasks: TaskGroup) -> Running:
        client = new_redis(settings)
        await ensure_topics(settings)
        producer = new_producer(settings)
        await producer.start()
        shell = NotifyShell(settings, client, producer)
        shell.outbox = Outbox(
            client, shell.keys, shell.build, metrics,
            timeout_s=settings.notify_timeout_s, scale=settings.notify_retry_scale,
        )  # fmt: skip
        app.state.shell = shell
        dlq = DeadLetters(producer, settings.topic("dlq"), dead)
        # one notifier acts (architecture 3): the lease holder consumes, ticks and delivers;
        # the others wait, and the next takes over from what is stored in Redis and Kafka
        leader = Leader(
            Lease(client, settings.topic_prefix, "notify", instance_id(), settings.lease_ttl_ms)
        )
        app.state.leader = leader

        async def act() -> Callable[[], Awaitable[None]]:
            await shell.start()
            # alerts and actions in one consumer, partitions assigned by range: both topics
            # are keyed by queue, so one notifier owns a queue's alerts and actions
            facts = new_consumer(
                settings, settings.topic("alerts"), settings.topic("actions"),
                group_id=settings.notify_group_id,
                partition_assignment_strategy=(RangePartitionAssignor,),
            )  # fmt: skip
            snapshots = new_consumer(
                settings, settings.topic("metrics"), group_id=None, auto_offset_reset="latest"
            )
            consumers = (facts, snapshots)
            for consumer in consumers:
                await consumer.start()
            loops: dict[str, ConsumerLoop[Any]] = {  # Any: each loop decodes its own type
                "consume-alerts-actions": ConsumerLoop(
                    facts, decode_fact, shell.on_fact, dlq, commit=True
                ),
                "consume-metrics": ConsumerLoop(snapshots, decode_snapshot, shell.on_snapshot, dlq),
            }
            for name, loop in loops.items():
                tasks.start(name, loop.run())
            tasks.start("tick", shell.tick_forever())
            tasks.start("outbox", shell.outbox.run())

            async def stop_acting() -> None:
                for name in (*loops, "tick", "outbox"):
                    await tasks.cancel(name)
                for consumer in reversed(consumers):
                    await consumer.stop()
                await shell.outbox.stop()

            return stop_acting

        tasks.start("lease", leader.run())
        tasks.start("lead", while_leading(leader, act))

        async def stop() -> None:
            await tasks.cancel("lead")  # stops acting first
            await leader.resign()
            await producer.stop()
            await client.aclose()

        async def ready() -> dict[str, bool]:
            return await stack_ready(settings, client)

        return Running(stop, ready)

    app = build_app("floorwatch notifier", registry, start)
    app.include_router(inbound.router)
    return app
