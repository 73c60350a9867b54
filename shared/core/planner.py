"""The dispatcher's planner (contract 6): from the floor's state to actions. Pure.

Per queue in surge or SL breach it sizes the need with Erlang A (live arrival rate,
AHT and patience) against `sl_target` and `abandon_cap`, then:
tier 1 / breach: moves idle cross-skilled agents from donors, most headroom first,
  while each donor's projected answer rate stays at or above its own target and never
  taking a donor's last staffed agent;
tier 2: also activates standby agents (`not_ready`, reason `standby`) holding the skill,
  and takes cross-skilled agents who are busy now (they switch after their call);
tier 3: also turns on IVR callback (and overflow where the queue names a target).
When a tier is left, what it started is undone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.core.engine import Agent, QueueStats
from shared.core.erlang import Performance, erlang_a, erlang_c
from shared.core.tiers import QueueAlertState
from shared.queue_settings import QueueSettings
from shared.timefmt import iso_ms

DEFAULT_AHT_S = 300.0
DEFAULT_PATIENCE_S = 120.0
WORKING = ("available", "busy", "wrap_up")


@dataclass(frozen=True)
class Limits:
    """Brakes on the dispatcher, per queue."""

    moves_per_tick: int = 5
    cooldown_s: float = 20.0  # between two rounds of moves into one queue
    max_borrowed: int = 40  # agents borrowed into one queue at once
    max_lent_share: float = 0.3  # a donor lends at most this share of its own agents
    expire_after_s: float = 300.0  # an unapproved proposal lapses


@dataclass(frozen=True)
class Action:
    """One decision, its reason, plan, projected effect and lifecycle (contract 6)."""

    action_id: str
    queue_id: str
    type: str
    tier: int  # the tier that asked for it (0: an SL breach)
    reason: dict[str, Any]  # Any: the alert's numbers
    plan: list[dict[str, Any]]  # the commands that carry it out
    undo: list[dict[str, Any]]  # the commands that reverse it
    projected: dict[str, Any]
    state: str
    created_at: float
    changed_by: str
    changed_at: float
    agent_id: str | None = None
    history: tuple[tuple[str, str, float], ...] = ()

    def moved(self, state: str, by: str, at: float) -> Action:
        return replace(
            self,
            state=state,
            changed_by=by,
            changed_at=at,
            history=(*self.history, (state, by, at)),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "queue_id": self.queue_id,
            "type": self.type,
            "tier": self.tier,
            "agent_id": self.agent_id,
            "reason": self.reason,
            "reason_text": _reason_text(self.reason),
            "summary": _summary(self),
            "plan": self.plan,
            "undo": self.undo,
            "projected": self.projected,
            "state": self.state,
            "created_at": iso_ms(self.created_at),
            "changed_by": self.changed_by,
            "changed_at": iso_ms(self.changed_at),
            "history": [{"state": s, "by": b, "at": iso_ms(t)} for s, b, t in self.history],
        }


def _reason_text(reason: Mapping[str, Any]) -> str:
    ratio = reason.get("ratio")
    rate = reason.get("answer_rate_live")
    parts = [f"tier {reason.get('tier', 0)}"] if reason.get("tier") else ["SL breach"]
    if ratio is not None:
        parts.append(f"{100 * ratio:.0f}% of forecast")
    if rate is not None:
        parts.append(f"answer rate {100 * rate:.0f}%")
    return ", ".join(parts)


def _summary(action: Action) -> str:
    if action.type == "agent.reassign":
        return f"move {action.agent_id} from {action.plan[0]['from_queue']}"
    if action.type == "agent.activate":
        return f"call in standby {action.agent_id}"
    if action.type == "queue.callback":
        return f"offer callback after {action.plan[0]['offer_after_s']:g} s"
    return action.type


@dataclass(frozen=True)
class Change:
    """An action whose state changed this step, and the commands to send now."""

    action: Action
    commands: list[dict[str, Any]]


def project(stats: QueueStats, agents: int) -> Performance:
    """Erlang A at the live arrival rate, AHT and patience of a queue."""
    s = stats.settings
    rate = stats.surge_arrivals / s.surge_window_s
    # the longest window's AHT: short windows see only the calls that ended early
    longest = max(s.windows_s)
    aht = stats.windows[longest].aht_s or stats.windows[s.primary_window_s].aht_s or DEFAULT_AHT_S
    patience = stats.patience_s or DEFAULT_PATIENCE_S
    if rate <= 0:
        return erlang_c(max(agents, 1), 0.0, aht, s.sl_threshold_s)
    return erlang_a(agents, rate, aht, patience, s.sl_threshold_s)


def meets(perf: Performance, s: QueueSettings) -> bool:
    return perf.answer_rate >= s.sl_target and perf.abandon_rate <= s.abandon_cap


def needed_agents(stats: QueueStats, ceiling: int) -> int:
    """The fewest agents meeting `sl_target` and `abandon_cap` (at most `ceiling`)."""
    lo, hi = 0, max(1, ceiling)
    if not meets(project(stats, hi), stats.settings):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(project(stats, mid), stats.settings):
            hi = mid
        else:
            lo = mid
    return hi


def _healthy(stats: QueueStats) -> bool:
    """The queue's live answer rate meets its target now (or nothing is offered)."""
    s = stats.settings
    rate = stats.windows[s.primary_window_s].answer_rate_live
    return rate is None or rate >= s.sl_target


