"""The planner on hand-built floors (contract 6), rule by rule, from tables.

Queues take 0.1 (billing), 0.02 (sales) and 0.05 (support) calls a second at an AHT of
200 s and a patience of 120 s; `need(rate)` is the fewest agents Erlang A gives 90%
within 30 s and at most 5% abandoned, worked out by `agents_for_target` (itself checked
against a birth-death chain in test_erlang.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pytest

from shared.core.erlang import agents_for_target
from shared.core.figures import Agent, AgentCounts, QueueStats, WindowMetrics
from shared.core.planner import GIVE_BACK_AFTER_S, Planner
from shared.core.sizing import Floor, TimeShares, levers_for
from shared.core.tiers import QueueAlertState
from shared.messages.commands import (
    ActivateAgent,
    ReassignAgent,
    ReleaseAgent,
    SetCallback,
    SetOverflow,
)
from shared.queue_settings import QueueSettings
from tests.conftest import T0

NOW = T0.timestamp()
SETTINGS = QueueSettings()  # sl_target 0.9, abandon_cap 0.05, threshold 30 s
AHT, PATIENCE = 200.0, 120.0
BILLING, SALES, SUPPORT = 0.1, 0.02, 0.05  # calls per second


def queue(
    queue_id: str, per_s: float, live: float | None = 0.95, pending: int = 0,
    settings: QueueSettings = SETTINGS,
) -> QueueStats:  # fmt: skip
    window = WindowMetrics(
        arrivals=0, answered=0, answered_within_target=0, short_abandoned=0, abandoned=0,
        callbacks=0, overflowed=0, offered=0, answer_rate=None, answer_rate_live=live,
        abandon_rate=None, asa_s=None, aht_s=AHT,
    )  # fmt: skip
    return QueueStats(
        queue_id=queue_id, now=NOW, windows=dict.fromkeys(settings.windows_s, window), waiting=0,
        waiting_over_target=0, longest_wait_s=0.0, agents=AgentCounts(),
        surge_arrivals=round(per_s * settings.surge_window_s), baseline_arrivals=None,
        settings=settings, patience_s=PATIENCE, callbacks_pending=pending,
    )  # fmt: skip


def need(per_s: float) -> int:
    return agents_for_target(per_s, AHT, 30, 0.9, patience_s=PATIENCE, abandon_cap=0.05)


def agent(
    agent_id: str, serving: str, skills: dict[str, int], state: str = "busy",
    reason: str | None = None, pool: str = "regular",
) -> Agent:  # fmt: skip
    return Agent(agent_id, state=state, reason=reason, skills=skills,
                 serving=frozenset([serving]) if serving else frozenset(), pool=pool)  # fmt: skip


def floor_agents() -> dict[str, Agent]:
    """Billing 3 short; sales with headroom (three idle, cross-skilled); support exactly at
    its need (two idle, cross-skilled); a one-agent queue; standby, partner, emergency."""
    agents: dict[str, Agent] = {}
    for i in range(need(BILLING) - 3):
        agents[f"b{i:02d}"] = agent(f"b{i:02d}", "billing", {"billing": 8})
    for i in range(need(SALES) + 6):
        state = "available" if i < 4 else "busy"
        skills = {"sales": 8, "billing": 9 - i} if i < 3 else {"sales": 8}
        agents[f"s{i:02d}"] = agent(f"s{i:02d}", "sales", skills, state)
    for i in range(need(SUPPORT)):
        state = "available" if i < 2 else "busy"
        agents[f"u{i:02d}"] = agent(f"u{i:02d}", "support", {"support": 8, "billing": 9}, state)
    agents["solo"] = agent("solo", "vip", {"vip": 8, "billing": 10}, "available")
    for i, level in enumerate([6, 7, 5, 4]):
        agents[f"sb{i}"] = agent(f"sb{i}", "", {"billing": level}, "not_ready", "standby",
                                 "standby")  # fmt: skip
    agents["brk"] = agent("brk", "", {"billing": 9}, "not_ready", "break")
    agents["pa1"] = agent("pa1", "", {"billing": 5}, "offline", pool="partner")
    agents["em1"] = agent("em1", "", {"billing": 5}, "offline", pool="emergency")
    return agents


def stats(billing_live: float | None = 0.6, **overrides: QueueStats) -> dict[str, QueueStats]:
    out = {
        "billing": queue("billing", BILLING, billing_live),
        "sales": queue("sales", SALES),
        "support": queue("support", SUPPORT),
        "vip": queue("vip", 0.001),
    }
    return {**out, **overrides}


def floor(
    states: dict[str, QueueAlertState], agents: dict[str, Agent] | None = None,
    now: float = NOW, billing_live: float | None = 0.6, **overrides: QueueStats,
) -> Floor:  # fmt: skip
    return Floor(now, stats(billing_live, **overrides), states, agents or floor_agents())


def auto(_q: str) -> str:
    return "auto"


def brief(commands: Sequence[object]) -> list[tuple[str, str, str]]:
    """(type, agent or queue, from or pool or enabled) for each command."""
    out = []
    for c in commands:
        match c:
            case ReassignAgent():
                out.append(("reassign", c.agent_id, c.from_queue))
            case ActivateAgent():
                out.append(("activate", c.agent_id, c.pool))
            case ReleaseAgent():
                out.append(("release", c.agent_id, c.queue_id))
            case SetCallback():
                out.append(("callback", c.queue_id, str(c.enabled)))
            case SetOverflow():
                out.append(("overflow", c.to_queue_id or f"site:{c.to_site}", str(c.enabled)))
    return out


TIER1 = QueueAlertState(tier=1, since=NOW, surge_id="surge:billing:1")
STAFFED_BILLING = need(BILLING) - 3


def test_the_floor_is_built_as_described() -> None:
    assert need(BILLING) == 23 and need(SALES) == 7 and need(SUPPORT) == 13
    assert STAFFED_BILLING == 20 and math.floor(0.2 * STAFFED_BILLING) == 4


@pytest.mark.parametrize(
    ("tier", "breach", "levers"),
    [
        (0, False, []),
        (0, True, ["standby", "cross_skill"]),
        (1, False, ["standby"]),
        (2, False, ["standby", "cross_skill", "partner"]),
        (3, False, ["standby", "cross_skill", "partner", "emergency", "callback", "overflow"]),
        (1, True, ["standby", "cross_skill"]),
    ],
)
def test_the_default_playbook_pulls_the_tier_and_the_tiers_below(
    tier: int, breach: bool, levers: list[str]
) -> None:
    state = QueueAlertState(tier=tier, breach=breach)
    assert levers_for(SETTINGS, state) == levers


def test_a_playbook_of_its_own_changes_the_levers() -> None:
    own = SETTINGS.updated({"playbook": {"1": ["cross_skill"], "2": ["callback"]}})
    assert levers_for(own, QueueAlertState(tier=2)) == ["cross_skill", "callback"]


def test_tier_one_calls_in_standby_up_to_its_share_as_one_action() -> None:
    """20 billing agents staffed: standby_share 0.2 lets 4 in, best skill first; the gap
    is 3; one action holds the three commands."""
    planner = Planner()
    steps = planner.step(floor({"billing": TIER1}), auto)
    assert len(steps) == 1
    action = steps[0].action
    assert brief(steps[0].commands) == [
        ("activate", "sb1", "standby"), ("activate", "sb0", "standby"),
        ("activate", "sb2", "standby"),
    ]  # fmt: skip
    assert action.state == "sent" and action.kind == "plan" and action.levers == ["standby"]
    assert action.reason.alert_id == "surge:billing:1" and action.reason.trigger == "1"
    assert action.reason.agents_needed == 23 and action.reason.agents_staffed == 20
    assert action.projected.agents_before == 20 and action.projected.agents_after == 23
    assert action.projected.answer_rate_after >= 0.9 > action.projected.answer_rate_before
    assert [c.command_id for c in action.commands] == [f"{action.action_id}:{i}" for i in range(3)]
    assert [type(c) for c in action.undo] == [ReleaseAgent] * 3
    assert planner.borrowed("billing") == 3
    # the next tick: the floor does not show them yet, but they are counted once
    assert planner.step(floor({"billing": TIER1}, now=NOW + 2), auto) == []


def test_standby_share_bounds_the_call_in() -> None:
    planner = Planner()
    own = SETTINGS.updated({"standby_share": 0.1})  # 2 of 20
    steps = planner.step(floor({"billing": TIER1}, billing=queue("billing", BILLING, 0.6,
                                                                  settings=own)), auto)  # fmt: skip
    assert brief(steps[0].commands) == [
        ("activate", "sb1", "standby"), ("activate", "sb0", "standby")
    ]  # fmt: skip


def test_tier_two_takes_idle_cross_skilled_agents_only_from_donors_with_headroom() -> None:
    """Standby first (cheapest), then sales' idle cross-skilled agents; never support
    (no headroom), never vip's only agent, never the agent on a break."""
    planner = Planner()
    own = SETTINGS.updated({"standby_share": 0.0})
    state = QueueAlertState(tier=2, since=NOW, surge_id="surge:billing:2")
    steps = planner.step(floor({"billing": state}, billing=queue("billing", BILLING, 0.6,
                                                                  settings=own)), auto)  # fmt: skip
    assert brief(steps[0].commands) == [
        ("reassign", "s00", "sales"), ("reassign", "s01", "sales"), ("reassign", "s02", "sales"),
    ]  # fmt: skip
    assert steps[0].action.levers == ["cross_skill"]
    assert planner.lent("sales") == 3 and planner.borrowed("billing") == 3


