"""The dispatcher's planner (contract 6): from the floor's state to actions. Pure.

Each tick, per queue and in this order, into at most one action:
- recall: a queue whose live answer rate is below its `sl_target` gets back the agents
  it lent, before anyone lends anything new;
- plan: a queue in surge or SL breach pulls the levers its `playbook` names for its tier
  (and the tiers below), cheapest first, until Erlang A says it meets `sl_target` and
  `abandon_cap`, within `moves_per_tick`, `max_borrowed`, `standby_share` and the donors'
  `max_lent_share`;
- renew: reassignments about to reach their `until` are extended while still held;
- unwind: a calm queue (no tier, no breach, no callback pending) gives back what its
  actions started, newest first, a few agents a tick, while its projection meets target.
Capacity is counted once: an agent serving several queues counts in each as its share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from shared.core.erlang import Performance
from shared.core.figures import Agent
from shared.core.sizing import (
    WORKING,
    Floor,
    levers_for,
    live_below_target,
    meets,
    needed_agents,
    project,
)
from shared.core.tiers import QueueAlertState
from shared.messages.actions import Action, AnyCommand, Effect, Kind, Measured, Reason, at
from shared.messages.commands import (
    ActivateAgent,
    ReassignAgent,
    ReleaseAgent,
    SetCallback,
    SetOverflow,
)
from shared.queue_settings import Lever, QueueSettings

AGENT_LEVERS = ("standby", "cross_skill", "partner", "emergency")
REASSIGN_FOR_S = 3600.0  # `until` of a reassignment
RENEW_BEFORE_S = 300.0  # renewed this long before its `until`
UNWIND_PER_TICK = 3  # "a few agents a tick"
# a queue gives back only once it has been calm this long: a breach that clears while
# the calls are still high would otherwise release people to call them in again
GIVE_BACK_AFTER_S = 300.0
MEASURE_AFTER_S = 900.0
TRIGGERS = {
    "recall": "recall",
    "unwind": "calm",
    "renew": "renew",
    "hand": "hand",
    "undo": "undo",
}  # contract 6: measured effect fifteen minutes after sending


@dataclass(frozen=True)
class Step:
    """An action whose state changed this tick, and the commands to send now."""

    action: Action
    commands: list[AnyCommand]


@dataclass(frozen=True)
class Staffing:
    """contract 7 `staffing`: agents needed (sized as a plan sizes them), working agents
    by share of time, and agents lent and borrowed through open actions."""

    needed: int
    have: float
    lent: int
    borrowed: int

    def as_json(self) -> dict[str, float | int]:
        return {"needed": self.needed, "have": round(self.have, 2), "lent": self.lent,
                "borrowed": self.borrowed}  # fmt: skip


@dataclass(frozen=True)
class Move:
    """An agent the dispatcher brought to a queue and has not given back yet."""

    agent_id: str
    queue_id: str
    lever: Lever
    action_id: str
    home: str | None = None  # the donor of a reassignment
    until: float | None = None
    seq: int = 0


@dataclass
class Planner:
    """Keeps every action and what the dispatcher moved; each tick gives new steps."""

    actions: dict[str, Action] = field(default_factory=dict)
    moves: dict[str, Move] = field(default_factory=dict)  # by agent
    routing: dict[str, set[str]] = field(default_factory=dict)  # queue -> levers on
    called_in: dict[str, set[str]] = field(default_factory=dict)  # queue -> standby this surge
    stirred: dict[str, float] = field(default_factory=dict)  # queue -> last tick not calm
    floor: Floor | None = None
    _seq: int = 0

    # ---- reading -------------------------------------------------------------

    def open_actions(self, queue_id: str | None = None) -> list[Action]:
        return [
            a
            for a in self.actions.values()
            if a.is_open and (queue_id is None or a.queue_id == queue_id)
        ]

    def borrowed(self, queue_id: str) -> int:
        return sum(1 for m in self.moves.values() if m.queue_id == queue_id)

    def lent(self, queue_id: str) -> int:
        return sum(1 for m in self.moves.values() if m.home == queue_id)

    def staffing(self, floor: Floor) -> dict[str, Staffing]:
        """Each queue's staffing on this floor (the board's "needed / staffed", lent and
        borrowed); needed is the fewest agents meeting `sl_target` and `abandon_cap`."""
        out: dict[str, Staffing] = {}
        for queue_id, stats in floor.stats.items():
            have = floor.have(queue_id)
            ceiling = math.ceil(have) + stats.settings.max_borrowed
            out[queue_id] = Staffing(
                needed_agents(stats, ceiling, floor.pending(queue_id)),
                have, self.lent(queue_id), self.borrowed(queue_id),
            )  # fmt: skip
        return out

    # ---- the tick ------------------------------------------------------------

    def step(self, floor: Floor, mode_for: Callable[[str], str]) -> list[Step]:
        """Expire and measure, then one action at most per queue (see the module doc)."""
        self.floor = floor
        steps = self._expire(floor) + self._measure(floor)
        proposed = {a.queue_id for a in self.open_actions() if a.state == "proposed"}
        taken = set(self.moves)
        for queue_id in sorted(floor.stats):
            if queue_id in proposed:
                continue  # one proposal per queue: a lead has not answered the last one
            action = self._queue_action(floor, queue_id, taken)
            if action is None:
                continue
            auto = mode_for(queue_id) == "auto" or action.kind == "recall"
            steps.append(self._record(action, floor.now, auto))
        return steps

    def _queue_action(self, floor: Floor, queue_id: str, taken: set[str]) -> Action | None:
        stats = floor.stats[queue_id]
        s = stats.settings
        state = floor.states.get(queue_id, QueueAlertState())
        commands: list[AnyCommand] = []
        gained = 0.0
        kind: Kind = "renew"
        levers: list[Lever] = []
        aid = self._action_id(queue_id, floor.now)
        # give back first: this queue's lent agents when it falls below target, or is
        # about to (its projection with the agents it has left misses the target)
        if self.lent(queue_id) and (
            live_below_target(stats)
            or not meets(project(stats, floor.have(queue_id), floor.pending(queue_id)), s)
        ):
            recalled = self._recall(queue_id, aid, s.moves_per_tick)
            commands += recalled
            gained += len(recalled)
            kind = "recall" if recalled else kind
        calm = state.tier == 0 and not state.breach
        if not calm:
            self.stirred[queue_id] = floor.now
            added, used = self._plan(floor, queue_id, state, aid, taken, s.moves_per_tick)
            commands += added
            gained += sum(1 for c in added if not isinstance(c, SetCallback | SetOverflow))
            levers = used
            kind = "plan" if added else kind
        elif (
            floor.pending(queue_id) == 0
            and floor.now - self.stirred.get(queue_id, -math.inf) >= GIVE_BACK_AFTER_S
        ):
            released = self._unwind(floor, queue_id, aid)
            commands += released
            gained -= sum(1 for c in released if isinstance(c, ReleaseAgent))
            kind = "unwind" if released and kind == "renew" else kind
            if not released and not any(m.queue_id == queue_id for m in self.moves.values()):
                self.called_in.pop(queue_id, None)  # the surge is over: a new one may call again
        commands += self._overflow_check(floor, queue_id, aid)
        commands += self._renew(floor, queue_id, aid, {c.agent_id for c in commands
                                                       if isinstance(c, ReleaseAgent)})  # fmt: skip
        if not commands:
            return None
        return self._action(floor, queue_id, aid, kind, levers, state, commands, gained)

    # ---- levers --------------------------------------------------------------

    def _plan(
        self, floor: Floor, queue_id: str, state: QueueAlertState, aid: str, taken: set[str],
        budget: int,
    ) -> tuple[list[AnyCommand], list[Lever]]:  # fmt: skip
        stats = floor.stats[queue_id]
        s = stats.settings
        have = floor.have(queue_id) + self._arriving(floor, queue_id)
        pending = floor.pending(queue_id)
        need = needed_agents(stats, math.ceil(have) + s.max_borrowed, pending)
        gap = math.ceil(need - have - 1e-9)
        room = min(gap, budget, s.max_borrowed - self.borrowed(queue_id))
        out: list[AnyCommand] = []
        used: list[Lever] = []
        for lever in levers_for(s, state):
            before = len(out)
            if lever in AGENT_LEVERS and room > 0:
                picked = self._pick(floor, queue_id, lever, taken, room)
                for agent, donor in picked:
                    out.append(self._bring(floor.now, queue_id, lever, agent, donor, aid, len(out)))
                    taken.add(agent.agent_id)
                room -= len(picked)
            elif lever == "callback" and "callback" not in self.routing.get(queue_id, set()):
                out.append(SetCallback(command_id=f"{aid}:{len(out)}", action_id=aid,
                                       queue_id=queue_id, enabled=True,
                                       offer_after_s=s.sl_threshold_s))  # fmt: skip
            elif lever == "overflow" and s.overflow_to is not None:
                if "overflow" not in self.routing.get(queue_id, set()):
                    if self._overflow_fits(floor, queue_id):
                        out.append(self._set_overflow(queue_id, s, aid, len(out), True))
            if len(out) > before:
                used.append(lever)
        return out, used

    def _pick(
        self, floor: Floor, queue_id: str, lever: Lever, taken: set[str], room: int
    ) -> list[tuple[Agent, str | None]]:
        """Agents the lever may bring, best first, within its own bound."""
        if lever == "cross_skill":
            return self._donated(floor, queue_id, taken, room)
        pool = lever
        if lever == "standby":
            staffed = sum(
                1 for a in floor.agents.values() if queue_id in a.serving and a.state in WORKING
            )
            cap = math.floor(floor.stats[queue_id].settings.standby_share * staffed + 1e-9)
            called = sum(1 for m in self.moves.values()
                         if m.queue_id == queue_id and m.lever == "standby")  # fmt: skip
            room = min(room, cap - called)
        once = set().union(*self.called_in.values())  # never twice in one surge
        free = [
            a
            for a in floor.agents.values()
            if a.pool == pool
            and queue_id in a.skills
            and a.agent_id not in taken
            and a.state not in WORKING
            and not (lever == "standby" and a.agent_id in once)
        ]
        free.sort(key=lambda a: (-a.skills[queue_id], a.agent_id))
        return [(a, None) for a in free[: max(0, room)]]

    def _donated(
        self, floor: Floor, queue_id: str, taken: set[str], room: int
    ) -> list[tuple[Agent, str | None]]:
        """Idle cross-skilled agents of donors with headroom, most headroom first."""
        staff = {q: floor.have(q) for q in floor.stats}
        lent = {q: self.lent(q) for q in floor.stats}
        out: list[tuple[Agent, str | None]] = []
        known: dict[str, float | None] = {}
        while len(out) < room:
            best: tuple[float, int, str, Agent, str] | None = None
            for agent in floor.agents.values():
                if agent.agent_id in taken or agent.state != "available":
                    continue
                if queue_id in agent.serving or queue_id not in agent.skills:
                    continue
                for donor in sorted(agent.serving):
                    if donor not in known:
                        known[donor] = self._headroom(floor, donor, staff, lent)
                    headroom = known[donor]
                    if headroom is None:
                        continue
                    key = (-headroom, -agent.skills[queue_id], agent.agent_id, agent, donor)
                    if best is None or key[:3] < best[:3]:
                        best = key
                    break
            if best is None:
                break
            _, _, _, agent, donor = best
            out.append((agent, donor))
            taken.add(agent.agent_id)
            staff[donor] -= floor.share(agent, donor)
            lent[donor] += 1
            known.pop(donor, None)
        return out

    def _headroom(
        self, floor: Floor, donor: str, staff: Mapping[str, float], lent: Mapping[str, int]
    ) -> float | None:
        """How far above target the donor stays with one agent fewer; None: it may not lend."""
        stats = floor.stats.get(donor)
        state = floor.states.get(donor, QueueAlertState())
        if stats is None or state.tier > 0 or state.breach or live_below_target(stats):
            return None
        s = stats.settings
        if staff[donor] < 2:
            return None  # never its last agent
        if lent[donor] + 1 > s.max_lent_share * (staff[donor] + lent[donor]) + 1e-9:
            return None
        after = project(stats, staff[donor] - 1, floor.pending(donor))
        if not meets(after, s):
            return None
        return after.answer_rate - s.sl_target

    def _bring(
        self, now: float, queue_id: str, lever: Lever, agent: Agent, donor: str | None,
        aid: str, i: int,
    ) -> AnyCommand:  # fmt: skip
        if donor is not None:
            return ReassignAgent(command_id=f"{aid}:{i}", action_id=aid, agent_id=agent.agent_id,
                                 from_queue=donor, to_queue=queue_id,
                                 until=at(now + REASSIGN_FOR_S))  # fmt: skip
        pool = "standby" if lever == "standby" else lever
        assert pool in ("standby", "partner", "emergency")  # noqa: S101  # AGENT_LEVERS
        return ActivateAgent(command_id=f"{aid}:{i}", action_id=aid, agent_id=agent.agent_id,
                             queue_id=queue_id, pool=pool)  # fmt: skip

    def _overflow_fits(self, floor: Floor, queue_id: str, keeping: bool = False) -> bool:
        """contract 6: the target keeps its own target with this queue's excess added.

        To start, the target must meet its target with one agent fewer (the room the
        overflowed callers take); to keep going, it must not be in trouble itself (so
        that overflow does not flap on and off from one tick to the next)."""
        s = floor.stats[queue_id].settings
        target = s.overflow_to or ""
        if target.startswith("site:"):
            return True  # the same queue at another site: that site's floor is not seen here
        t_stats = floor.stats.get(target)
        if t_stats is None:
            return False
        t_state = floor.states.get(target, QueueAlertState())
        if t_state.tier > 0 or t_state.breach or live_below_target(t_stats):
            return False
        if keeping:
            return True
        return meets(
            project(t_stats, floor.have(target) - 1, floor.pending(target)), t_stats.settings
        )

    def _set_overflow(
        self, queue_id: str, s: QueueSettings, aid: str, i: int, enabled: bool
    ) -> SetOverflow:
        target = s.overflow_to or ""
        site = target.removeprefix("site:") if target.startswith("site:") else None
        return SetOverflow(command_id=f"{aid}:{i}", action_id=aid, queue_id=queue_id,
                           to_queue_id=None if site else target, to_site=site, enabled=enabled,
                           after_s=s.sl_threshold_s)  # fmt: skip

    def _overflow_check(self, floor: Floor, queue_id: str, aid: str) -> list[AnyCommand]:
        """Overflow stops as soon as its target would miss its own target."""
        if "overflow" not in self.routing.get(queue_id, set()):
            return []
        if self._overflow_fits(floor, queue_id, keeping=True):
            return []
        s = floor.stats[queue_id].settings
        return [self._set_overflow(queue_id, s, f"{aid}", 90, False)]

    # ---- giving back ---------------------------------------------------------

    def _recall(self, home: str, aid: str, budget: int) -> list[AnyCommand]:
        lent = sorted((m for m in self.moves.values() if m.home == home), key=lambda m: -m.seq)
        return [
            ReleaseAgent(
                command_id=f"{aid}:r{i}", action_id=aid, agent_id=m.agent_id, queue_id=m.queue_id
            )  # fmt: skip
            for i, m in enumerate(lent[:budget])
        ]

    def _unwind(self, floor: Floor, queue_id: str, aid: str) -> list[AnyCommand]:
        """Newest first: routing off, then agents while the projection meets target."""
        out: list[AnyCommand] = []
        s = floor.stats[queue_id].settings
        on = self.routing.get(queue_id, set())
        if "overflow" in on:
            out.append(self._set_overflow(queue_id, s, aid, 80, False))
        if "callback" in on:
            out.append(SetCallback(command_id=f"{aid}:81", action_id=aid, queue_id=queue_id,
                                   enabled=False))  # fmt: skip
        mine = sorted((m for m in self.moves.values() if m.queue_id == queue_id),
                      key=lambda m: -m.seq)  # fmt: skip
        have = floor.have(queue_id) + self._arriving(floor, queue_id)
        stats = floor.stats[queue_id]
        for m in mine[: min(UNWIND_PER_TICK, s.moves_per_tick)]:
            agent = floor.agents.get(m.agent_id)
            share = floor.share(agent, queue_id) if agent is not None else 1.0
            if not meets(project(stats, have - share), s):
                break
            have -= share
            out.append(ReleaseAgent(command_id=f"{aid}:u{len(out)}", action_id=aid,
                                    agent_id=m.agent_id, queue_id=queue_id))  # fmt: skip
        return out

    def _renew(self, floor: Floor, queue_id: str, aid: str, released: set[str]) -> list[AnyCommand]:
        out: list[AnyCommand] = []
        for m in sorted(self.moves.values(), key=lambda m: m.seq):
            if m.queue_id != queue_id or m.home is None or m.until is None:
                continue
            if m.agent_id in released or m.until - floor.now > RENEW_BEFORE_S:
                continue
            out.append(ReassignAgent(command_id=f"{aid}:n{len(out)}", action_id=aid,
                                     agent_id=m.agent_id, from_queue=m.home, to_queue=queue_id,
                                     until=at(floor.now + REASSIGN_FOR_S)))  # fmt: skip
        return out

    def _arriving(self, floor: Floor, queue_id: str) -> float:
        """Agents sent for whose move the floor does not show yet (counted once)."""
        return sum(
            1.0
            for m in self.moves.values()
            if m.queue_id == queue_id
            and (
                (a := floor.agents.get(m.agent_id)) is None
                or queue_id not in a.serving
                or a.state not in WORKING
            )
        )

    # ---- actions -------------------------------------------------------------

    def _action_id(self, queue_id: str, now: float) -> str:
        self._seq += 1
        return f"{queue_id}:{int(now * 1000)}:{self._seq}"

    def _action(
        self, floor: Floor, queue_id: str, aid: str, kind: Kind, levers: list[Lever],
        state: QueueAlertState, commands: list[AnyCommand], gained: float,
    ) -> Action:  # fmt: skip
        stats = floor.stats[queue_id]
        s = stats.settings
        pending = floor.pending(queue_id)
        have = floor.have(queue_id) + self._arriving(floor, queue_id)
        before, after = project(stats, have, pending), project(stats, have + gained, pending)
        trigger = TRIGGERS.get(kind) or (str(state.tier) if state.tier else "sl_breach")
        live = stats.windows[s.primary_window_s].answer_rate_live
        reason = Reason(
            trigger=trigger,
            alert_id=state.surge_id or state.breach_id, tier=state.tier,
            ratio=floor.ratios.get(queue_id), answer_rate_live=live,
            arrival_rate_per_s=stats.surge_arrivals / s.surge_window_s,
            aht_s=stats.windows[s.primary_window_s].aht_s, patience_s=stats.patience_s,
            agents_needed=needed_agents(stats, math.ceil(have) + s.max_borrowed, pending),
            agents_staffed=round(have, 3), callbacks_pending=pending,
            text=_reason_text(kind, state, floor.ratios.get(queue_id), live),
        )  # fmt: skip
        return Action(
            action_id=aid, queue_id=queue_id, kind=kind, levers=levers, reason=reason,
            commands=commands, undo=_undo_of(aid, commands),
            projected=_effect(before, after, have, gained),
            state="proposed", created_at=at(floor.now), changed_by="dispatcher",
            changed_at=at(floor.now), history=[],
        ).moved("proposed", "dispatcher", floor.now)  # fmt: skip

    def _record(self, action: Action, now: float, send: bool, by: str = "dispatcher") -> Step:
        if send:
            action = action.moved("sent", by, now)
            self._apply(action.commands, now)
        else:  # proposed: its agents are held for it
            self._hold(action)
        self.actions[action.action_id] = action
        return Step(action, list(action.commands) if send else [])

    def _hold(self, action: Action) -> None:
        for c in action.commands:
            if isinstance(c, ReassignAgent | ActivateAgent):
                self._apply([c], math.nan)

    def _apply(self, commands: Iterable[AnyCommand], now: float) -> None:
        """What the sent commands change in the planner's own book."""
        for c in commands:
            match c:
                case ReassignAgent():
                    old = self.moves.get(c.agent_id)
                    self._seq += 1
                    self.moves[c.agent_id] = Move(c.agent_id, c.to_queue, "cross_skill",
                                                  c.action_id, c.from_queue, c.until.timestamp(),
                                                  old.seq if old else self._seq)  # fmt: skip
                case ActivateAgent():
                    self._seq += 1
                    lever: Lever = (
                        c.pool if c.pool == "partner" or c.pool == "emergency" else "standby"
                    )
                    self.moves[c.agent_id] = Move(c.agent_id, c.queue_id, lever, c.action_id,
                                                  seq=self._seq)  # fmt: skip
                    if lever == "standby":
                        self.called_in.setdefault(c.queue_id, set()).add(c.agent_id)
                case ReleaseAgent():
                    self.moves.pop(c.agent_id, None)
                case SetCallback():
                    self._route(c.queue_id, "callback", c.enabled)
                case SetOverflow():
                    self._route(c.queue_id, "overflow", c.enabled)

    def _route(self, queue_id: str, lever: str, on: bool) -> None:
        levers = self.routing.setdefault(queue_id, set())
        if on:
            levers.add(lever)
        else:
            levers.discard(lever)

    def _release_held(self, action: Action) -> None:
        for c in action.commands:
            if isinstance(c, ReassignAgent | ActivateAgent):
                move = self.moves.get(c.agent_id)
                if move is not None and move.action_id == action.action_id:
                    del self.moves[c.agent_id]

    def _expire(self, floor: Floor) -> list[Step]:
        out = []
        for action in list(self.actions.values()):
            stats = floor.stats.get(action.queue_id)
            within = stats.settings.approve_within_s if stats else 300.0
            if action.state == "proposed" and floor.now - action.created_at.timestamp() >= within:
                self._release_held(action)
                expired = action.moved("expired", "dispatcher", floor.now)
                self.actions[action.action_id] = expired
                out.append(Step(expired, []))
        return out

    def _measure(self, floor: Floor) -> list[Step]:
        """contract 6: the queue's answer rate over the 15 minutes after sending."""
        out = []
        for action in list(self.actions.values()):
            if action.sent_at is None or action.measured is not None:
                continue
            stats = floor.stats.get(action.queue_id)
            if stats is None or floor.now - action.sent_at.timestamp() < MEASURE_AFTER_S:
                continue
            window = stats.windows.get(900) or stats.windows[stats.settings.primary_window_s]
            measured = Measured(at=at(floor.now), answer_rate=window.answer_rate,
                                projected=action.projected.answer_rate_after)  # fmt: skip
            done = action.model_copy(update={"measured": measured})
            self.actions[action.action_id] = done
            out.append(Step(done, []))
        return out

    def restore(self, actions: Iterable[Action]) -> None:
        """Rebuild the book from stored actions (a restart), oldest first."""
        for action in sorted(actions, key=lambda a: (a.created_at, a.action_id)):
            self.actions[action.action_id] = action
            if action.kind == "plan":  # planned only while the queue was not calm
                at = action.created_at.timestamp()
                self.stirred[action.queue_id] = max(self.stirred.get(action.queue_id, at), at)
            if action.state == "proposed":
                self._hold(action)
            elif action.sent_at is not None:
                self._apply(action.commands, action.sent_at.timestamp())
                if action.state == "reverted":
                    self._apply(action.undo, action.changed_at.timestamp())

    # ---- leads ---------------------------------------------------------------

    def decide(self, action_id: str, verdict: str, by: str, now: float) -> Step | None:
        """A lead's approval (the commands are sent) or rejection of a proposal."""
        action = self.actions.get(action_id)
        if action is None or action.state != "proposed":
            return None
        if verdict == "approved":
            self._release_held(action)
            return self._record(action.moved("approved", by, now), now, True)
        self._release_held(action)
        rejected = action.moved("rejected", by, now)
        self.actions[action_id] = rejected
        return Step(rejected, [])

    def undo(self, action_id: str, by: str, now: float) -> Step | None:
        """Reverse a sent action: its agents go back, its routing is turned off."""
        action = self.actions.get(action_id)
        if action is None or action.state != "sent" or not action.undo:
            return None
        still = [
            c for c in action.undo if not isinstance(c, ReleaseAgent) or self._held_by(c, action_id)
        ]
        reverted = action.moved("reverted", by, now)
        self._apply(still, now)
        self.actions[action_id] = reverted
        return Step(reverted, still)

    def _held_by(self, release: ReleaseAgent, action_id: str) -> bool:
        move = self.moves.get(release.agent_id)
        return move is not None and move.action_id == action_id

    def hand(self, lever: Lever, queue_id: str, count: int, by: str) -> Step | None:
        """A lead's own action: one lever, `count` agents, bounded like the planner's own."""
        floor = self.floor
        if floor is None or queue_id not in floor.stats:
            return None
        s = floor.stats[queue_id].settings
        aid = self._action_id(queue_id, floor.now)
        taken = set(self.moves)
        budget = min(count, s.moves_per_tick, s.max_borrowed - self.borrowed(queue_id))
        commands: list[AnyCommand] = []
        if lever in AGENT_LEVERS:
            for agent, donor in self._pick(floor, queue_id, lever, taken, max(0, budget)):
                commands.append(
                    self._bring(floor.now, queue_id, lever, agent, donor, aid, len(commands))
                )
        elif lever == "callback" and "callback" not in self.routing.get(queue_id, set()):
            commands.append(SetCallback(command_id=f"{aid}:0", action_id=aid, queue_id=queue_id,
                                        enabled=True, offer_after_s=s.sl_threshold_s))  # fmt: skip
        elif lever == "overflow" and s.overflow_to and self._overflow_fits(floor, queue_id):
            commands.append(self._set_overflow(queue_id, s, aid, 0, True))
        if not commands:
            return None
        state = floor.states.get(queue_id, QueueAlertState())
        gained = sum(1.0 for c in commands if not isinstance(c, SetCallback | SetOverflow))
        action = self._action(floor, queue_id, aid, "hand", [lever], state, commands, gained)
        return self._record(action.moved("approved", by, floor.now), floor.now, True, by)


