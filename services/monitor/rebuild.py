"""Rebuild closed intervals from Kafka (contract 4: "rebuilt from Kafka if lost").

`python -m services.monitor.rebuild --from TS --to TS` reads the events topic from an
hour before `--from` (so that waits of calls queued earlier are known) and the agents
topic from its beginning, feeds them in time order to the monitor's own engine, ticking
every `--tick-s` seconds of event time (the staffed average is weighted by those ticks),
and writes every interval starting in [from, to) to Redis, replacing what is stored.
The broker's retention bounds what can be rebuilt. Settings: the monitor's
(`FLOORWATCH_KAFKA_BOOTSTRAP`, `FLOORWATCH_REDIS_URL`, `FLOORWATCH_TOPIC_PREFIX`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.monitor.intervals import store_intervals
from services.monitor.settings import MonitorSettings
from shared.core.intervals import INTERVAL_S, KEEP_S, Intervals
from shared.core.monitor import Monitor
from shared.events import AgentEvent, CallEvent, InvalidEvent, decode_event
from shared.forecast import Forecast
from shared.kafka import new_consumer
from shared.messages.intervals import Interval
from shared.queue_settings import QueueSettings
from shared.store import JsonHash, Keys, new_redis
from shared.timefmt import iso_ms, parse_ts

LEAD_S = 3600.0  # events read before `--from`: calls queued earlier, answered in range
Event = CallEvent | AgentEvent


def recompute(
    events: Sequence[Event],
    start: float,
    end: float,
    tick_s: float = 60.0,
    settings: dict[str, QueueSettings] | None = None,
    forecasts: dict[str, Forecast] | None = None,
) -> list[Interval]:
    """Every interval starting in [start, end), from these events, ticking every `tick_s`."""
    if INTERVAL_S % tick_s:
        raise ValueError(f"tick_s must divide {INTERVAL_S}")
    ordered = sorted(events, key=lambda e: e.epoch)
    if not ordered:
        return []
    # the events topic is read from an hour before `start`; the agents topic from its
    # beginning: what lies before that hour is not complete, and not kept
    lead = start - LEAD_S
    core = Intervals(complete_from=lead, max_gap_s=1.5 * tick_s)
    monitor = Monitor(settings=settings or {}, forecasts=forecasts or {}, intervals=core)
    now = math.floor(lead / tick_s) * tick_s
    last = math.ceil(end / INTERVAL_S) * INTERVAL_S
    out: list[Interval] = []
    i = 0
    while now <= last:
        while i < len(ordered) and ordered[i].epoch <= now:
            monitor.add(ordered[i])
            i += 1
        out.extend(r for r in monitor.tick(now).intervals if start <= r.start < end)
        now += tick_s
    return out


async def read_events(settings: MonitorSettings, since: float) -> list[Event]:
    """The events topic from `since` (by record time) and the whole agents topic, up to
    their ends when the read began; a record that does not decode is skipped."""
    consumer = new_consumer(settings, group_id=None)
    await consumer.start()
    try:
        events_topic, agents_topic = settings.topic("events"), settings.topic("agents")
        tps = [
            TopicPartition(topic, p)
            for topic in (events_topic, agents_topic)
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*[tp for tp in tps if tp.topic == agents_topic])
        calls = [tp for tp in tps if tp.topic == events_topic]
        found = await consumer.offsets_for_times(dict.fromkeys(calls, int(since * 1000)))
        for tp in calls:
            offset = found.get(tp)
            if offset is None:
                consumer.seek(tp, ends[tp])
            else:
                consumer.seek(tp, offset.offset)
        return await _read_to(consumer, ends)
    finally:
        await consumer.stop()


async def _read_to(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> list[Event]:
    out: list[Event] = []
    behind = {tp for tp, end in ends.items() if end > await consumer.position(tp)}
    while behind:
        batch = await consumer.getmany(*behind, timeout_ms=500, max_records=5000)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    try:
                        out.append(decode_event(record.value or b""))
                    except InvalidEvent:
                        continue  # the monitor sent it to the DLQ when it met it
            if await consumer.position(tp) >= ends[tp]:
                behind.discard(tp)
    return out


async def rebuild(
    settings: MonitorSettings, start: float, end: float, tick_s: float = 60.0
) -> list[Interval]:
    """Recompute the intervals starting in [start, end) from Kafka and store them."""
    if end - start > KEEP_S:
        raise ValueError("at most 35 days at a time (intervals are kept 35 days)")
    end = min(end, math.floor(time.time() / INTERVAL_S) * INTERVAL_S)  # closed ones only
    client = new_redis(settings)
    try:
        keys = Keys(settings.topic_prefix)
        queue_settings = await JsonHash(QueueSettings, keys.queue_settings).load(client)
        forecasts = await JsonHash(Forecast, keys.forecasts).load(client)
        events = await read_events(settings, start - LEAD_S)
        records = recompute(events, start, end, tick_s, queue_settings, forecasts)
        await store_intervals(client, keys, records, time.time())
        return records
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.monitor.rebuild", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--from", dest="start", required=True, help="RFC 3339, with offset")
    parser.add_argument("--to", dest="end", required=True, help="RFC 3339, with offset")
    parser.add_argument("--tick-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        start, end = parse_ts(args.start), parse_ts(args.end)
        if end <= start:
            raise ValueError("--to must be after --from")
        records = asyncio.run(rebuild(MonitorSettings(), start, end, args.tick_s))
    except ValueError as exc:
        sys.stderr.write(f"rebuild: {exc}\n")
        return 2
    queues = sorted({r.queue_id for r in records})
    summary = {"from": iso_ms(start), "to": iso_ms(end), "intervals": len(records)}
    sys.stdout.write(orjson.dumps({**summary, "queues": queues}).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