def test_a_donor_lends_at_most_its_share() -> None:
    planner = Planner()
    no_standby = SETTINGS.updated({"standby_share": 0.0})
    stingy = SETTINGS.updated({"max_lent_share": 0.15})  # 13 sales agents: 1 (2 > 0.15 * 13)
    state = QueueAlertState(tier=2)
    steps = planner.step(
        floor({"billing": state}, billing=queue("billing", BILLING, 0.6, settings=no_standby),
              sales=queue("sales", SALES, settings=stingy)), auto,
    )  # fmt: skip
    assert [b[:2] for b in brief(steps[0].commands)] == [
        ("reassign", "s00"), ("activate", "pa1"),  # then the partner pool (tier 2) fills in
    ]  # fmt: skip


def test_tier_three_adds_emergency_callback_and_overflow_in_one_action() -> None:
    planner = Planner()
    own = SETTINGS.updated({"standby_share": 0.0, "overflow_to": "sales"})
    keeps = queue("sales", SALES, settings=SETTINGS.updated({"max_lent_share": 0.0}))
    state = QueueAlertState(tier=3, since=NOW, surge_id="surge:billing:3")
    agents = floor_agents()
    steps = planner.step(floor({"billing": state}, agents, sales=keeps,
                               billing=queue("billing", BILLING, 0.6, settings=own)), auto)  # fmt: skip
    assert brief(steps[0].commands) == [
        ("activate", "pa1", "partner"), ("activate", "em1", "emergency"),
        ("callback", "billing", "True"), ("overflow", "sales", "True"),
    ]  # fmt: skip
    callback = steps[0].commands[2]
    assert isinstance(callback, SetCallback) and callback.offer_after_s == 30
    # once on, callback and overflow are not sent again
    later = planner.step(floor({"billing": state}, agents, now=NOW + 2, sales=keeps,
                               billing=queue("billing", BILLING, 0.6, settings=own)), auto)  # fmt: skip
    assert later == []


