"""The engine against a brute-force recount of contract 4 on random traces."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.engine import Engine
from shared.core.figures import Breakdown, QueueStats, WindowMetrics
from shared.events import parse_event
from shared.queue_settings import QueueSettings
from tests.conftest import T0, iso

NOW = T0.timestamp()
OUTCOMES = ["answered", "abandoned", "callback_requested", "overflowed", None]
QUEUES = ["a", "b", "c"]
SITES = [None, "north", "south"]
STATES = ["available", "busy", "wrap_up", "not_ready", "offline"]


@dataclass(frozen=True)
class Call:
    queue: str
    queued_at: float | None  # None: the call.queued never arrives
    outcome: str | None
    after: float
    give_wait: bool
    ended_talk: float | None
    priority: int | None
    channel: str | None
    site: str | None
    callback: str | None  # the outcome of the callback owed, if one was requested
    callback_after: float
    callback_wait: bool


@dataclass(frozen=True)
class AgentSpec:
    state: str | None
    site: str | None
    serving: tuple[str, ...]


calls = st.builds(
    Call,
    queue=st.sampled_from(QUEUES),
    queued_at=st.one_of(
        st.none(),
        st.sampled_from([-10.0, -17.5, -25.0, -45.0]),  # still waiting: 15, 20, 30, 60 s targets
        st.floats(-4000, 0).map(lambda x: round(x, 3)),
    ),
    outcome=st.sampled_from(OUTCOMES),
    # waits on both sides of every threshold: 5 s, 15 s, 20 s, 30 s, 60 s
    after=st.one_of(st.sampled_from([3.0, 12.0, 17.5, 25.0, 45.0]), st.floats(0, 120)).map(
        lambda x: round(x, 3)
    ),
    give_wait=st.booleans(),
    ended_talk=st.one_of(st.none(), st.floats(0, 600)),
    priority=st.one_of(st.none(), st.integers(0, 3)),
    channel=st.sampled_from([None, "voice", "chat", "email", "callback"]),
    site=st.sampled_from(SITES),
    callback=st.sampled_from([None, "connected", "no_answer", "cancelled"]),
    callback_after=st.one_of(st.sampled_from([300.0, 900.0]), st.floats(-30, 2500)).map(
        lambda x: round(x, 3)
    ),
    callback_wait=st.booleans(),
)
agents = st.builds(
    AgentSpec,
    state=st.sampled_from([None, *STATES]),
    site=st.sampled_from(SITES),
    serving=st.lists(st.sampled_from(QUEUES), max_size=3, unique=True).map(tuple),
)
queue_settings = st.builds(
    QueueSettings,
    sl_flowouts=st.sampled_from(["miss", "exclude"]),
    priority_sl_threshold_s=st.sampled_from([{}, {"0": 15}, {"0": 15, "1": 20, "3": 60}]),
    callback_target_s=st.sampled_from([1800, 600]),
)


def events_of(trace: list[Call], staff: list[AgentSpec]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, c in enumerate(trace):
        base = {"call_id": f"c{n}", "queue_id": c.queue}
        start = c.queued_at if c.queued_at is not None else -100.0 - n
        if c.queued_at is not None:
            queued: dict[str, Any] = {"type": "call.queued", "ts": iso(start), **base}
            for name in ("priority", "channel", "site"):
                if getattr(c, name) is not None:
                    queued[name] = getattr(c, name)
            out.append(queued)
        end = start + c.after
        if c.outcome is None or end > 0:
            continue
        extra: dict[str, Any] = {"wait_s": c.after} if c.give_wait else {}
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
        done = end + c.callback_after
        if c.outcome == "callback_requested" and c.callback is not None and done <= 0:
            wait = {"wait_s": max(0.0, c.callback_after)} if c.callback_wait else {}
            out.append(
                {
                    "type": "call.callback_completed",
                    "ts": iso(done),
                    "outcome": c.callback,
                    **base,
                    **wait,
                }
            )
    for n, a in enumerate(staff):
        where = {"site": a.site} if a.site is not None else {}
        skills = [{"queue_id": q, "level": 5} for q in a.serving]
        out.append(
            {"type": "agent.skills", "ts": iso(-3000), "agent_id": f"a{n}", "skills": skills}
        )
        if a.state is not None:
            out.append(
                {"type": "agent.state", "ts": iso(-10), "agent_id": f"a{n}", "state": a.state}
                | where
            )
    for n, e in enumerate(out):
        e["event_id"] = f"e{n}"
    return out


def agent_counts(states: list[str]) -> dict[str, int]:
    out = {s: states.count(s) for s in ("available", "busy", "wrap_up", "not_ready")}
    return out | {"staffed": sum(1 for s in states if s != "offline")}


def brute_force(
    events: list[dict[str, Any]], now: float, conf: dict[str, QueueSettings]
) -> dict[str, dict[str, Any]]:
    """Contract 4 read literally, over the deduplicated events."""
    parsed = [parse_event(e) for e in {e["event_id"]: e for e in events}.values()]
    calls = [e for e in parsed if e.type.startswith("call.")]
    first: dict[tuple[str, str], Any] = {}
    for e in calls:
        if e.type == "call.queued":
            key = (e.queue_id, e.call_id)  # type: ignore[union-attr]
            if key not in first or e.epoch < first[key].epoch:
                first[key] = e
    requested = {
        (e.queue_id, e.call_id): e.epoch  # type: ignore[union-attr]
        for e in calls
        if e.type == "call.callback_requested"
    }
    staff = {e.agent_id: e for e in parsed if e.type == "agent.skills"}  # type: ignore[union-attr]
    state = {e.agent_id: e for e in parsed if e.type == "agent.state"}  # type: ignore[union-attr]
    queues = {e.queue_id for e in calls} | {q for a in staff.values() for q in a.serving_queues()}  # type: ignore[union-attr]

    def attrs(e: Any) -> tuple[str, str, str]:
        q = first.get((e.queue_id, e.call_id))
        if q is None:
            return "2", "voice", "unknown"
        return str(q.priority), q.channel, q.site or "unknown"

    def wait(e: Any) -> float | None:
        """contract 1; a callback's wait runs from its request (contract 4)."""
        if getattr(e, "wait_s", None) is not None:
            return float(e.wait_s)
        key = (e.queue_id, e.call_id)
        if e.type == "call.callback_completed":
            start = requested.get(key)
        else:
            start = first[key].epoch if key in first else None
        return None if start is None else max(0.0, e.epoch - start)

    def window(mine: list[Any], s: QueueSettings, over: int) -> dict[str, Any]:
        answered = [e for e in mine if e.type == "call.answered"]
        known = [(x, e) for e in answered if (x := wait(e)) is not None]
        ab = [e for e in mine if e.type == "call.abandoned"]
        short = sum(1 for e in ab if (x := wait(e)) is not None and x <= s.short_abandon_s)
        within = sum(1 for x, e in known if x <= s.threshold_for(int(attrs(e)[0])))
        ended = [e for e in mine if e.type == "call.ended"]
        callbacks = sum(1 for e in mine if e.type == "call.callback_requested")
        overflowed = sum(1 for e in mine if e.type == "call.overflowed")
        flowouts = callbacks + overflowed
        offered = len(answered) + len(ab) - short + (flowouts if s.sl_flowouts == "miss" else 0)
        done = [e for e in mine if e.type == "call.callback_completed"]
        connected = [e for e in done if e.outcome == "connected"]
        on_time = sum(
            1 for e in connected if (x := wait(e)) is not None and x <= s.callback_target_s
        )
        return {
            "arrivals": sum(1 for e in mine if e.type == "call.queued"),
            "answered": len(answered),
            "answered_within_target": within,
            "short_abandoned": short,
            "abandoned": len(ab) - short,
            "callbacks": callbacks,
            "overflowed": overflowed,
            "flowouts": flowouts,
            "offered": offered,
            "answer_rate": within / offered if offered else None,
            "answer_rate_live": within / (offered + over) if offered + over else None,
            "abandon_rate": (len(ab) - short) / offered if offered else None,
            "asa_s": sum(x for x, _ in known) / len(known) if known else None,
            "aht_s": sum(e.talk_s + e.hold_s + e.wrap_s for e in ended) / len(ended)
            if ended
            else None,
            "callbacks_completed": len(connected),
            "callback_rate": on_time / len(done) if done else None,
        }

    out: dict[str, dict[str, Any]] = {}
    for queue in sorted(queues):
        s = conf[queue]
        mine = [e for e in calls if e.queue_id == queue]  # type: ignore[union-attr]
        left: dict[str, float] = {}
        for e in mine:
            if e.type not in ("call.queued", "call.ended", "call.callback_completed"):
                left[e.call_id] = min(left.get(e.call_id, math.inf), e.epoch)  # type: ignore[union-attr]
        completed: dict[str, float] = {}
        for e in mine:
            if e.type == "call.callback_completed":
                completed[e.call_id] = min(completed.get(e.call_id, math.inf), e.epoch)  # type: ignore[union-attr]
        waiting = [
            q for (qq, c), q in first.items()
            if qq == queue and q.epoch <= now and not left.get(c, math.inf) <= now
        ]  # fmt: skip
        owed = [
            (c, t) for (qq, c), t in requested.items()
            if qq == queue and t <= now and not completed.get(c, math.inf) <= now
        ]  # fmt: skip
        owed_at = {c: first.get((queue, c)) for c, _ in owed}

        owed_calls = [(owed_at[c], t) for c, t in owed]
        total = spot(waiting, owed_calls, s, now, lambda q: True)
        result: dict[str, Any] = dict(total)
        for w in s.windows_s:
            inside = [e for e in mine if now - w < e.epoch <= now]
            result[str(w)] = window(inside, s, total["waiting_over_target"])
        primary = [e for e in mine if now - s.primary_window_s < e.epoch <= now]
        for dim, name in enumerate(("by_priority", "by_channel", "by_site")):
            keys = {attrs(e)[dim] for e in primary}
            keys |= {attrs(q)[dim] for q in waiting}
            keys |= {attrs(owed_at[c])[dim] if owed_at[c] else attrs_default(dim) for c, _ in owed}
            breakdown = {}
            for k in sorted(keys):

                def keep(q: Any, k: str = k, dim: int = dim) -> bool:
                    return (attrs(q)[dim] if q is not None else attrs_default(dim)) == k

                p = spot(waiting, owed_calls, s, now, keep)
                figures = window([e for e in primary if attrs(e)[dim] == k], s, 0)
                figures["answer_rate_live"] = (
                    figures["answered_within_target"]
                    / (figures["offered"] + p["waiting_over_target"])
                    if figures["offered"] + p["waiting_over_target"]
                    else None
                )
                figures |= p
                if name == "by_site":
                    figures["agents"] = agent_counts(
                        [
                            state[a].state
                            for a, sk in staff.items()
                            if a in state
                            and queue in sk.serving_queues()
                            and (state[a].site or "unknown") == k
                        ]
                    )
                breakdown[k] = figures
            result[name] = breakdown
        out[queue] = result
    return out


