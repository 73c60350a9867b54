"""Forgetting by time index: the table `TimeIndex.forget` leaves is the one a pass over
every entry would keep, for random tables whose entries come, go, come back and move to
earlier times, set one by one and in batches; and the engine's dedup and call tables
after every prune and cap are those of such a pass."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from shared.core.engine import Engine
from shared.core.timeindex import TimeIndex
from shared.events import parse_event
from tests.conftest import T0, iso

NOW = T0.timestamp()


@pytest.mark.parametrize("seed", range(20))
def test_forget_keeps_what_a_whole_pass_keeps(seed: int) -> None:
    rng = random.Random(seed)
    index: TimeIndex[int] = TimeIndex()
    table: dict[int, tuple[float, int]] = {}
    clock = -500.0 if seed % 2 else 1.7e9
    batch: list[int] = []
    earliest = math.inf
    for step in range(3000):
        clock += rng.uniform(0, 2.0)
        key = rng.randrange(400)
        ts = clock - rng.choice([0.0, 0.0, rng.uniform(0, 300)])  # some arrive late
        entry = table.get(key)
        if entry is None or ts < entry[0]:  # set, or moved earlier (as a call's queued)
            table[key] = (ts, step)
            batch.append(key)
            earliest = min(earliest, ts)
        if rng.random() < 0.3:  # a poll ends
            index.add(batch, earliest)
            batch, earliest = [], math.inf
        if rng.random() < 0.01:
            table.pop(key, None)  # gone some other way
        if step % 97 == 0:
            index.add(batch, earliest)
            batch, earliest = [], math.inf
            cutoff = clock - rng.choice([0.0, 120.0, 250.0, 400.0])
            want = {k: v for k, v in table.items() if v[0] > cutoff}
            index.forget(table, cutoff, lambda v: v[0])
            assert table == want, (step, cutoff)
            assert all(r.earliest > cutoff for r in index.runs)  # nothing left to read
            listed = {k for r in index.runs for k in r.keys}
            assert listed >= set(table)  # every entry still listed


def test_only_the_runs_that_reach_the_cutoff_are_read() -> None:
    index: TimeIndex[str] = TimeIndex()
    table = {"a": 59.0, "b": 60.0, "c": 119.5, "d": 120.0}
    index.add(["a", "b"], 59.0)
    index.forget(table, 0.0, float)  # the open run closes at every forgetting
    index.add(["c", "d"], 119.5)
    index.forget(table, 60.0, float)  # at or before 60: a and b
    assert table == {"c": 119.5, "d": 120.0}
    assert [(r.keys, r.earliest) for r in index.runs] == [(["c", "d"], 119.5)]
    second = index.runs[0]
    index.add(["e"], 110.0)
    table["e"] = 110.0
    index.forget(table, 100.0, float)
    assert index.runs[0] is second  # its earliest is after 100: not read
    assert [(r.keys, r.earliest) for r in index.runs] == [(["c", "d"], 119.5), (["e"], 110.0)]
    index.forget(table, 119.5, float)
    assert table == {"d": 120.0}
    assert [(r.keys, r.earliest) for r in index.runs] == [(["d"], 120.0)]


class Watched(Engine):
    """An engine that checks, at every forgetting, its dedup and call tables against a
    pass over every entry."""

    checked = 0

    def _forget(self, now: float, cutoff: float) -> None:
        seen = {k: t for k, t in self._seen.items() if t > cutoff}
        calls = {k: v for k, v in self._calls.items() if v[0] > cutoff}
        super()._forget(now, cutoff)
        assert self._seen == seen
        assert self._calls == calls
        Watched.checked += 1


def test_the_engine_forgets_what_a_whole_pass_forgets() -> None:
    rng = random.Random(5)
    engine = Watched(max_events=900)
    n = 0
    for minute in range(240):
        now = NOW - 4 * 3600 + minute * 60.0
        events: list[dict[str, Any]] = []
        for _ in range(rng.randrange(2, 12)):
            n += 1
            call: dict[str, Any] = {"call_id": f"c{n % 500}", "queue_id": f"q{n % 3}"}
            at = now - rng.choice([0.0, 0.0, 30.0, 900.0])  # some late, some re-used ids
            events.append(
                {"type": "call.queued", "event_id": f"e{n}q", "ts": iso(at - NOW), **call}
            )
            events.append({"type": "call.answered", "event_id": f"e{n}a", "agent_id": "a1",
                           "ts": iso(at + 20 - NOW), **call})  # fmt: skip
            if rng.random() < 0.2:
                events.append(events[rng.randrange(len(events))])  # a re-delivery
        engine.add_many([parse_event(e) for e in events])
        engine.compute(now)
        engine.prune(now)
    assert Watched.checked >= 8
    assert engine.capped_events > 0  # the cap bit too
