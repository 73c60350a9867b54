"""The simulator: Erlang A agreement over a long run, and commands obeyed as an ACD would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.simulator.closed_loop import min_rolling_answer_rate, span_metrics
from services.simulator.scenario import ProfilePoint, QueueSpec, Scenario, load_scenario
from services.simulator.sim import Simulator
from shared.core.erlang import erlang_a
from shared.messages.commands import (
    ActivateAgent,
    ReassignAgent,
    ReleaseAgent,
    SetCallback,
    SetOverflow,
)
from shared.queue_settings import QueueSettings

CALLS_PER_MIN, TALK_S, PATIENCE_S, AGENTS = 6.0, 80.0, 60.0, 8  # 8 Erlangs on 8 agents


def single_queue(duration_s: float, **queue: Any) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "single", "duration_s": duration_s, "surge": {"start_s": 0, "end_s": duration_s},
            "queues": [{"queue_id": "q", "calls_per_min": CALLS_PER_MIN, "talk_s": TALK_S, "hold_s": 0,
                        "wrap_s": 0, "patience_s": PATIENCE_S, "short_abandon_share": 0.0,
                        "handle": "exponential", **queue}],
            "profile": [{"at_s": 0, "multiplier": {"q": 1.0}}],
            "agents": [{"count": AGENTS, "prefix": "a", "skills": {"q": 5}},
                       {"count": 2, "prefix": "x", "skills": {"other": 5, "q": 3}, "serving": ["other"]},
                       {"count": 2, "prefix": "sb", "skills": {"q": 4}, "serving": [], "state": "not_ready", "reason": "standby"}],
        }
    )  # fmt: skip


def test_long_run_agrees_with_erlang_a() -> None:
    """M/M/8+M at 8 Erlangs: the simulated answer rate and abandonment match the model.

    Tolerance 0.02 absolute. Measured over 8 seeds of 200,000 s each, the rates'
    standard deviations were 0.0085 (answer rate) and 0.0049 (abandonment); this run
    is twice as long (about 40,000 calls), so 0.02 is more than three of them.
    """
    sim = Simulator(single_queue(400_000), seed=7, t0=0.0)
    events = sim.advance(400_000)
    answered = [e for e in events if e["type"] == "call.answered"]
    abandoned = [e for e in events if e["type"] == "call.abandoned"]
    offered = len(answered) + len(abandoned)
    within = sum(1 for e in answered if e["wait_s"] <= 30)
    model = erlang_a(AGENTS, CALLS_PER_MIN / 60, TALK_S, PATIENCE_S, 30)
    assert offered > 38_000
    assert within / offered == pytest.approx(model.answer_rate, abs=0.02)
    assert len(abandoned) / offered == pytest.approx(model.abandon_rate, abs=0.02)


def test_same_seed_same_events() -> None:
    a = Simulator(load_scenario("promo-night"), seed=3, t0=0.0).advance(900)
    b = Simulator(load_scenario("promo-night"), seed=3, t0=0.0).advance(900)
    c = Simulator(load_scenario("promo-night"), seed=4, t0=0.0).advance(900)
    assert a == b and a != c


def served_by(events: list[dict[str, Any]], queue_id: str) -> set[str]:
    return {
        str(e["agent_id"])
        for e in events
        if e["type"] == "call.answered" and e["queue_id"] == queue_id
    }


UNTIL = datetime(2026, 11, 11, 20, 0, tzinfo=UTC)


def test_commands_change_routing() -> None:
    sim = Simulator(single_queue(20_000, calls_per_min=30.0), seed=1, t0=0.0)  # overloaded
    before = sim.advance(2_000)
    assert served_by(before, "q") == {f"a{i:02d}" for i in range(1, AGENTS + 1)}
    skills = [e for e in before if e["type"] == "agent.skills" and e["agent_id"] == "x01"]
    assert skills[0]["serving"] == ["other"] and skills[0]["pool"] == "regular"
    standby = [e for e in before if e["type"] == "agent.skills" and e["agent_id"] == "sb01"]
    assert standby[0]["pool"] == "standby"
    move = ReassignAgent(command_id="c1", action_id="a", agent_id="x01", from_queue="other",
                         to_queue="q", until=UNTIL)  # fmt: skip
    assert sim.apply(move)
    assert not sim.apply(move)  # the same command_id twice: carried out once
    assert sim.apply(ActivateAgent(command_id="c2", action_id="a", agent_id="sb01", queue_id="q"))
    assert sim.apply(SetCallback(command_id="c3", action_id="a", queue_id="q", enabled=True,
                                 offer_after_s=30))  # fmt: skip
    during = sim.advance(4_000)
    assert {"x01", "sb01"} <= served_by(during, "q")
    assert [
        e["serving"] for e in during if e["type"] == "agent.skills" and e["agent_id"] == "x01"
    ] == [["q"]]
    assert any(e["type"] == "call.callback_requested" for e in during)
    sim.apply(ReleaseAgent(command_id="c4", action_id="b", agent_id="x01", queue_id="q"))
    sim.apply(ReleaseAgent(command_id="c5", action_id="b", agent_id="sb01", queue_id="q"))
    sim.apply(SetCallback(command_id="c6", action_id="b", queue_id="q", enabled=False))
    sim.advance(4_600)  # the calls in hand finish first
    after = sim.advance(8_000)
    assert served_by(after, "q").isdisjoint({"x01", "sb01"})
    assert not any(e["type"] == "call.callback_requested" for e in after)
    states = [e for e in after if e["type"] == "agent.state" and e["agent_id"] == "sb01"]
    assert states == []  # back on standby since the release, and stays there
    assert sim.agents["sb01"].state == "not_ready" and sim.agents["sb01"].reason == "standby"
    assert sim.agents["x01"].serving == {"other"}


def test_callbacks_are_served_and_some_find_no_one_home() -> None:
    """Every callback requested is owed: served by an agent (handle time, call.ended when
    connected) once no call waits, pending until then; about 15% ring out."""
    busy = single_queue(30_000, calls_per_min=30.0)  # overloaded, then quiet after 3,000 s
    quiet = [ProfilePoint(at_s=0, multiplier={"q": 1.0}), ProfilePoint(at_s=3_000, multiplier={"q": 1.0}),
             ProfilePoint(at_s=3_001, multiplier={"q": 0.1})]  # fmt: skip
    sim = Simulator(busy.model_copy(update={"profile": quiet}), seed=2, t0=0.0)
    sim.apply(SetCallback(command_id="c", action_id="a", queue_id="q", enabled=True,
                          offer_after_s=30))  # fmt: skip
    events = sim.advance(3_000)
    sim.apply(SetCallback(command_id="d", action_id="a", queue_id="q", enabled=False))
    requested = {e["call_id"] for e in events if e["type"] == "call.callback_requested"}
    assert len(requested) > 100 and sim.callbacks_pending("q") > 0
    events += sim.advance(30_000)
    requested = {e["call_id"] for e in events if e["type"] == "call.callback_requested"}
    done = [e for e in events if e["type"] == "call.callback_completed"]
    assert sim.callbacks_pending("q") == 0
    assert sorted(e["call_id"] for e in done) == sorted(requested)  # each one, once
    connected = {e["call_id"] for e in done if e["outcome"] == "connected"}
    no_answer = [e for e in done if e["outcome"] == "no_answer"]
    assert 0.08 < len(no_answer) / len(done) < 0.22
    ended = {e["call_id"] for e in events if e["type"] == "call.ended"}
    assert connected <= ended and not ({e["call_id"] for e in no_answer} & ended)
    assert all(e["wait_s"] > 0 and e["agent_id"] for e in done)


def test_overflow_sends_waiting_callers_on_after_the_delay() -> None:
    one = single_queue(8_000, calls_per_min=30.0)
    other = QueueSpec(queue_id="other", calls_per_min=0.0)
    sim = Simulator(one.model_copy(update={"queues": [*one.queues, other]}), seed=3, t0=0.0)
    sim.advance(1_000)
    assert sim.apply(SetOverflow(command_id="o", action_id="a", queue_id="q",
                                 to_queue_id="other", enabled=True, after_s=20))  # fmt: skip
    events = sim.advance(2_000)
    flowed = [e for e in events if e["type"] == "call.overflowed"]
    assert flowed and all(e["to_queue_id"] == "other" for e in flowed)
    assert min(e["wait_s"] for e in flowed) >= 20
    queued_there = {e["call_id"] for e in events if e["type"] == "call.queued"
                    and e["queue_id"] == "other"}  # fmt: skip
    assert {e["call_id"] for e in flowed} <= queued_there
    assert not sim.apply(SetOverflow(command_id="p", action_id="a", queue_id="q",
                                     to_queue_id="nowhere", enabled=True))  # fmt: skip


def ev(t: float, kind: str, **fields: Any) -> dict[str, Any]:
    return {"_t": t, "type": kind, **fields}


SPAN = [
    ev(1, "call.queued"), ev(2, "call.answered", wait_s=10), ev(3, "call.answered", wait_s=31),
    ev(4, "call.abandoned", wait_s=4), ev(5, "call.abandoned", wait_s=40),
    ev(6, "call.callback_requested", wait_s=35), ev(7, "call.overflowed", wait_s=50),
    ev(8, "call.callback_completed", outcome="connected", wait_s=600),
    ev(9, "call.callback_completed", outcome="no_answer", wait_s=700),
    ev(10, "call.ended", talk_s=100, hold_s=10, wrap_s=10),
    ev(20, "call.answered", wait_s=0),  # outside (0, 10]
]  # fmt: skip


@pytest.mark.parametrize(
    ("flowouts", "offered", "answer_rate"),
    [("miss", 5, 1 / 5), ("exclude", 3, 1 / 3)],  # answered 2 + abandoned 1 (+ 2 flow-outs)
)
def test_scenario_spans_count_flowouts_as_the_queue_settings_say(
    flowouts: str, offered: int, answer_rate: float
) -> None:
    s = QueueSettings(sl_flowouts=flowouts)  # type: ignore[arg-type]
    m = span_metrics(SPAN, s, 0, 10)
    assert (m["answered"], m["answered_within_target"], m["abandoned"], m["short_abandoned"]) == (
        2, 1, 1, 1,
    )  # fmt: skip
    assert (m["callbacks"], m["overflowed"], m["flowouts"], m["offered"]) == (1, 1, 2, offered)
    assert m["answer_rate"] == pytest.approx(answer_rate)
    assert (m["callbacks_completed"], m["callback_rate"]) == (1, 0.5)  # 600 s <= 1800 s; of 2
    assert (m["asa_s"], m["aht_s"]) == (20.5, 120.0)


def test_the_lowest_fifteen_minutes_of_a_run() -> None:
    """Minute ends 900 and 960: (0, 900] holds 2 hits of 2; (60, 960] 1 hit and 1 miss."""
    events = [ev(30, "call.answered", wait_s=5), ev(600, "call.answered", wait_s=5),
              ev(950, "call.abandoned", wait_s=60)]  # fmt: skip
    assert min_rolling_answer_rate(events, QueueSettings(), 960) == 0.5
    assert min_rolling_answer_rate(events, QueueSettings(), 900) == 1.0
    assert min_rolling_answer_rate([], QueueSettings(), 960) is None