@pytest.mark.parametrize(
    ("live", "rate", "recalled"),
    [
        (0.85, SALES, 3),  # below its target now
        (0.95, 0.055, 3),  # on target now, but its 13 agents no longer do: it needs 14
        (0.95, SUPPORT, 0),  # needs 13, has 13: lent agents stay where they are
    ],
)
def test_recall_comes_before_any_new_lending(live: float, rate: float, recalled: int) -> None:
    """Sales lent three agents; when its own live answer rate falls below target, or its
    projection does, it gets them back (newest first) in the same tick."""
    planner = Planner()
    own = SETTINGS.updated({"standby_share": 0.0})
    state = QueueAlertState(tier=2)
    planner.step(
        floor({"billing": state}, billing=queue("billing", BILLING, 0.6, settings=own)), auto
    )
    assert planner.lent("sales") == 3
    steps = planner.step(
        floor({"billing": state}, now=NOW + 2, billing=queue("billing", BILLING, 0.6, settings=own),
              sales=queue("sales", rate, live=live)), auto,
    )  # fmt: skip
    recall = [s for s in steps if s.action.queue_id == "sales"]
    assert [s.action.kind for s in recall] == ["recall"] * (recalled > 0)
    assert [brief(s.commands) for s in recall] == [[
        ("release", "s02", "billing"), ("release", "s01", "billing"), ("release", "s00", "billing"),
    ]] * (recalled > 0)  # fmt: skip
    assert planner.lent("sales") == 3 - recalled


