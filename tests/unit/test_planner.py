"""The planner on hand-built floors (contract 6): who moves, who never does, and undo."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.engine import Agent, AgentCounts, QueueStats, WindowMetrics
from shared.core.erlang import agents_for_target, erlang_a
from shared.core.planner import Planner
from shared.core.tiers import QueueAlertState
from shared.queue_settings import QueueSettings
from tests.conftest import T0

NOW = T0.timestamp()
SETTINGS = QueueSettings()  # sl_target 0.9, abandon_cap 0.05, threshold 30 s
AHT, PATIENCE = 200.0, 120.0


def queue(queue_id: str, per_s: float, rate_live: float | None = 0.95) -> QueueStats:
    window = WindowMetrics(
        arrivals=0, answered=0, answered_within_target=0, short_abandoned=0, abandoned=0,
        callbacks=0, overflowed=0, offered=0, answer_rate=None, answer_rate_live=rate_live,
        abandon_rate=None, asa_s=None, aht_s=AHT,
    )  # fmt: skip
    return QueueStats(
        queue_id=queue_id, now=NOW, windows=dict.fromkeys(SETTINGS.windows_s, window), waiting=0,
        waiting_over_target=0, longest_wait_s=0.0, agents=AgentCounts(),
        surge_arrivals=round(per_s * SETTINGS.surge_window_s), baseline_arrivals=None,
        settings=SETTINGS, patience_s=PATIENCE,
    )  # fmt: skip


def need(per_s: float) -> int:
    return agents_for_target(per_s, AHT, 30, 0.9, patience_s=PATIENCE, abandon_cap=0.05)


def agent(
    agent_id: str,
    serving: str,
    skills: dict[str, int],
    state: str = "busy",
    reason: str | None = None,
) -> Agent:
    return Agent(
        agent_id,
        state=state,
        reason=reason,
        skills=skills,
        serving=frozenset([serving]) if serving else frozenset(),
    )


BILLING, SALES, SUPPORT = 0.1, 0.02, 0.05  # calls per second


def floor() -> dict[str, Agent]:
    """Billing 3 short; sales with headroom; support exactly at its need; a one-agent queue."""
    agents: dict[str, Agent] = {}
    for i in range(need(BILLING) - 3):
        agents[f"b{i:02d}"] = agent(f"b{i:02d}", "billing", {"billing": 8})
    for i in range(need(SALES) + 6):  # four idle, three of them also skilled for billing
        state = "available" if i < 4 else "busy"
        skills = {"sales": 8, "billing": 9 - i} if i < 3 else {"sales": 8}
        agents[f"s{i:02d}"] = agent(f"s{i:02d}", "sales", skills, state)
    for i in range(need(SUPPORT)):  # no headroom, two idle and cross-skilled
        state = "available" if i < 2 else "busy"
        agents[f"u{i:02d}"] = agent(f"u{i:02d}", "support", {"support": 8, "billing": 9}, state)
    agents["solo"] = agent("solo", "vip", {"vip": 8, "billing": 10}, "available")
    agents["sb1"] = agent("sb1", "", {"billing": 6}, "not_ready", "standby")
    agents["sb2"] = agent("sb2", "", {"billing": 7}, "not_ready", "standby")
    agents["brk"] = agent("brk", "", {"billing": 9}, "not_ready", "break")
    return agents


STATS = {
    "billing": queue("billing", BILLING, 0.6),
    "sales": queue("sales", SALES),
    "support": queue("support", SUPPORT),
    "vip": queue("vip", 0.001),
}


def commands(changes: list[Any]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for change in changes:
        for c in change.commands:
            out.append(
                (
                    c["type"],
                    c.get("agent_id", ""),
                    c.get("from_queue", c.get("queue_id", "")),
                    str(c.get("to_queue", c.get("enabled", ""))),
                )
            )
    return out


def test_the_floor_is_built_as_described() -> None:
    """The donors' numbers the test relies on, from the Erlang A model itself."""
    assert need(BILLING) - 3 > 0
    sales_after = erlang_a(need(SALES) + 6 - 3, SALES, AHT, PATIENCE, 30)
    assert sales_after.answer_rate >= 0.9 and sales_after.abandon_rate <= 0.05
    support_after = erlang_a(need(SUPPORT) - 1, SUPPORT, AHT, PATIENCE, 30)
    assert support_after.answer_rate < 0.9 or support_after.abandon_rate > 0.05


