"""The monitor's I/O shell: Kafka in, snapshots and alerts out to Kafka and Redis."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import RedisError

from services.monitor.intervals import store_intervals, stored_state
from services.monitor.settings import MonitorSettings
from shared.consume import (
    Batch,
    ConsumerLoop,
    DeadLetters,
    decode_event_record,
    decode_event_records,
)
from shared.core.centre import part
from shared.core.intervals import Intervals
from shared.core.monitor import Monitor, TickOutput
from shared.core.roster import Limits, Roster
from shared.core.tiers import QueueAlertState
from shared.events import AGENT_EVENTS, AnyEvent
from shared.forecast import Forecast
from shared.kafka import dumps, ensure_topics, new_consumer, new_producer
from shared.messages.alerts import AlertChange, AlertRecord, apply_change
from shared.messages.intervals import Interval
from shared.queue_settings import QueueSettings
from shared.runtime import collector_paused
from shared.store import JsonHash, Keys, atomic_update, text
from shared.tasks import TaskGroup, stop_if_cancelled, within
from shared.timefmt import iso_ms, whole_ms

log = logging.getLogger(__name__)
AGENT_LISTS_EVERY_S = 2.0  # the agents lists are written at most this often


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "floorwatch_monitor_events",
            "records consumed by outcome",
            ["outcome"],
            registry=registry,
        )
        self.lag = Gauge("floorwatch_monitor_lag", "records behind the log end", registry=registry)
        self.tick_seconds = Histogram(
            "floorwatch_monitor_tick_seconds",
            "time to compute and publish one tick",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.answer_rate = Gauge(
            "floorwatch_queue_answer_rate",
            "primary window answer_rate_live",
            ["queue_id"],
            registry=registry,
        )
        self.tier = Gauge(
            "floorwatch_queue_surge_tier", "surge tier", ["queue_id"], registry=registry
        )
        self.redis_errors = Counter(
            "floorwatch_monitor_redis_errors",
            "ticks that could not read or write Redis",
            registry=registry,
        )


def stalled(
    before: dict[TopicPartition, int] | None,
    positions: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> bool:
    """True when no position moved since the last look although records are waiting."""
    if before is None or before != positions:
        return False
    return any(ends.get(tp, 0) > position for tp, position in positions.items())


UNKNOWN_END = 2**62  # a partition's end while the assignment listener is still asking
LEAVING_S = 10.0  # a revoked partition is reported on at most this long (the session timeout)


class _Rewind(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """On assignment, rewind each partition to `now - retention`; on revocation, commit."""

    def __init__(self, shell: MonitorShell) -> None:
        self.shell = shell

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # reported on until the group answers (`on_partitions_assigned`): under Kafka's
        # eager rebalancing every member hears its share at once, and a new owner reports
        # a partition only once it has read it, so a partition kept is never dark and one
        # lost is never reported twice; a member cut off from the group stops after LEAVING_S
        self.shell.leave(revoked)
        consumer = self.shell.consumer
        if consumer is not None and revoked:
            try:  # bounded: a broker that lost the topic would have it retried forever
                await within(consumer.commit(), 5.0)
            except (KafkaError, TimeoutError):
                log.warning("commit on revocation failed", exc_info=True)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # before any await: the consumer lists these partitions already, but a queue is
        # reported only once its partition is read up to where it stood now (else its
        # numbers would lack what another instance counted)
        new = self.shell.assign(assigned)
        self.shell.catching_up.update(dict.fromkeys(new, UNKNOWN_END))
        consumer = self.shell.consumer
        self.shell.reload_states = True  # queues may have changed hands: take their tiers over
        if consumer is None or not assigned:
            return
        since_ms = int((time.time() - self.shell.monitor.engine.retention_s()) * 1000)
        offsets = await consumer.offsets_for_times(dict.fromkeys(assigned, since_ms))
        for tp in assigned:
            found = offsets.get(tp)
            if found is None:
                await consumer.seek_to_end(tp)
            else:  # the local broker answers 0: old events are then skipped by the engine
                consumer.seek(tp, found.offset)
        if new:
            ends = await consumer.end_offsets(new)
            self.shell.catching_up.update({tp: ends.get(tp, 0) for tp in new})


@dataclass
class Unstored:
    """What the ticks computed and Redis has not stored yet (empty while Redis is up)."""

    snapshots: dict[str, bytes] = field(default_factory=dict)
    states: set[str] = field(default_factory=set)
    changes: list[AlertChange] = field(default_factory=list)
    as_of: str | None = None
    centre: bytes | None = None  # this instance's part of the centre totals
    intervals: list[Interval] = field(default_factory=list)  # contract 4: closed ones
    agent_lists: dict[str, bytes] = field(default_factory=dict)  # queue -> its agents list
    agent_counts: dict[str, bytes] = field(default_factory=dict)  # queue -> staffed, overdue
    closed_through: dict[str, float] = field(default_factory=dict)
    now: float = 0.0

    def keep_intervals(self, out: TickOutput, closed_through: dict[str, float]) -> None:
        """The intervals a tick closed: kept before anything else can fail that tick."""
        self.intervals.extend(out.intervals)
        self.closed_through.update(closed_through)
        self.now = out.as_of

    def add(self, out: TickOutput, snapshots: dict[str, bytes]) -> None:
        self.snapshots.update(snapshots)
        self.states.update(c.queue_id for c in [*out.changes, *out.updates])
        # contract 5: the numbers now; only the latest `updated` of an alert is worth storing
        fresh = {c.alert_id for c in out.updates}
        self.changes = [
            c for c in self.changes if c.transition != "updated" or c.alert_id not in fresh
        ]
        self.changes.extend([*out.changes, *out.updates])
        self.as_of = str(out.queues_json()["as_of"])

    @property
    def empty(self) -> bool:
        return not (
            self.snapshots
            or self.states
            or self.changes
            or self.as_of
            or self.intervals
            or self.agent_lists
        )


@dataclass
class MonitorShell:
    """Owns the consumers, the producer, Redis and the tick loop."""

    settings: MonitorSettings
    redis: aioredis.Redis
    metrics: MonitorMetrics
    monitor: Monitor = field(init=False)
    keys: Keys = field(init=False)
    producer: AIOKafkaProducer | None = None
    consumer: AIOKafkaConsumer | None = None
    agents: AIOKafkaConsumer | None = None
    last_tick: TickOutput | None = None
    processed: int = 0
    consume_task: asyncio.Task[None] | None = None
    reload_states: bool = False
    partitioner: DefaultPartitioner = field(default_factory=DefaultPartitioner)
    tasks: TaskGroup = field(default_factory=TaskGroup)
    unstored: Unstored = field(default_factory=lambda: Unstored())
    owned: set[TopicPartition] = field(default_factory=set)  # as the listener last said
    # revoked, reported on until the group answers: partition -> since (monotonic)
    leaving: dict[TopicPartition, float] = field(default_factory=dict)
    partitions: dict[str, list[int]] = field(default_factory=dict)  # last listed, by topic
    catching_up: dict[TopicPartition, int] = field(default_factory=dict)  # partition -> end
    agents_behind: dict[TopicPartition, int] = field(default_factory=dict)  # the same, agents
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    staffing: dict[str, object] = field(default_factory=dict)  # the dispatcher's, by queue
    roster: Roster = field(init=False)
    agent_lists_at: float = float("-inf")  # when the agents lists were last looked at

    def __post_init__(self) -> None:
        self.monitor = Monitor(grace_s=self.settings.monitor_grace_s)
        self.roster = Roster(self.monitor.engine.agents)  # the board's agents lists
        self.monitor.engine.horizon = time.time()  # skip what is older than every window
        # contract 4: the log holds every event after this; each queue's intervals go on
        # from where Redis says they were closed (`seed_intervals`)
        complete_from = self.monitor.engine.horizon - self.monitor.engine.retention_s()
        self.monitor.intervals = Intervals(complete_from=complete_from, require_seed=True)
        self.keys = Keys(self.settings.topic_prefix)
        self.settings_hash = JsonHash(QueueSettings, self.keys.queue_settings)
        self.forecasts_hash = JsonHash(Forecast, self.keys.forecasts)

    async def start(self) -> None:
        await ensure_topics(self.settings)
        await self.load_config()
        await self.load_alert_states()
        self.producer = new_producer(self.settings)
        await self.producer.start()
        await self.open_consumer()
        self.agents = new_consumer(self.settings, group_id=None, max_poll_records=5000)
        await self.agents.start()
        topic = self.settings.topic("agents")
        parts = self.agents.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.agents.assign(tps)
        await self.agents.seek_to_beginning(*tps)
        # no queue is reported before every agent event so far is read: agents by state
        # would otherwise show 0 for the first ticks after a start
        ends = await self.agents.end_offsets(tps)
        self.agents_behind = {tp: end for tp, end in ends.items() if end > 0}

    async def open_consumer(self) -> None:
        """Join the monitors' group on the events topic; assignment rewinds (see _Rewind)."""
        self.consumer = new_consumer(
            self.settings,
            group_id=self.settings.monitor_group_id,
            max_poll_records=5000,
            fetch_max_wait_ms=self.settings.monitor_fetch_wait_ms,
        )
        self.consumer.subscribe([self.settings.topic("events")], listener=_Rewind(self))
        await self.consumer.start()

    def start_consuming(self) -> None:
        assert self.consumer is not None  # noqa: S101  # opened first
        self.consume_task = self.tasks.start(
            "consume-events", self.consume(self.consumer, commit=True)
        )

    async def watchdog(self, every_s: float = 10.0, patience: int = 3) -> None:
        """Recreate the events consumer when its position stops moving while lag is above
        zero for `patience` looks in a row; the engine's dedup makes the re-read harmless."""
        before: dict[TopicPartition, int] | None = None
        strikes = 0
        while True:
            stop_if_cancelled()  # one a client swallowed last round (its error is caught)
            await asyncio.sleep(every_s)
            consumer = self.consumer
            parts = list(consumer.assignment()) if consumer is not None else []
            if consumer is None or not parts:
                before, strikes = None, 0
                continue
            try:
                ends = await within(consumer.end_offsets(parts), 5.0)
            except (KafkaError, TimeoutError):
                continue
            positions = {tp: await _position(consumer, tp) for tp in parts}
            strikes = strikes + 1 if stalled(before, positions, ends) else 0
            before = positions
            if strikes >= patience:
                log.warning("events consumer stalled with lag; recreating it")
                await self.reconnect()
                before, strikes = None, 0

    async def reconnect(self) -> None:
        """Recreate the events consumer (a new group member that rewinds on assignment);
        the engine's dedup makes reading again harmless."""
        consumer = self.consumer
        await self.tasks.cancel("consume-events")
        self.leave(list(self.owned))  # the new member will most likely be given them again
        if consumer is not None:
            try:
                await within(consumer.stop(), 10.0)
            except (KafkaError, TimeoutError):
                log.warning("old events consumer did not stop cleanly", exc_info=True)
        await within(self.open_consumer(), 30.0)
        self.start_consuming()

    async def stop(self) -> None:
        await self.tasks.cancel("consume-events")
        for client in (self.agents, self.consumer, self.producer):
            if client is not None:
                await client.stop()

    async def load_config(self) -> None:
        """Per-queue settings and forecasts, as the API writes them to Redis."""
        self.monitor.settings = await self.settings_hash.load(self.redis)
        self.monitor.forecasts = await self.forecasts_hash.load(self.redis)
        raw = await self.redis.hgetall(self.keys.staffing)
        self.staffing = {text(k): orjson.loads(v) for k, v in raw.items()}

    async def load_alert_states(self) -> None:
        raw = await self.redis.hgetall(self.keys.alert_states)
        for queue_id, value in raw.items():
            self.monitor.states[text(queue_id)] = QueueAlertState.from_json(orjson.loads(value))

    def loop(self, consumer: AIOKafkaConsumer, commit: bool) -> ConsumerLoop[AnyEvent]:
        """The shared consumer loop, feeding the engine; bad records go to the DLQ."""
        assert self.producer is not None  # noqa: S101  # started before consuming
        dlq = DeadLetters(
            self.producer, self.settings.topic("dlq"), self.metrics.events.labels("dead_letter")
        )
        return ConsumerLoop(
            consumer,
            decode_event_record,
            self.handle,
            dlq,
            commit=commit,
            decode_many=decode_event_records,
            handle_many=self.handle_many,
        )

    async def consume(self, consumer: AIOKafkaConsumer, commit: bool) -> None:
        """Feed records to the engine until cancelled."""
        await self.loop(consumer, commit).run()

    async def handle(self, record: ConsumerRecord, event: AnyEvent) -> None:
        """Count one event (the loop's way for what a batch did not finish)."""
        await self.handle_many(Batch([record], [event]))

    async def handle_many(self, batch: Batch[AnyEvent]) -> None:
        """Count a poll's good events in order, with the metrics once. Should counting
        fail part way, what was counted before keeps its effects and the loop hands the
        rest to `handle`, one by one."""
        times: list[float] = []
        try:
            self.monitor.add_many(batch.values, times)
        finally:
            roster = self.roster
            counted = 0
            for event, ts in zip(batch.values, times, strict=False):  # shorter on a failure
                if ts == ts:  # counted: not NaN
                    counted += 1
                    if event.__class__ in AGENT_EVENTS:
                        roster.add(event.agent_id)
            batch.done = len(times)
            self.processed += len(times)
            if counted:
                self.metrics.events.labels("counted").inc(counted)
            if len(times) > counted:
                self.metrics.events.labels("skipped").inc(len(times) - counted)

    def leave(self, revoked: Iterable[TopicPartition]) -> None:
        """Revoked partitions stay reported on for at most LEAVING_S, or until assigned."""
        at = time.monotonic()
        for tp in revoked:
            self.leaving.setdefault(tp, at)

    def assign(self, assigned: Iterable[TopicPartition]) -> list[TopicPartition]:
        """The group's answer: what this member holds now; the partitions it did not hold
        just before (they are reported once read up to their end)."""
        assigned = set(assigned)
        now = time.monotonic()
        held = {tp for tp in self.owned if now - self.leaving.get(tp, now) <= LEAVING_S}
        self.owned = assigned
        self.leaving.clear()
        for tp in list(self.catching_up):
            if tp not in assigned:
                del self.catching_up[tp]
        return sorted(assigned - held, key=lambda tp: (tp.topic, tp.partition))

    def owner(self) -> Callable[[str], bool]:
        """Whether a queue's events land on a partition assigned to this instance."""
        topic = self.settings.topic("events")
        consumer = self.consumer
        if consumer is None:
            return lambda _q: False
        # the broker may list no partition for a moment (a restarted one, before its
        # topics are made again): the last list stands
        listed = sorted(consumer.partitions_for_topic(topic) or [])
        every = self.partitions[topic] = listed or self.partitions.get(topic, [])
        if self.agents_behind:
            return lambda _q: False
        now = time.monotonic()
        mine = {
            tp.partition
            for tp in self.owned
            if tp.topic == topic
            and tp not in self.catching_up
            and now - self.leaving.get(tp, now) <= LEAVING_S
        }
        if not every or not mine:
            return lambda _q: False
        if len(mine) == len(every):
            return lambda _q: True
        return lambda q: self.partitioner(q.encode(), every, every) in mine

    async def tick(self, now: float) -> TickOutput:
        """Compute, publish snapshots and alert changes for the queues it owns, then store
        them in Redis. Without Redis it keeps ticking, publishing and alerting on the last
        known settings; what Redis missed is written once it is back."""
        started = time.perf_counter()
        await self.refresh_from_redis()
        await self.check_caught_up()
        owns = self.owner()
        await self.seed_intervals(owns, now)
        with collector_paused():
            out = self.monitor.tick(now, owns)
        self.unstored.keep_intervals(out, self.closed_through(out))
        producer = self.producer
        assert producer is not None  # noqa: S101  # started before ticking
        metrics_topic, alerts_topic = self.settings.topic("metrics"), self.settings.topic("alerts")
        snapshots: dict[str, bytes] = {}
        for snap in out.snapshots:
            queue_id = str(snap["queue_id"])
            snap["staffing"] = self.staffing.get(queue_id)  # the dispatcher's, if it leads
            body = dumps(snap)
            snapshots[queue_id] = body
            await producer.send(metrics_topic, body, key=queue_id.encode())
            self.metrics.tier.labels(queue_id).set(float(snap["surge"]["tier"]))  # type: ignore[index]
        for queue_id, stats in out.stats.items():
            rate = stats.windows[stats.settings.primary_window_s].answer_rate_live
            self.metrics.answer_rate.labels(queue_id).set(
                rate if rate is not None else float("nan")
            )
        for change in [*out.changes, *out.updates]:
            await producer.send(
                alerts_topic, change.model_dump_json().encode(), key=change.queue_id.encode()
            )
        await producer.flush()
        self.unstored.add(out, snapshots)
        self.keep_agent_lists(out, now)
        centre = part(now, out.stats.values(), self.monitor.engine.agents.values())
        self.unstored.centre = dumps(centre)
        self.last_tick = out
        await self.store()
        self.metrics.tick_seconds.observe(time.perf_counter() - started)
        return out

    def keep_agent_lists(self, out: TickOutput, now: float) -> None:
        """The agents lists of the owned queues that changed, at most every 2 s."""
        if now - self.agent_lists_at < AGENT_LISTS_EVERY_S - 0.05:  # a tick early by a hair
            return
        self.agent_lists_at = now
        limits = self.monitor.settings_for
        for q in self.roster.changed(out.stats, now, lambda queue_id: Limits.of(limits(queue_id))):
            self.unstored.agent_lists[q.queue_id] = dumps(q.as_json())
            self.unstored.agent_counts[q.queue_id] = dumps(q.counts_json())

    def closed_through(self, out: TickOutput) -> dict[str, float]:
        """Where the intervals of the queues that closed one this tick now end."""
        core = self.monitor.intervals
        if core is None:
            return {}
        marks = {}
        for queue_id in {r.queue_id for r in out.intervals}:
            q = core.queues.get(queue_id)
            if q is not None and q.closed_through is not None:
                marks[queue_id] = q.closed_through
        return marks

    async def seed_intervals(self, owns: Callable[[str], bool], now: float) -> None:
        """contract 4: a queue this instance reports for the first time (a start, a
        rebalance) goes on from its stored intervals: where they end, and today's."""
        core = self.monitor.intervals
        if core is None:
            return
        waiting = [q for q in self.monitor.engine.queue_ids if owns(q) and not core.seeded(q)]
        if not waiting:
            return
        try:
            found = await stored_state(self.redis, self.keys, waiting, now)
        except RedisError:
            self.metrics.redis_errors.inc()
            log.warning("redis unavailable; intervals wait for their stored state")
            return
        for queue_id, (mark, today) in found.items():
            gap = core.seed(queue_id, mark, today)
            if gap is not None:
                a, b = iso_ms(gap[0]), iso_ms(gap[1])
                log.warning(
                    "intervals %s to %s of a queue are not in the log: "
                    "python -m services.monitor.rebuild --from %s --to %s",
                    a, b, a, b,
                    extra={"queue_id": queue_id},
                )  # fmt: skip

    async def check_caught_up(self) -> None:
        """Partitions newly assigned count as ours once read up to their end at assignment;
        no queue is ours before the agents topic is read up to its end at start."""
        if self.agents is not None:
            for tp, end in list(self.agents_behind.items()):
                if await _position(self.agents, tp) >= end:
                    del self.agents_behind[tp]
        consumer = self.consumer
        if consumer is None or not self.catching_up:
            return
        for tp, end in list(self.catching_up.items()):
            if tp not in self.owned:
                del self.catching_up[tp]
            elif end != UNKNOWN_END and await _position(consumer, tp) >= end:
                del self.catching_up[tp]

    async def refresh_from_redis(self) -> None:
        """Settings, forecasts and (after a rebalance) tier states; the last known ones
        stay in force while Redis is away."""
        try:
            await self.load_config()
            if self.reload_states:
                await self.load_alert_states()
                self.reload_states = False
        except RedisError:
            self.metrics.redis_errors.inc()
            log.warning("redis unavailable; ticking on the last known settings")

    async def store(self) -> None:
        """Write snapshots, tier states and alert records to Redis (what readers need now)."""
        pending = self.unstored
        if pending.empty:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            if pending.snapshots:
                pipe.hset(self.keys.snapshots, mapping=pending.snapshots)  # type: ignore[arg-type]
            for queue_id in pending.states:
                state = self.monitor.states[queue_id]
                pipe.hset(self.keys.alert_states, queue_id, dumps(state.as_json()))
            if pending.as_of is not None:
                pipe.set(self.keys.snapshots_as_of, dumps(pending.as_of))
            if pending.centre is not None:
                pipe.hset(self.keys.centre_parts, self.instance, pending.centre)
            if pending.agent_lists:
                pipe.hset(self.keys.agent_lists, mapping=pending.agent_lists)  # type: ignore[arg-type]
                pipe.hset(self.keys.agent_counts, mapping=pending.agent_counts)  # type: ignore[arg-type]
            await pipe.execute()
            await store_intervals(
                self.redis, self.keys, pending.intervals, pending.now, pending.closed_through
            )
            pending.intervals, pending.closed_through = [], {}
            while pending.changes:
                await self.record_alert(pending.changes[0])
                pending.changes.pop(0)
        except RedisError:
            self.metrics.redis_errors.inc()
            log.warning("redis unavailable; snapshots and alert records kept for later")
            return
        self.unstored = Unstored()

    async def record_alert(self, change: AlertChange) -> None:
        """Fold a transition into the alert's record in Redis, atomically: the API's
        acknowledgement of the same record is never lost."""
        await atomic_update(self.redis, self.keys.alerts, change.alert_id, fold(change))

    async def update_lag(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        parts = list(consumer.assignment())
        if not parts:
            return
        ends = await consumer.end_offsets(parts)
        lag = 0
        for tp in parts:
            position = await _position(consumer, tp)
            lag += max(0, ends[tp] - position) if position >= 0 else 0
        self.metrics.lag.set(lag)


async def tick_forever(
    shell: MonitorShell, tick_s: float, clock: Callable[[], float] = time.time
) -> None:
    """Tick every `tick_s` on the wall clock; a slow tick delays the next, never piles up."""
    while True:
        began = time.monotonic()
        try:
            # as_of names exactly this now; bounded, so a broker that lost its topics (the
            # producer then waits for them) is noticed and mended within a few ticks
            await within(shell.tick(whole_ms(clock())), max(5.0, 3 * tick_s))
        except (KafkaError, RedisError, OSError, TimeoutError):
            stop_if_cancelled()  # a client turned our cancellation into its own error
            log.warning("tick failed; retried at the next tick", exc_info=True)
            await recreate_topics(shell)
        try:
            await within(shell.update_lag(), tick_s)
        except (KafkaError, OSError, TimeoutError):
            log.debug("lag not measured this tick", exc_info=True)
        stop_if_cancelled()  # one a client swallowed (and the code around it caught)
        await asyncio.sleep(max(0.0, tick_s - (time.monotonic() - began)))


def fold(change: AlertChange) -> Callable[[bytes | None], bytes]:
    """The update of an alert record by one transition, for `atomic_update`."""

    def update(stored: bytes | None) -> bytes:
        record = AlertRecord.model_validate_json(stored) if stored else None
        return apply_change(record, change).model_dump_json().encode()

    return update


async def recreate_topics(shell: MonitorShell) -> None:
    """After a failed tick: make the topics again if the broker lost them (the local
    broker keeps them in memory), so publishing resumes within a tick of its return."""
    try:
        created = await within(ensure_topics(shell.settings), shell.settings.tick_s * 2)
    except (KafkaError, OSError, TimeoutError):
        log.debug("topics not checked: broker still away", exc_info=True)
        return
    if created:  # the broker came back without its topics: start reading them afresh
        log.warning("broker lost its topics; consumers reconnect", extra={"topics": created})
        await shell.reconnect()


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    """A partition's position, or -1 while the consumer cannot say (never blocks a tick)."""
    try:
        position: int = await within(consumer.position(tp), 0.5)
    except (KafkaError, TimeoutError):
        return -1
    return position