def staffed(agents: Mapping[str, Agent], queue_id: str) -> list[Agent]:
    return [a for a in agents.values() if queue_id in a.serving and a.state in WORKING]


@dataclass
class Planner:
    """Keeps every action and turns each tick's state into new and undone actions."""

    limits: Limits = field(default_factory=Limits)
    actions: dict[str, Action] = field(default_factory=dict)
    last_round: dict[str, float] = field(default_factory=dict)
    _lent: dict[str, int] = field(default_factory=dict)

    def open_actions(self, queue_id: str | None = None) -> list[Action]:
        return [
            a
            for a in self.actions.values()
            if a.state in ("proposed", "approved", "sent")
            and (queue_id is None or a.queue_id == queue_id)
        ]

    def step(
        self,
        now: float,
        stats: Mapping[str, QueueStats],
        states: Mapping[str, QueueAlertState],
        agents: Mapping[str, Agent],
        mode_for: Callable[[str], str],
        ratios: Mapping[str, float | None] | None = None,
    ) -> list[Change]:
        """Undo what lapsed tiers started, then plan for queues still in trouble."""
        changes = self._expire(now)
        for queue_id in sorted(stats):
            state = states.get(queue_id, QueueAlertState())
            changes.extend(self._undo_lapsed(now, queue_id, state))
        busy_agents = {a.agent_id for a in self.open_actions() if a.agent_id}
        for queue_id in sorted(stats, key=lambda q: -states.get(q, QueueAlertState()).tier):
            state = states.get(queue_id, QueueAlertState())
            if state.tier == 0 and not state.breach:
                continue
            if now - self.last_round.get(queue_id, -math.inf) < self.limits.cooldown_s:
                continue
            ratio = (ratios or {}).get(queue_id)
            self.last_round[queue_id] = now  # planned again after the cooldown, moves or not
            new = self._plan_queue(now, queue_id, state, ratio, stats, agents, busy_agents)
            auto = mode_for(queue_id) == "auto"
            for action in new:
                if auto:
                    action = action.moved("sent", "dispatcher", now)
                self.actions[action.action_id] = action
                busy_agents.add(action.agent_id or "")
                changes.append(Change(action, action.plan if auto else []))
        return changes

    def decide(self, action_id: str, verdict: str, by: str, now: float) -> Change | None:
        """A floor manager's approval (the commands are sent) or rejection."""
        action = self.actions.get(action_id)
        if action is None or action.state != "proposed":
            return None
        if verdict == "approved":
            action = action.moved("approved", by, now).moved("sent", "dispatcher", now)
            self.actions[action_id] = action
            return Change(action, action.plan)
        action = action.moved("rejected", by, now)
        self.actions[action_id] = action
        return Change(action, [])

    def _expire(self, now: float) -> list[Change]:
        out = []
        for action in list(self.actions.values()):
            if action.state == "proposed" and now - action.created_at >= self.limits.expire_after_s:
                expired = action.moved("expired", "dispatcher", now)
                self.actions[action.action_id] = expired
                out.append(Change(expired, []))
        return out

    def _undo_lapsed(self, now: float, queue_id: str, state: QueueAlertState) -> list[Change]:
        """contract 6: when a tier is left, what it started is undone."""
        out = []
        for action in self.open_actions(queue_id):
            started_by_breach = action.tier == 0
            lapsed = (
                (not state.breach and state.tier == 0)
                if started_by_breach
                else action.tier > state.tier
            )
            if not lapsed:
                continue
            if action.state == "proposed":
                done = action.moved("expired", "dispatcher", now)
                self.actions[action.action_id] = done
                out.append(Change(done, []))
                continue
            done = action.moved("reverted", "dispatcher", now)
            self.actions[action.action_id] = done
            out.append(Change(done, done.undo))
        return out

    def _plan_queue(
        self,
        now: float,
        queue_id: str,
        state: QueueAlertState,
        ratio: float | None,
        stats: Mapping[str, QueueStats],
        agents: Mapping[str, Agent],
        taken: set[str],
    ) -> list[Action]:
        mine = stats[queue_id]
        s = mine.settings
        have = len(staffed(agents, queue_id))
        borrowed = sum(1 for a in self.open_actions(queue_id) if a.agent_id)
        ceiling = have + self.limits.max_borrowed
        need = needed_agents(mine, ceiling)
        reason = {
            "alert": "surge" if state.tier else "sl_breach",
            "tier": state.tier,
            "ratio": ratio,
            "answer_rate_live": mine.windows[s.primary_window_s].answer_rate_live,
            "arrivals": mine.surge_arrivals,
            "arrival_rate_per_s": mine.surge_arrivals / s.surge_window_s,
            "aht_s": mine.windows[s.primary_window_s].aht_s,
            "patience_s": mine.patience_s,
            "agents_needed": need,
            "agents_staffed": have,
        }
        if state.surge_id is not None:
            reason["alert_id"] = state.surge_id
        elif state.breach_id is not None:
            reason["alert_id"] = state.breach_id
        deficit = min(need - have, self.limits.max_borrowed - borrowed, self.limits.moves_per_tick)
        out: list[Action] = []
        tier = state.tier
        if deficit > 0:
            donors_staff = {q: len(staffed(agents, q)) for q in stats}
            self._lent = self._lent_by_donor()
            for agent, donor in self._movable(queue_id, tier, stats, agents, taken, donors_staff):
                if len(out) >= deficit:
                    break
                # the tier whose response this is: idle agents tier 1, busy ones tier 2
                asks = 0 if tier == 0 else (1 if agent.state == "available" else 2)
                out.append(
                    self._reassign(now, queue_id, agent, donor, asks, reason, mine, have + len(out))
                )
                donors_staff[donor] -= 1
                self._lent[donor] = self._lent.get(donor, 0) + 1
                taken.add(agent.agent_id)
            if tier >= 2:
                for agent in self._standby(queue_id, agents, taken):
                    if len(out) >= deficit:
                        break
                    out.append(
                        self._activate(now, queue_id, agent, 2, reason, mine, have + len(out))
                    )
                    taken.add(agent.agent_id)
        if tier >= 3 and not any(a.type == "queue.callback" for a in self.open_actions(queue_id)):
            out.append(self._callback(now, queue_id, reason, mine, have))
        return out

    def _movable(
        self,
        queue_id: str,
        tier: int,
        stats: Mapping[str, QueueStats],
        agents: Mapping[str, Agent],
        taken: set[str],
        donors_staff: dict[str, int],
    ) -> list[tuple[Agent, str]]:
        """Cross-skilled agents of donors with headroom, most headroom first."""
        states = ("available",) if tier < 2 else WORKING
        candidates: list[tuple[float, int, str, Agent, str]] = []
        healthy = {q: _healthy(st) for q, st in stats.items()}
        for agent in agents.values():
            if agent.agent_id in taken or agent.state not in states or queue_id in agent.serving:
                continue
            if queue_id not in agent.skills:
                continue
            for donor in sorted(agent.serving):
                donor_stats = stats.get(donor)
                if donor_stats is None or donors_staff.get(donor, 0) <= 1:
                    continue  # never the last staffed agent
                if not healthy[donor]:
                    continue  # a donor already missing its target gives nobody
                lent = self._lent.get(donor, 0)
                if lent + 1 > self.limits.max_lent_share * (donors_staff[donor] + lent):
                    continue
                after = project(donor_stats, donors_staff[donor] - 1)
                if not meets(after, donor_stats.settings):
                    continue
                headroom = after.answer_rate - donor_stats.settings.sl_target
                idle_first = 0 if agent.state == "available" else 1
                candidates.append((-headroom, idle_first, agent.agent_id, agent, donor))
                break
        candidates.sort(key=lambda c: (c[1], c[0], -c[3].skills.get(queue_id, 0), c[2]))
        return [(c[3], c[4]) for c in candidates]

    def _lent_by_donor(self) -> dict[str, int]:
        lent: dict[str, int] = {}
        for action in self.open_actions():
            if action.type == "agent.reassign":
                donor = str(action.plan[0]["from_queue"])
                lent[donor] = lent.get(donor, 0) + 1
        return lent

    def _standby(self, queue_id: str, agents: Mapping[str, Agent], taken: set[str]) -> list[Agent]:
        pool = [
            a
            for a in agents.values()
            if a.state == "not_ready"
            and a.reason == "standby"
            and queue_id in a.skills
            and a.agent_id not in taken
        ]
        return sorted(pool, key=lambda a: (-a.skills[queue_id], a.agent_id))

    def _effect(self, stats: QueueStats, before: int, after: int) -> dict[str, Any]:
        b, a = project(stats, before), project(stats, after)
        return {
            "agents_before": before,
            "agents_after": after,
            "answer_rate_before": b.answer_rate,
            "answer_rate_after": a.answer_rate,
            "abandon_rate_before": b.abandon_rate,
            "abandon_rate_after": a.abandon_rate,
        }

    def _new(
        self,
        now: float,
        kind: str,
        queue_id: str,
        tier: int,
        reason: dict[str, Any],
        do: dict[str, Any],
        undo: dict[str, Any],
        effect: dict[str, Any],
        agent_id: str | None = None,
    ) -> Action:
        """A proposed action; its commands' ids derive from its own id (idempotent)."""
        action_id = f"{queue_id}:{kind}:{agent_id or 'queue'}:{int(now * 1000)}"
        plan = [{**do, "command_id": f"{action_id}:do"}]
        reverse = [{**undo, "command_id": f"{action_id}:undo"}]
        history = (("proposed", "dispatcher", now),)
        return Action(
            action_id, queue_id, str(do["type"]), tier, reason, plan, reverse, effect,
            "proposed", now, "dispatcher", now, agent_id, history,
        )  # fmt: skip

    def _reassign(
        self, now: float, queue_id: str, agent: Agent, donor: str, tier: int,
        reason: dict[str, Any], stats: QueueStats, have: int,
    ) -> Action:  # fmt: skip
        do = {"type": "agent.reassign", "agent_id": agent.agent_id, "from_queue": donor,
              "to_queue": queue_id, "until": iso_ms(now + 3600)}  # fmt: skip
        undo = {"type": "agent.release", "agent_id": agent.agent_id, "queue_id": queue_id}
        effect = self._effect(stats, have, have + 1)
        return self._new(now, "reassign", queue_id, tier, reason, do, undo, effect, agent.agent_id)

    def _activate(
        self, now: float, queue_id: str, agent: Agent, tier: int,
        reason: dict[str, Any], stats: QueueStats, have: int,
    ) -> Action:  # fmt: skip
        do = {"type": "agent.activate", "agent_id": agent.agent_id, "queue_id": queue_id}
        undo = {"type": "agent.release", "agent_id": agent.agent_id, "queue_id": queue_id}
        effect = self._effect(stats, have, have + 1)
        return self._new(now, "activate", queue_id, tier, reason, do, undo, effect, agent.agent_id)

    def _callback(
        self, now: float, queue_id: str, reason: dict[str, Any], stats: QueueStats, have: int
    ) -> Action:
        after = stats.settings.sl_threshold_s
        do = {
            "type": "queue.callback",
            "queue_id": queue_id,
            "enabled": True,
            "offer_after_s": after,
        }
        undo = {**do, "enabled": False}
        return self._new(
            now, "callback", queue_id, 3, reason, do, undo, self._effect(stats, have, have)
        )