@pytest.mark.parametrize(("pending", "released"), [(0, 3), (4, 0)])
def test_unwind_waits_for_the_callback_backlog(pending: int, released: int) -> None:
    """A calm billing at its own rate of 0.05 a second needs 15 of its 25: three standby
    agents go back in a tick (a few at a time), but only with no callback pending."""
    planner = Planner()
    planner.step(floor({"billing": TIER1}), auto)
    agents = floor_agents()
    for a in ("sb0", "sb1", "sb2"):
        agents[a] = replace(agents[a], state="available", serving=frozenset(["billing"]))
    calm = queue("billing", SUPPORT, live=0.97, pending=pending)
    steps = planner.step(floor({}, agents, now=NOW + 600, billing=calm), auto)
    releases = [c for s in steps for c in s.commands if isinstance(c, ReleaseAgent)]
    assert [c.agent_id for c in releases] == ["sb2", "sb0", "sb1"][:released]


@pytest.mark.parametrize(("calm_s", "released"), [(120, 0), (298, 0), (300, 3)])
def test_a_queue_gives_back_only_after_five_minutes_calm(calm_s: int, released: int) -> None:
    """Tier 1 last seen at NOW: a breach or surge that has just cleared while the calls
    are still high would release people only to call them in again."""
    assert GIVE_BACK_AFTER_S == 300
    planner = Planner()
    planner.step(floor({"billing": TIER1}), auto)
    agents = floor_agents()
    for a in ("sb0", "sb1", "sb2"):
        agents[a] = replace(agents[a], state="available", serving=frozenset(["billing"]))
    calm = queue("billing", SUPPORT, live=0.97)
    steps = planner.step(floor({}, agents, now=NOW + calm_s, billing=calm), auto)
    releases = [c for s in steps for c in s.commands if isinstance(c, ReleaseAgent)]
    assert [c.agent_id for c in releases] == ["sb2", "sb0", "sb1"][:released]


def test_a_planner_rebuilt_from_its_actions_keeps_the_calm_wait() -> None:
    """A new leader restores the book: the queue's last plan (at NOW) starts the wait."""
    first = Planner()
    first.step(floor({"billing": TIER1}), auto)
    planner = Planner()
    planner.restore(first.actions.values())
    agents = floor_agents()
    for a in ("sb0", "sb1", "sb2"):
        agents[a] = replace(agents[a], state="available", serving=frozenset(["billing"]))
    calm = queue("billing", SUPPORT, live=0.97)
    assert planner.step(floor({}, agents, now=NOW + 120, billing=calm), auto) == []
    steps = planner.step(floor({}, agents, now=NOW + 300, billing=calm), auto)
    assert [c.agent_id for s in steps for c in s.commands if isinstance(c, ReleaseAgent)] == [
        "sb2",
        "sb0",
        "sb1",
    ]


def test_unwind_keeps_what_the_projection_still_needs() -> None:
    """At its surge rate billing still needs 28: calm or not, nobody is released."""
    planner = Planner()
    planner.step(floor({"billing": TIER1}), auto)
    agents = floor_agents()
    for a in ("sb0", "sb1", "sb2"):
        agents[a] = replace(agents[a], state="available", serving=frozenset(["billing"]))
    assert planner.step(floor({}, agents, now=NOW + 600, billing_live=0.95), auto) == []


def test_the_same_standby_agent_is_never_called_in_twice_in_one_surge() -> None:
    planner = Planner()
    planner.step(floor({"billing": TIER1}), auto)
    undone = planner.undo(next(iter(planner.actions)), "lead", NOW + 10)
    assert undone is not None and brief(undone.commands)[0] == ("release", "sb2", "billing")
    # still tier 1 and short: sb0..sb2 were called in this surge, only sb3 is left
    steps = planner.step(floor({"billing": TIER1}, now=NOW + 12), auto)
    assert brief(steps[0].commands) == [("activate", "sb3", "standby")]