def test_tier_one_takes_three_idle_cross_skilled_from_sales_only() -> None:
    planner = Planner()
    states = {"billing": QueueAlertState(tier=1, since=NOW, surge_id="surge:billing:1")}
    changes = planner.step(NOW, STATS, states, floor(), lambda _q: "auto", {"billing": 1.3})
    assert commands(changes) == [
        ("agent.reassign", "s00", "sales", "billing"),  # billing level 9
        ("agent.reassign", "s01", "sales", "billing"),  # 8
        ("agent.reassign", "s02", "sales", "billing"),  # 7
    ]
    first = changes[0].action.as_json()
    assert first["state"] == "sent" and first["tier"] == 1
    assert first["plan"][0]["command_id"] == f"billing:reassign:s00:{int(NOW * 1000)}:do"
    assert first["reason"]["agents_needed"] == need(BILLING)
    assert first["reason"]["agents_staffed"] == need(BILLING) - 3
    assert first["reason"]["alert_id"] == "surge:billing:1"
    assert first["projected"]["agents_after"] == need(BILLING) - 2
    assert first["projected"]["answer_rate_after"] > first["projected"]["answer_rate_before"]
    # within the cooldown nothing more is planned; the same agents are never moved twice
    assert planner.step(NOW + 2, STATS, states, floor(), lambda _q: "auto") == []


def test_tier_two_calls_in_standby_and_tier_three_turns_on_callback() -> None:
    planner = Planner()
    states = {"billing": QueueAlertState(tier=3, since=NOW, surge_id="surge:billing:1")}
    agents = floor()
    for a in ("s00", "s01", "s02", "s03"):
        agents[a].state = "busy"  # no idle donor agent: standby is next
    changes = planner.step(NOW, STATS, states, agents, lambda _q: "auto")
    got = commands(changes)
    # sales' busy cross-skilled agents may move at tier 2 and up; then standby by level
    assert got == [
        ("agent.reassign", "s00", "sales", "billing"),
        ("agent.reassign", "s01", "sales", "billing"),
        ("agent.reassign", "s02", "sales", "billing"),
        ("queue.callback", "", "billing", "True"),
    ]
    assert [c.action.tier for c in changes] == [2, 2, 2, 3]
    assert changes[-1].commands[0]["offer_after_s"] == 30.0
    # standby agents when the donors have nobody to give (brk is on a break: never called in)
    agents = {k: v for k, v in floor().items() if not k.startswith("s0")}
    planner2 = Planner()
    got2 = commands(planner2.step(NOW, STATS, states, agents, lambda _q: "auto"))
    assert got2 == [
        ("agent.activate", "sb2", "billing", ""),
        ("agent.activate", "sb1", "billing", ""),
        ("queue.callback", "", "billing", "True"),
    ]


def test_leaving_the_tiers_undoes_everything_step_by_step() -> None:
    planner = Planner()
    agents = {k: v for k, v in floor().items() if k not in ("s01", "s02")}  # one idle mover
    states = {"billing": QueueAlertState(tier=3, since=NOW, surge_id="s")}
    planner.step(NOW, STATS, states, agents, lambda _q: "auto")
    assert sorted(a.type for a in planner.open_actions()) == [
        "agent.activate",
        "agent.activate",
        "agent.reassign",
        "queue.callback",
    ]
    down2 = planner.step(
        NOW + 200,
        STATS,
        {"billing": QueueAlertState(tier=2, since=NOW, surge_id="s")},
        agents,
        lambda _q: "auto",
    )
    assert [c for c in commands(down2) if c[0] != "agent.reassign"] == [
        ("queue.callback", "", "billing", "False")
    ]
    down0 = planner.step(
        NOW + 400, STATS, {"billing": QueueAlertState()}, agents, lambda _q: "auto"
    )
    assert sorted(commands(down0)) == [
        ("agent.release", "s00", "billing", ""),
        ("agent.release", "sb1", "billing", ""),
        ("agent.release", "sb2", "billing", ""),
    ]
    assert planner.open_actions() == []
    assert {a.state for a in planner.actions.values()} == {"reverted"}


def test_approve_mode_holds_commands_until_a_lead_decides() -> None:
    planner = Planner()
    states = {"billing": QueueAlertState(tier=1, since=NOW, surge_id="s")}
    proposed = planner.step(NOW, STATS, states, floor(), lambda _q: "approve")
    assert [c.action.state for c in proposed] == ["proposed"] * 3 and commands(proposed) == []
    ok = planner.decide(proposed[0].action.action_id, "approved", "lead-ann", NOW + 5)
    assert ok is not None and [h[0] for h in ok.action.history] == ["proposed", "approved", "sent"]
    assert commands([ok]) == [("agent.reassign", "s00", "sales", "billing")]
    no = planner.decide(proposed[1].action.action_id, "rejected", "lead-ann", NOW + 5)
    assert no is not None and no.action.state == "rejected" and no.commands == []
    assert planner.decide(proposed[1].action.action_id, "approved", "lead-ann", NOW + 6) is None
    later = planner.step(NOW + 400, STATS, states, floor(), lambda _q: "approve")
    expired = [c.action.action_id for c in later if c.action.state == "expired"]
    assert expired == [proposed[2].action.action_id]


@pytest.mark.parametrize("healthy_rate", [0.5])
def test_a_donor_missing_its_own_target_gives_nobody(healthy_rate: float) -> None:
    stats = {**STATS, "sales": queue("sales", SALES, rate_live=healthy_rate)}
    states = {"billing": QueueAlertState(tier=1, since=NOW, surge_id="s")}
    assert Planner().step(NOW, stats, states, floor(), lambda _q: "auto") == []
