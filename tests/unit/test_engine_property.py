"""The engine against a brute-force recount of contract 4 on random traces."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.engine import Engine
from shared.events import CallEvent, parse_event
from tests.conftest import T0, iso

NOW = T0.timestamp()
OUTCOMES = ["answered", "abandoned", "callback_requested", "overflowed", None]


@dataclass(frozen=True)
class Call:
    queue: str
    queued_at: float | None  # None: the call.queued never arrives
    outcome: str | None
    after: float
    give_wait: bool
    ended_talk: float | None


calls = st.builds(
    Call,
    queue=st.sampled_from(["a", "b", "c"]),
    queued_at=st.one_of(st.none(), st.floats(-4000, 0).map(lambda x: round(x, 3))),
    outcome=st.sampled_from(OUTCOMES),
    after=st.floats(0, 120).map(lambda x: round(x, 3)),
    give_wait=st.booleans(),
    ended_talk=st.one_of(st.none(), st.floats(0, 600)),
)


def events_of(trace: list[Call]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for n, c in enumerate(trace):
        base = {"call_id": f"c{n}", "queue_id": c.queue}
        start = c.queued_at if c.queued_at is not None else -100.0 - n
        if c.queued_at is not None:
            out.append({"type": "call.queued", "ts": iso(start), **base})
        end = start + c.after
        if c.outcome is not None and end <= 0:
            extra: dict[str, object] = {"wait_s": c.after} if c.give_wait else {}
            if c.outcome == "answered":
                extra["agent_id"] = "x"
            if c.outcome == "overflowed":
                extra["to_queue_id"] = "c"
            out.append({"type": f"call.{c.outcome}", "ts": iso(end), **base, **extra})
            if c.outcome == "answered" and c.ended_talk is not None and end + 1 <= 0:
                out.append(
                    {
                        "type": "call.ended",
                        "ts": iso(end + 1),
                        "agent_id": "x",
                        "talk_s": c.ended_talk,
                        **base,
                    }
                )
    for n, e in enumerate(out):
        e["event_id"] = f"e{n}"
    return out


def brute_force(events: list[dict[str, object]], now: float) -> dict[str, dict[str, object]]:
    """Contract 4 read literally, over the deduplicated events."""
    unique = {e["event_id"]: e for e in events}.values()
    parsed = [parse_event(e) for e in unique]
    queued = {(e.queue_id, e.call_id): e.epoch for e in parsed if e.type == "call.queued"}  # type: ignore[union-attr]
    out: dict[str, dict[str, object]] = {}
    for queue in sorted({e.queue_id for e in parsed}):  # type: ignore[union-attr]
        mine: list[CallEvent] = [e for e in parsed if e.queue_id == queue]  # type: ignore[misc, union-attr]

        def wait(e: CallEvent) -> float | None:
            given_wait = getattr(e, "wait_s", None)
            if given_wait is not None:
                return float(given_wait)
            q = queued.get((e.queue_id, e.call_id))
            return None if q is None else max(0.0, e.epoch - q)

        result: dict[str, object] = {}
        terminal = {e.call_id: e.epoch for e in mine if e.type not in ("call.queued", "call.ended")}
        waiting = [
            q
            for (qq, c), q in queued.items()
            if qq == queue and q <= now and not terminal.get(c, math.inf) <= now
        ]
        over = sum(1 for q in waiting if now - q > 30)
        result["waiting"] = (len(waiting), over, (now - min(waiting)) if waiting else 0.0)
        for w in (300, 900, 3600):
            inside = [e for e in mine if now - w < e.epoch <= now]
            answered = [e for e in inside if e.type == "call.answered"]
            waits = [wait(e) for e in answered]
            known = [x for x in waits if x is not None]
            ab = [e for e in inside if e.type == "call.abandoned"]
            short = sum(1 for e in ab if (x := wait(e)) is not None and x <= 5)
            within = sum(1 for x in known if x <= 30)
            ended = [e for e in inside if e.type == "call.ended"]
            offered = len(answered) + len(ab) - short
            result[str(w)] = {
                "arrivals": sum(1 for e in inside if e.type == "call.queued"),
                "answered": len(answered),
                "answered_within_target": within,
                "short_abandoned": short,
                "abandoned": len(ab) - short,
                "callbacks": sum(1 for e in inside if e.type == "call.callback_requested"),
                "overflowed": sum(1 for e in inside if e.type == "call.overflowed"),
                "offered": offered,
                "answer_rate_live": within / (offered + over) if offered + over else None,
                "asa_s": sum(known) / len(known) if known else None,
                "aht_s": sum(e.talk_s + e.hold_s + e.wrap_s for e in ended) / len(ended)
                if ended
                else None,  # type: ignore[attr-defined]
            }
        out[queue] = result
    return out


@settings(max_examples=150, deadline=None)
@given(
    trace=st.lists(calls, min_size=1, max_size=60),
    seed=st.integers(0, 2**32),
    dup=st.floats(0, 0.5),
)
def test_engine_equals_brute_force(trace: list[Call], seed: int, dup: float) -> None:
    events = events_of(trace)
    rng = random.Random(seed)
    delivered = events + [e for e in events if rng.random() < dup]  # redeliveries
    rng.shuffle(delivered)  # any order
    engine = Engine()
    cut = len(delivered) // 2
    for e in delivered[:cut]:
        engine.add(parse_event(e))
    engine.compute(NOW - 200)  # a tick mid-stream must not change the final numbers
    for e in delivered[cut:]:
        engine.add(parse_event(e))
    got = engine.compute(NOW)
    want = brute_force(events, NOW)
    for queue, expected in want.items():
        stats = got[queue]
        assert (stats.waiting, stats.waiting_over_target) == expected["waiting"][:2]  # type: ignore[index]
        assert stats.longest_wait_s == pytest.approx(expected["waiting"][2])  # type: ignore[index]
        for w in ("300", "900", "3600"):
            m = stats.windows[int(w)].as_json()
            for name, value in expected[w].items():  # type: ignore[attr-defined]
                if value is None or isinstance(value, int):
                    assert m[name] == value, (queue, w, name)
                else:
                    assert m[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (queue, w, name)