def test_reassignments_are_renewed_before_until() -> None:
    planner = Planner()
    own = SETTINGS.updated({"standby_share": 0.0})
    state = QueueAlertState(tier=2)
    billing = queue("billing", BILLING, 0.6, settings=own)
    planner.step(floor({"billing": state}, billing=billing), auto)
    agents = floor_agents()
    for a in ("s00", "s01", "s02"):
        agents[a] = replace(agents[a], state="busy", serving=frozenset(["billing"]))
    early = planner.step(floor({"billing": state}, agents, now=NOW + 3000, billing=billing), auto)
    assert [s.commands for s in early] == [[]]  # only the measured effect of the first
    steps = planner.step(floor({"billing": state}, agents, now=NOW + 3301, billing=billing), auto)
    renewed = steps[0].commands
    assert steps[0].action.kind == "renew"
    assert [(c.agent_id, c.until.timestamp()) for c in renewed if isinstance(c, ReassignAgent)] == [
        (a, NOW + 3301 + 3600) for a in ("s00", "s01", "s02")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("shares", "have_a", "have_b"),
    [
        ({}, 2.0, 2.0),  # unknown: each counts 1 in each queue
        ({"x1": {"a": 0.25, "b": 0.75}, "x2": {"a": 0.5, "b": 0.5}}, 0.75, 1.25),
        ({"x1": {"a": 0.25, "c": 0.75}}, 2.0, 1.0),  # c no longer served: a gets all of x1
    ],
)
def test_capacity_is_counted_once(
    shares: dict[str, dict[str, float]], have_a: float, have_b: float
) -> None:
    agents = {
        "x1": Agent("x1", state="busy", serving=frozenset(["a", "b"])),
        "x2": Agent("x2", state="available", serving=frozenset(["a", "b"])),
    }
    f = Floor(NOW, {}, {}, agents, shares)
    assert (f.have("a"), f.have("b")) == pytest.approx((have_a, have_b))


def test_time_shares_from_handle_time_in_the_window() -> None:
    shares = TimeShares(300)
    shares.add(0, "x", "a", 100)  # out of the window at 400
    shares.add(200, "x", "a", 60)
    shares.add(250, "x", "b", 180)
    shares.add(260, "y", "a", 50)  # one queue only: no share to tell
    assert shares.shares(400) == {"x": {"a": 0.25, "b": 0.75}}


def test_approve_mode_holds_one_proposal_per_queue_until_it_expires() -> None:
    planner = Planner()
    steps = planner.step(floor({"billing": TIER1}), lambda _q: "approve")
    assert [s.action.state for s in steps] == ["proposed"] and steps[0].commands == []
    assert planner.step(floor({"billing": TIER1}, now=NOW + 2), lambda _q: "approve") == []
    expired = planner.step(floor({"billing": TIER1}, now=NOW + 300), lambda _q: "approve")
    assert [s.action.state for s in expired] == ["expired", "proposed"]


def test_approval_sends_the_whole_plan() -> None:
    planner = Planner()
    action = planner.step(floor({"billing": TIER1}), lambda _q: "approve")[0].action
    step = planner.decide(action.action_id, "approved", "lead", NOW + 5)
    assert step is not None and step.action.state == "sent" and len(step.commands) == 3
    assert [h.state for h in step.action.history] == ["proposed", "approved", "sent"]
    assert planner.decide(action.action_id, "approved", "lead", NOW + 6) is None


@pytest.mark.parametrize(
    ("lever", "count", "agents"),
    [
        ("standby", 2, ["sb1", "sb0"]),
        ("standby", 50, ["sb1", "sb0", "sb2", "sb3"]),  # the share's 4 of 20
        ("cross_skill", 50, ["s00", "s01", "s02"]),  # sales' three idle cross-skilled
        ("partner", 3, ["pa1"]),
    ],
)
def test_hand_actions_follow_the_same_bounds(lever: str, count: int, agents: list[str]) -> None:
    planner = Planner()
    planner.step(floor({}, billing_live=0.95), auto)
    step = planner.hand(lever, "billing", count, "lead")  # type: ignore[arg-type]
    assert step is not None and step.action.kind == "hand" and step.action.state == "sent"
    assert [b[1] for b in brief(step.commands)] == agents
    assert [h.by for h in step.action.history] == ["dispatcher", "lead", "lead"]


