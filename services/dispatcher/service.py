"""The dispatcher's I/O shell: floor state in, actions and commands out.

It follows `floorwatch.events` and `floorwatch.agents` with the monitor's own engine
(for the live arrival rate, AHT, patience and callbacks pending the planner sizes with),
reads each queue's alert state and settings from Redis as the monitor and API write
them, keeps its actions in Redis, and takes leads' requests (approve, reject, undo,
propose) from `floorwatch.actions`. Every consumer is the one consumer loop; commands go
to `floorwatch.commands` and, through the outbox, to the HTTPS endpoint.

Several instances run; every one follows the floor (a warm standby), one leads
(architecture 3, `shared/leader.py`). Only the leader plans, takes requests and sends:
it rebuilds its action book from Redis when it takes over, and stores each action under
its fencing token before announcing it, so a successor neither repeats a command nor
loses one that was stored, and a deposed leader cannot overwrite its successor's book.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from services.dispatcher.outbox import Outbox
from services.dispatcher.settings import DispatcherSettings
from shared.consume import (
    Batch,
    ConsumerLoop,
    DeadLetters,
    Poison,
    decode_event_record,
    decode_event_records,
)
from shared.core.engine import Engine
from shared.core.planner import Planner, Step
from shared.core.sizing import Floor, TimeShares
from shared.core.tiers import QueueAlertState
from shared.events import AnyEvent, CallEnded
from shared.fastcalls import FastEnded
from shared.kafka import dumps, new_consumer, new_producer
from shared.leader import Fence, StaleLeader
from shared.messages.actions import ACTION_MESSAGE, Action, ActionRequest
from shared.messages.commands import encode_command
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings
from shared.store import JsonHash, Keys, text
from shared.tasks import stop_if_cancelled
from shared.timefmt import whole_ms

log = logging.getLogger(__name__)

STAFFING_TTL_S = 30


def decode_action_message(value: bytes | None) -> Action | ActionRequest:
    try:
        return ACTION_MESSAGE.validate_json(value or b"")
    except ValueError as exc:
        raise Poison(f"not an action or a request: {exc}"[:2000]) from None


@dataclass
class DispatcherShell:
    settings: DispatcherSettings
    redis: aioredis.Redis
    registry: CollectorRegistry
    planner: Planner = field(default_factory=Planner)
    engine: Engine = field(init=False)
    keys: Keys = field(init=False)
    outbox: Outbox = field(init=False)
    producer: AIOKafkaProducer | None = None
    floor_consumer: AIOKafkaConsumer | None = None
    requests_consumer: AIOKafkaConsumer | None = None
    queue_settings: dict[str, QueueSettings] = field(default_factory=dict)
    shares: TimeShares = field(default_factory=TimeShares)
    ticks: int = 0
    caught_up: bool = False
    fence: Fence | None = None  # writes of the actions under the leader's token
    token: int | None = None  # the fencing token while this instance leads
    taking_requests: asyncio.Event = field(default_factory=asyncio.Event)  # led and positioned
    planned: asyncio.Event = field(default_factory=asyncio.Event)  # a tick since taking over
    _ends: dict[TopicPartition, int] = field(default_factory=dict)
    _staffing_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.engine = Engine(self.settings_for)
        self.engine.horizon = time.time()
        self.keys = Keys(self.settings.topic_prefix)
        self.settings_hash = JsonHash(QueueSettings, self.keys.queue_settings)
        self.commands_sent = Counter(
            "floorwatch_dispatcher_commands", "commands sent by type", ["type"],
            registry=self.registry,
        )  # fmt: skip
        self.dead_letters = Counter(
            "floorwatch_dispatcher_dead_letters", "records sent to the DLQ", registry=self.registry
        )
        self.outbox = Outbox(
            self.settings.dispatch_endpoint, self.settings.dispatch_secret, self.registry,
            timeout_s=self.settings.dispatch_endpoint_timeout_s,
            attempts=self.settings.dispatch_endpoint_retries + 1,
        )  # fmt: skip

    def settings_for(self, queue_id: str) -> QueueSettings:
        return self.queue_settings.get(queue_id, DEFAULT_QUEUE_SETTINGS)

    def mode_for(self, queue_id: str) -> str:
        """The queue's stored mode, else the stack's default (`--dispatch`)."""
        if queue_id in self.queue_settings:
            return self.queue_settings[queue_id].mode
        return self.settings.dispatch_mode

    # ---- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Follow the floor from the beginning of the topics (every instance does)."""
        self.producer = new_producer(self.settings)
        await self.producer.start()
        self.floor_consumer = new_consumer(self.settings, group_id=None, max_poll_records=5000)
        await self.floor_consumer.start()
        await self._assign(self.floor_consumer, ("events", "agents"), beginning=True)
        self._ends = await self.floor_consumer.end_offsets(list(self.floor_consumer.assignment()))

    async def lead(self, token: int) -> None:
        """Take over: the action book as stored (by whoever led before), leads' requests
        from where the last leader stopped reading them."""
        stored = await self.redis.hgetall(self.keys.actions)
        restored = []
        for raw in stored.values():
            try:
                restored.append(Action.model_validate_json(raw))
            except ValueError:
                log.warning("a stored action of another version is ignored")
        async with self._lock:
            self.planner = Planner()
            self.planner.restore(restored)
            self.token = token
        self.requests_consumer = new_consumer(
            self.settings, group_id=None, auto_offset_reset="latest"
        )
        await self.requests_consumer.start()
        await self._resume_requests(self.requests_consumer, token)
        self.taking_requests.set()

    @property
    def _requests_read(self) -> str:
        """Where the leaders have read leads' requests up to: partition -> next offset
        (under the lease's hash tag, so that a fenced write checks and writes in one slot)."""
        assert self.fence is not None  # noqa: S101  # set by the composition root
        return f"{self.fence.keys.lease}:requests"

    async def _resume_requests(self, consumer: AIOKafkaConsumer, token: int) -> None:
        """Read requests from where the last leader stopped: a request sent while no one
        led, or that a killed leader never got to, is taken now, and none twice. Without
        a stored position (the first leader ever) from the log's end, stored at once."""
        assert self.fence is not None  # noqa: S101  # set by the composition root
        await self._assign(consumer, ("actions",), beginning=False)
        raw = await self.redis.hgetall(self._requests_read)
        stored = {text(k): int(v) for k, v in raw.items()}
        for tp in consumer.assignment():
            if str(tp.partition) in stored:
                consumer.seek(tp, stored[str(tp.partition)])
            else:
                position = await consumer.position(tp)
                await self.fence.hset(token, self._requests_read, str(tp.partition), str(position))

    async def follow(self) -> None:
        """Stop acting (the lease lost or given up): the floor is still followed."""
        self.token = None
        self.taking_requests.clear()
        self.planned.clear()
        consumer, self.requests_consumer = self.requests_consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _assign(
        self, consumer: AIOKafkaConsumer, names: tuple[str, ...], beginning: bool
    ) -> None:
        parts = [
            TopicPartition(self.settings.topic(n), p)
            for n in names
            for p in sorted(consumer.partitions_for_topic(self.settings.topic(n)) or [])
        ]
        consumer.assign(parts)
        if beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            await consumer.seek_to_end(*parts)

    async def stop(self) -> None:
        for client in (self.requests_consumer, self.floor_consumer, self.producer):
            if client is not None:
                await client.stop()

    def _dlq(self) -> DeadLetters:
        assert self.producer is not None  # noqa: S101  # started first
        return DeadLetters(self.producer, self.settings.topic("dlq"), self.dead_letters)

    # ---- consumers -----------------------------------------------------------

    def floor_loop(self) -> ConsumerLoop[AnyEvent]:
        """The engine's feed: every call and agent event, a poll at a time, bad ones to
        the DLQ."""
        assert self.floor_consumer is not None  # noqa: S101  # started first
        return ConsumerLoop(
            self.floor_consumer, decode_event_record, self.on_floor_event, self._dlq(),
            after_poll=self._check_caught_up, decode_many=decode_event_records,
            handle_many=self.on_floor_events,
        )  # fmt: skip

    async def on_floor_event(self, record: ConsumerRecord, event: AnyEvent) -> None:
        await self.on_floor_events(Batch([record], [event]))

    async def on_floor_events(self, batch: Batch[AnyEvent]) -> None:
        """Count a poll's events; each call.ended counted goes to the time shares, at the
        time the engine converted. Should counting fail part way, what was counted before
        keeps its shares and the loop hands the rest to `on_floor_event`, one by one."""
        times: list[float] = []
        try:
            self.engine.add_many(batch.values, times)
        finally:
            shares = self.shares
            for event, ts in zip(batch.values, times, strict=False):  # shorter on a failure
                if ts == ts and isinstance(event, CallEnded | FastEnded):  # counted: not NaN
                    handle = event.talk_s + event.hold_s + event.wrap_s
                    shares.add(ts, event.agent_id, event.queue_id, handle)
            batch.done = len(times)

    async def _check_caught_up(self) -> None:
        if self.caught_up or self.floor_consumer is None:
            return
        positions = {tp: await self.floor_consumer.position(tp) for tp in self._ends}
        self.caught_up = all(positions[tp] >= end for tp, end in self._ends.items())

    def requests_loop(self) -> ConsumerLoop[Action | ActionRequest]:
        """Leads' approvals, rejections, undos and hand-made proposals."""
        assert self.requests_consumer is not None  # noqa: S101  # started first
        return ConsumerLoop(
            self.requests_consumer, decode_action_message, self.on_request, self._dlq(),
            check_log_s=0,  # a request is acted on once: never read again
        )  # fmt: skip

    async def on_request(self, record: ConsumerRecord, message: Action | ActionRequest) -> None:
        if isinstance(message, Action):
            return  # the dispatcher's own announcements
        await self.planned.wait()  # a request is answered on the floor as a tick saw it
        now = time.time()
        async with self._lock:  # never between a tick's planning and its publishing
            step = self._answer(message, now)
            if step is not None:
                await self.publish([step])
            if self.fence is not None and self.token is not None:
                await self.fence.hset(
                    self.token, self._requests_read, str(record.partition), str(record.offset + 1)
                )

    def _answer(self, request: ActionRequest, now: float) -> Step | None:
        match request.verb:
            case "approve" | "reject" if request.action_id is not None:
                verdict = "approved" if request.verb == "approve" else "rejected"
                return self.planner.decide(request.action_id, verdict, request.by, now)
            case "undo" if request.action_id is not None:
                return self.planner.undo(request.action_id, request.by, now)
            case "propose" if request.queue_id and request.lever and request.count:
                return self.planner.hand(request.lever, request.queue_id, request.count, request.by)
            case _:
                raise Poison(f"incomplete {request.verb} request")

    # ---- the tick ------------------------------------------------------------

    async def tick(self, now: float) -> list[Step]:
        """Plan on the floor as it is at `now`; nothing until the history is read back,
        nothing unless this instance leads."""
        if not self.caught_up or self.token is None:
            return []
        self.queue_settings = await self.settings_hash.load(self.redis)
        states = await self._alert_states()
        snaps = await self.redis.hgetall(self.keys.snapshots)
        ratios = {text(k): orjson.loads(v)["surge"]["ratio"] for k, v in snaps.items()}
        async with self._lock:
            stats = self.engine.compute(now)
            floor = Floor(now, stats, states, self.engine.agents, self.shares.shares(now), ratios)
            steps = self.planner.step(floor, self.mode_for)
            staffing = self.planner.staffing(floor) if self._staffing_due(now) else None
            self.engine.prune(now)
            await self.publish(steps)
            self.planned.set()
        if staffing:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(
                self.keys.staffing,
                mapping={q: orjson.dumps(s.as_json()) for q, s in staffing.items()},
            )
            # gone when no dispatcher leads any more: the board then shows none, not old ones
            pipe.expire(self.keys.staffing, STAFFING_TTL_S)
            await pipe.execute()
        self.ticks += 1
        return steps

    def _staffing_due(self, now: float) -> bool:
        """Staffing is sized with Erlang A per queue: every `staffing_every_s`, not every
        tick, on a floor of many queues."""
        if now - self._staffing_at < self.settings.staffing_every_s:
            return False
        self._staffing_at = now
        return True

    async def _alert_states(self) -> dict[str, QueueAlertState]:
        raw = await self.redis.hgetall(self.keys.alert_states)
        return {text(k): QueueAlertState.from_json(orjson.loads(v)) for k, v in raw.items()}

    async def publish(self, steps: list[Step]) -> None:
        """Store each changed action, announce it, send its commands; the outbox posts them."""
        if not steps:
            return
        assert self.producer is not None and self.fence is not None  # noqa: S101  # started first
        if self.token is None:
            raise StaleLeader("no longer leading")
        for step in steps:  # stored before sent: a successor knows what was already done
            action = step.action
            await self.fence.hset(
                self.token, self.keys.actions, action.action_id, action.model_dump_json()
            )
        target = self.settings.dispatch_target.encode()
        for step in steps:
            body = dumps(step.action.model_dump(mode="json"))
            await self.producer.send(
                self.settings.topic("actions"), body, key=step.action.queue_id.encode()
            )
            for command in step.commands:
                await self.producer.send(
                    self.settings.topic("commands"), encode_command(command), key=target
                )
                self.commands_sent.labels(command.type).inc()
                self.outbox.put(command)
        await self.producer.flush()


async def tick_forever(shell: DispatcherShell, tick_s: float) -> None:
    while True:
        began = time.monotonic()
        try:
            await shell.tick(whole_ms(time.time()))
        except StaleLeader:
            log.warning("a newer dispatcher leads; this one stops acting", exc_info=True)
        except (KafkaError, RedisError, OSError):
            stop_if_cancelled()  # a client turned our cancellation into its own error
            log.warning("dispatcher tick failed; retried at the next tick", exc_info=True)
        stop_if_cancelled()  # one a client swallowed (and the code around it caught)
        await asyncio.sleep(max(0.0, tick_s - (time.monotonic() - began)))
