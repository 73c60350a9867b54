"""The notifier's composition root: settings, clients, the consumer loops, the outbox."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from services.notify import inbound
from services.notify.outbox import Outbox, OutboxMetrics
from services.notify.service import NotifySettings, NotifyShell, decode_action, decode_snapshot
from shared.consume import ConsumerLoop, DeadLetters, model_decoder
from shared.http import stack_ready
from shared.kafka import ensure_topics, new_consumer, new_producer
from shared.messages.alerts import AlertChange
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
        await shell.start()
        dlq = DeadLetters(producer, settings.topic("dlq"), dead)
        group = settings.notify_group_id
        alerts = new_consumer(settings, settings.topic("alerts"), group_id=group)
        actions = new_consumer(settings, settings.topic("actions"), group_id=f"{group}.actions")
        snapshots = new_consumer(
            settings, settings.topic("metrics"), group_id=None, auto_offset_reset="latest"
        )
        consumers = (alerts, actions, snapshots)
        for consumer in consumers:
            await consumer.start()
        loops: dict[str, ConsumerLoop[Any]] = {  # Any: each loop decodes its own type
            "consume-alerts": ConsumerLoop(
                alerts, model_decoder(AlertChange), shell.on_alert, dlq, commit=True
            ),
            "consume-actions": ConsumerLoop(
                actions, decode_action, shell.on_action, dlq, commit=True
            ),
            "consume-metrics": ConsumerLoop(snapshots, decode_snapshot, shell.on_snapshot, dlq),
        }
        for name, loop in loops.items():
            tasks.start(name, loop.run())
        tasks.start("tick", shell.tick_forever())
        tasks.start("outbox", shell.outbox.run())

        async def stop() -> None:
            for consumer in reversed(consumers):
                await consumer.stop()
            await shell.outbox.stop()
            await producer.stop()
            await client.aclose()

        async def ready() -> dict[str, bool]:
            return await stack_ready(settings, client)

        return Running(stop, ready)

    app = build_app("floorwatch notifier", registry, start)
    app.include_router(inbound.router)
    return app