def test_a_hand_action_that_finds_nobody_is_refused() -> None:
    planner = Planner()
    planner.step(floor({}, billing_live=0.95), auto)
    assert planner.hand("emergency", "sales", 2, "lead") is None
    assert planner.hand("standby", "nowhere", 2, "lead") is None


def test_measured_effect_fifteen_minutes_after_sending() -> None:
    planner = Planner()
    action = planner.step(floor({"billing": TIER1}), auto)[0].action
    later = queue("billing", BILLING, 0.6)
    window = replace(later.windows[900], answer_rate=0.82)
    later = replace(later, windows={**later.windows, 900: window})
    steps = planner.step(floor({"billing": TIER1}, now=NOW + 900, billing=later), auto)
    measured = planner.actions[action.action_id].measured
    assert measured is not None and measured.answer_rate == 0.82
    assert measured.projected == action.projected.answer_rate_after
    assert any(s.action.action_id == action.action_id for s in steps)


def test_overflow_stays_on_until_its_target_is_in_trouble() -> None:
    """On when sales meets its target with an agent fewer; kept while sales is not in
    trouble, however tight; off at once when sales falls below its own target."""
    planner = Planner()
    own = SETTINGS.updated({"playbook": {"3": ["overflow"]}, "overflow_to": "sales"})
    state = {"billing": QueueAlertState(tier=3)}
    billing = queue("billing", BILLING, 0.6, settings=own)
    on = planner.step(floor(state, billing=billing), auto)
    assert brief(on[0].commands) == [("overflow", "sales", "True")]
    tight = queue("sales", SUPPORT)  # needs 13, has 13: one fewer would not do
    assert planner.step(floor(state, now=NOW + 2, billing=billing, sales=tight), auto) == []
    trouble = queue("sales", SALES, live=0.8)
    off = planner.step(floor(state, now=NOW + 4, billing=billing, sales=trouble), auto)
    assert [brief(s.commands) for s in off if s.action.queue_id == "billing"] == [
        [("overflow", "sales", "False")]
    ]


def test_staffing_per_queue_needed_have_lent_borrowed() -> None:
    """Billing needs 23 (Erlang A at 0.1 calls/s, AHT 200 s, patience 120 s) and has its
    20. Tier 2 closes the gap of 3 with standby first; then a lead asks for 2 cross-skilled
    agents by hand, and sales lends its two best billing-skilled idle agents. Vip had no
    call in the surge window (0.001 calls/s over 300 s rounds to 0): nobody needed."""
    planner = Planner()
    tier2 = {"billing": QueueAlertState(tier=2, since=NOW, surge_id="surge:billing:2")}

    def table() -> dict[str, tuple[int, float, int, int]]:
        got = planner.staffing(floor(tier2))
        return {q: (s.needed, s.have, s.lent, s.borrowed) for q, s in got.items()}

    assert table() == {
        "billing": (23, 20.0, 0, 0), "sales": (7, 13.0, 0, 0),
        "support": (13, 13.0, 0, 0), "vip": (0, 1.0, 0, 0),
    }  # fmt: skip
    [step] = planner.step(floor(tier2), auto)
    assert brief(step.commands) == [
        ("activate", "sb1", "standby"), ("activate", "sb0", "standby"),
        ("activate", "sb2", "standby"),
    ]  # fmt: skip
    hand = planner.hand("cross_skill", "billing", 2, "ann")
    assert hand is not None
    assert brief(hand.commands) == [("reassign", "s00", "sales"), ("reassign", "s01", "sales")]
    assert table() == {
        "billing": (23, 20.0, 0, 5), "sales": (7, 13.0, 2, 0),
        "support": (13, 13.0, 0, 0), "vip": (0, 1.0, 0, 0),
    }  # fmt: skip
    assert planner.staffing(floor(tier2))["sales"].as_json() == {
        "needed": 7, "have": 13.0, "lent": 2, "borrowed": 0,
    }  # fmt: skip