def _undo_of(aid: str, commands: list[AnyCommand]) -> list[AnyCommand]:
    out: list[AnyCommand] = []
    for i, c in enumerate(reversed(commands)):
        cid = f"{aid}:undo:{i}"
        match c:
            case ReassignAgent():
                out.append(ReleaseAgent(command_id=cid, action_id=aid, agent_id=c.agent_id,
                                        queue_id=c.to_queue))  # fmt: skip
            case ActivateAgent():
                out.append(ReleaseAgent(command_id=cid, action_id=aid, agent_id=c.agent_id,
                                        queue_id=c.queue_id))  # fmt: skip
            case SetCallback() if c.enabled:
                out.append(c.model_copy(update={"command_id": cid, "enabled": False}))
            case SetOverflow() if c.enabled:
                out.append(c.model_copy(update={"command_id": cid, "enabled": False}))
            case _:
                pass  # a release or a switch-off has nothing to undo
    return out


def _effect(before: Performance, after: Performance, have: float, gained: float) -> Effect:
    return Effect(
        agents_before=round(have, 3), agents_after=round(have + gained, 3),
        answer_rate_before=before.answer_rate, answer_rate_after=after.answer_rate,
        abandon_rate_before=before.abandon_rate, abandon_rate_after=after.abandon_rate,
    )  # fmt: skip


def _reason_text(
    kind: Kind, state: QueueAlertState, ratio: float | None, live: float | None
) -> str:
    if kind == "recall":
        head = "below target: lent agents recalled"
    elif kind == "unwind":
        head = "calm: giving agents back"
    elif kind == "renew":
        head = "reassignments renewed"
    elif kind == "hand":
        head = "by hand"
    else:
        head = f"tier {state.tier}" if state.tier else "SL breach"
    parts = [head]
    if ratio is not None:
        parts.append(f"{100 * ratio:.0f}% of expected")
    if live is not None:
        parts.append(f"answer rate {100 * live:.0f}%")
    return ", ".join(parts)