def spot(
    waiting: list[Any], owed: list[tuple[Any, float]], s: QueueSettings, now: float, keep: Any
) -> dict[str, Any]:
    """Point-in-time figures of the waiting calls and owed callbacks that `keep` selects."""
    w = [q for q in waiting if keep(q)]
    o = [t for q, t in owed if keep(q)]
    over = sum(1 for q in w if now - q.epoch > s.threshold_for(q.priority))
    return {
        "waiting": len(w),
        "waiting_over_target": over,
        "longest_wait_s": (now - min(q.epoch for q in w)) if w else 0.0,
        "callbacks_pending": len(o),
        "oldest_callback_s": (now - min(o)) if o else 0.0,
    }


def attrs_default(dim: int) -> str:
    return ("2", "voice", "unknown")[dim]


def flat(b: Breakdown) -> dict[str, Any]:
    out: dict[str, Any] = b.window.as_json()
    out |= {
        "waiting": b.waiting,
        "waiting_over_target": b.waiting_over_target,
        "longest_wait_s": b.longest_wait_s,
        "callbacks_pending": b.callbacks_pending,
        "oldest_callback_s": b.oldest_callback_s,
    }
    if b.agents is not None:
        out["agents"] = b.agents.as_json()
    return out


def same(got: dict[str, Any] | WindowMetrics, want: dict[str, Any], where: tuple[str, ...]) -> None:
    have = got.as_json() if isinstance(got, WindowMetrics) else got
    for name, value in want.items():
        if value is None or isinstance(value, int | dict):
            assert have[name] == value, (*where, name)
        else:
            assert have[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (*where, name)


def check(got: QueueStats, want: dict[str, Any], queue: str) -> None:
    for name in ("waiting", "waiting_over_target", "callbacks_pending"):
        assert getattr(got, name) == want[name], (queue, name)
    for name in ("longest_wait_s", "oldest_callback_s"):
        assert getattr(got, name) == pytest.approx(want[name]), (queue, name)
    for w in got.settings.windows_s:
        same(got.windows[w], want[str(w)], (queue, str(w)))
    for name in ("by_priority", "by_channel", "by_site"):
        breakdown: dict[str, Breakdown] = getattr(got, name)
        assert sorted(breakdown) == sorted(want[name]), (queue, name)
        for key, figures in want[name].items():
            same(flat(breakdown[key]), figures, (queue, name, key))


@settings(max_examples=300, deadline=None)
@given(
    trace=st.lists(calls, min_size=1, max_size=80),
    staff=st.lists(agents, max_size=6),
    conf=st.fixed_dictionaries(dict.fromkeys(QUEUES, queue_settings)),
    seed=st.integers(0, 2**32),
    dup=st.floats(0, 0.5),
)
def test_engine_equals_brute_force(
    trace: list[Call],
    staff: list[AgentSpec],
    conf: dict[str, QueueSettings],
    seed: int,
    dup: float,
) -> None:
    events = events_of(trace, staff)
    rng = random.Random(seed)
    delivered = events + [e for e in events if rng.random() < dup]  # redeliveries
    rng.shuffle(delivered)  # any order
    engine = Engine(conf.__getitem__)
    cut = len(delivered) // 2
    for e in delivered[:cut]:
        engine.add(parse_event(e))
    engine.compute(NOW - 200)  # a tick mid-stream must not change the final numbers
    for e in delivered[cut:]:
        engine.add(parse_event(e))
    got = engine.compute(NOW)
    want = brute_force(events, NOW, conf)
    assert sorted(got) == sorted(want)  # the queue set: calls' queues and agents' queues
    for queue, expected in want.items():
        check(got[queue], expected, queue)
