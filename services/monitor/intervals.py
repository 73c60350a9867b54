"""Closed intervals in Redis (contract 4): written by the monitor and by the rebuild,
read back when a monitor takes a queue over (where it stopped, and today's so far).

Each queue has one sorted set (`Keys.intervals`): members are `Interval` JSON, the score
the interval's start. Closing an interval again (late events, a rebuild) first removes
every member with that start, so an interval is stored once. Members older than 35 days
are trimmed as new ones are written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aioredis
from pydantic import ValidationError

from shared.core.intervals import KEEP_S
from shared.messages.intervals import Interval
from shared.store import Keys, text

log = logging.getLogger(__name__)
DAY_S = 25 * 3600  # a local day is at most 25 hours long (the autumn clock change)


def latest(records: Iterable[Interval]) -> list[Interval]:
    """One record per queue, site and start: the last one closed."""
    out: dict[tuple[str, str | None, float], Interval] = {}
    for r in records:
        out[(r.queue_id, r.site, r.start)] = r
    return list(out.values())


async def store_intervals(
    client: aioredis.Redis,
    keys: Keys,
    records: Iterable[Interval],
    now: float,
    closed_through: dict[str, float] | None = None,
) -> None:
    """Write closed intervals (replacing any stored with the same start), trim what is
    older than 35 days, and move each queue's closed-through mark forward."""
    fresh = latest(records)
    if not fresh and not closed_through:
        return
    pipe = client.pipeline(transaction=True)
    touched: set[str] = set()
    for r in sorted(fresh, key=lambda r: (r.queue_id, r.site or "", r.start)):
        key = keys.intervals(r.queue_id, r.site)
        touched.add(key)
        pipe.zremrangebyscore(key, r.start, r.start)
        pipe.zadd(key, {r.model_dump_json(): r.start})
    for key in sorted(touched):
        pipe.zremrangebyscore(key, "-inf", f"({now - KEEP_S}")
    if closed_through:
        pipe.hset(
            keys.intervals_closed,
            mapping={q: repr(t) for q, t in sorted(closed_through.items())},
        )
    await pipe.execute()


async def stored_state(
    client: aioredis.Redis, keys: Keys, queue_ids: list[str], now: float
) -> dict[str, tuple[float | None, list[Interval]]]:
    """Per queue: where its closed intervals end and its records of the last local day."""
    if not queue_ids:
        return {}
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.intervals_closed, queue_ids)
    for queue_id in queue_ids:
        pipe.zrangebyscore(keys.intervals(queue_id), now - DAY_S, "+inf")
    marks, *ranges = await pipe.execute()
    out: dict[str, tuple[float | None, list[Interval]]] = {}
    for queue_id, mark, members in zip(queue_ids, marks, ranges, strict=True):
        out[queue_id] = (float(text(mark)) if mark is not None else None, decode(members))
    return out


def decode(members: Iterable[bytes | str]) -> list[Interval]:
    """Stored members as intervals; one that does not decode is logged and left out."""
    out = []
    for m in members:
        try:
            out.append(Interval.model_validate_json(m))
        except ValidationError:
            log.warning("invalid interval in redis", extra={"member": text(m)[:200]})
    return out
