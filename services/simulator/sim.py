"""A contact centre in software: a pure discrete-event simulator of an ACD.

Time is seconds since the run's start; `t0` (epoch seconds) stamps the events it emits.
Calls arrive by a time-varying Poisson process, are routed to the longest-idle
available agent of the highest skill level among those serving the queue, or wait in
FIFO order; callers give up after an exponential patience (a share of them within
5 s); handle times are lognormal. It obeys the contract's commands as an ACD would, and
serves the callbacks it promised: an agent calls the caller back (handle time like a
call), and some find no one home.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from services.simulator.scenario import QueueSpec, Scenario
from shared.messages.commands import (
    ActivateAgent,
    ReassignAgent,
    ReleaseAgent,
    SetCallback,
    SetOverflow,
)
from shared.timefmt import iso_ms

CALLBACK_IVR_S = 15.0  # time to hear and accept the callback offer
CALLBACK_NO_ANSWER = 0.15  # share of callbacks that find no one home
CALLBACK_RING_S = 30.0  # an unanswered callback costs the agent this long
CALLBACK_DUE_S = math.inf  # callbacks wait for an agent with no live call waiting
Command = ReassignAgent | ActivateAgent | ReleaseAgent | SetCallback | SetOverflow


@dataclass
class SimCall:
    call_id: str
    queue_id: str
    arrived: float  # entered the current queue
    patience_at: float  # when the caller gives up
    done: bool = False


@dataclass
class SimAgent:
    agent_id: str
    skills: dict[str, int]
    serving: set[str]
    home_serving: frozenset[str]
    state: str
    reason: str | None
    home_state: str
    pool: str = "regular"
    site: str | None = None
    idle_since: float = 0.0
    release_after_call: bool = False


@dataclass
class QueueRouting:
    """What commands changed about a queue."""

    callback_after_s: float | None = None
    overflow_to: str | None = None
    overflow_after_s: float = 0.0


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    kind: str = field(compare=False)
    data: Any = field(compare=False)  # Any: the event's payload, by kind


class Simulator:
    """Run with `advance(t)`; it returns the contract events emitted up to t."""

    def __init__(self, scenario: Scenario, seed: int, t0: float, source: str = "sim") -> None:
        self.scenario = scenario
        self.rng = random.Random(seed)  # noqa: S311  # a simulation, not a secret
        self.t0 = t0
        self.now = 0.0
        self.source = source
        self.specs: dict[str, QueueSpec] = {q.queue_id: q for q in scenario.queues}
        self.waiting: dict[str, deque[SimCall]] = {q: deque() for q in self.specs}
        self.routing: dict[str, QueueRouting] = {q: QueueRouting() for q in self.specs}
        # callbacks owed per queue, oldest first: (call id, when requested)
        self.callbacks: dict[str, deque[tuple[str, float]]] = {q: deque() for q in self.specs}
        self.agents: dict[str, SimAgent] = {}
        self.out: list[dict[str, Any]] = []
        self.done_commands: set[str] = set()
        self._heap: list[_Due] = []
        self._seq = 0
        self._ids = 0
        self._calls = 0
        for group in scenario.agents:
            for i in range(group.count):
                agent_id = f"{group.prefix}{i + 1:02d}"
                serving = set(
                    group.serving if group.serving is not None else list(group.skills)[:1]
                )
                self.agents[agent_id] = SimAgent(
                    agent_id, dict(group.skills), serving, frozenset(serving),
                    group.state, group.reason, group.state, group.agent_pool, group.site,
                )  # fmt: skip
        for agent in self.agents.values():
            self._emit_skills(agent)
            self._emit_state(agent)
        for queue_id in self.specs:
            self._next_arrival(queue_id, 0.0)

    # ---- time ----------------------------------------------------------------

    def advance(self, until: float) -> list[dict[str, Any]]:
        """Process everything due up to `until`; return the events emitted meanwhile."""
        while self._heap and self._heap[0].at <= until:
            due = heapq.heappop(self._heap)
            self.now = due.at
            getattr(self, f"_on_{due.kind}")(due.data)
        self.now = max(self.now, until)
        out, self.out = self.out, []
        return out

    def _at(self, at: float, kind: str, data: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, _Due(at, self._seq, kind, data))

    # ---- emitting ------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:  # Any: event fields
        self._ids += 1
        event = {
            "event_id": f"{self.source}-{self._ids}",
            "type": kind,
            "ts": iso_ms(self.t0 + self.now),
        }
        event.update(fields)
        if "site" not in event:
            site = self._site_of(fields)
            if site is not None:
                event["site"] = site
        self.out.append(event)

    def _site_of(self, fields: dict[str, Any]) -> str | None:
        if "agent_id" in fields and "queue_id" not in fields:
            agent = self.agents.get(str(fields["agent_id"]))
            return agent.site if agent is not None else None
        spec = self.specs.get(str(fields.get("queue_id", "")))
        return spec.site if spec is not None else None

    def _emit_state(self, agent: SimAgent) -> None:
        extra = {"reason": agent.reason} if agent.reason else {}
        self._emit("agent.state", agent_id=agent.agent_id, state=agent.state, **extra)

    def _emit_skills(self, agent: SimAgent) -> None:
        skills = [{"queue_id": q, "level": lvl} for q, lvl in sorted(agent.skills.items())]
        self._emit(
            "agent.skills", agent_id=agent.agent_id, skills=skills,
            serving=sorted(agent.serving), pool=agent.pool,
        )  # fmt: skip

    # ---- arrivals ------------------------------------------------------------

    def _next_arrival(self, queue_id: str, after: float) -> None:
        spec = self.specs[queue_id]
        peak = spec.calls_per_min / 60.0 * self.scenario.max_multiplier(queue_id)
        if peak <= 0:
            return
        t = after
        while True:  # thinning: candidates at the peak rate, kept in proportion
            t += self.rng.expovariate(peak)
            if t > self.scenario.duration_s:
                return
            rate = spec.calls_per_min / 60.0 * self.scenario.multiplier(queue_id, t)
            if self.rng.random() * peak <= rate:
                self._at(t, "arrival", queue_id)
                return

    def _on_arrival(self, queue_id: str) -> None:
        self._next_arrival(queue_id, self.now)
        self._calls += 1
        spec = self.specs[queue_id]
        if self.rng.random() < spec.short_abandon_share:
            patience = self.rng.uniform(0.5, 5.0)
        else:
            patience = self.rng.expovariate(1.0 / spec.patience_s)
        call = SimCall(f"{self.source}-c{self._calls}", queue_id, self.now, self.now + patience)
        self._enqueue(call, offer_callback=True)

    def _enqueue(self, call: SimCall, offer_callback: bool) -> None:
        queue_id = call.queue_id
        self._emit("call.queued", call_id=call.call_id, queue_id=queue_id)
        agent = self._idle_agent_for(queue_id)
        if agent is not None:
            self._answer(agent, call)
            return
        routing = self.routing[queue_id]
        if offer_callback and routing.callback_after_s is not None:
            if self._expected_wait(queue_id) > routing.callback_after_s:
                if self.rng.random() < self.specs[queue_id].callback_accept:
                    self._at(
                        self.now + min(CALLBACK_IVR_S, call.patience_at - self.now),
                        "callback",
                        call,
                    )
        self.waiting[queue_id].append(call)
        self._at(call.patience_at, "patience", call)
        if routing.overflow_to is not None:
            self._at(self.now + routing.overflow_after_s, "overflow", call)

    def _expected_wait(self, queue_id: str) -> float:
        staffed = sum(
            1
            for a in self.agents.values()
            if queue_id in a.serving and a.state in ("available", "busy", "wrap_up")
        )
        return (len(self.waiting[queue_id]) + 1) * self.specs[queue_id].aht_s / max(1, staffed)

    def _leave(self, call: SimCall) -> bool:
        """Take a waiting call out of its queue; False when it is no longer waiting."""
        if call.done:
            return False
        call.done = True
        self.waiting[call.queue_id].remove(call)
        return True

    def _on_patience(self, call: SimCall) -> None:
        if self._leave(call):
            self._emit(
                "call.abandoned",
                call_id=call.call_id,
                queue_id=call.queue_id,
                wait_s=round(self.now - call.arrived, 3),
            )

    def _on_callback(self, call: SimCall) -> None:
        if self._leave(call):
            self._emit(
                "call.callback_requested",
                call_id=call.call_id,
                queue_id=call.queue_id,
                wait_s=round(self.now - call.arrived, 3),
            )
            self.callbacks[call.queue_id].append((call.call_id, self.now))

    def _on_overflow(self, call: SimCall) -> None:
        target = self.routing[call.queue_id].overflow_to
        if target is None or target not in self.specs or not self._leave(call):
            return
        self._emit(
            "call.overflowed",
            call_id=call.call_id,
            queue_id=call.queue_id,
            to_queue_id=target,
            wait_s=round(self.now - call.arrived, 3),
        )
        moved = SimCall(call.call_id, target, self.now, call.patience_at)
        self._enqueue(moved, offer_callback=False)

    # ---- agents --------------------------------------------------------------

    def _idle_agent_for(self, queue_id: str) -> SimAgent | None:
        best: SimAgent | None = None
        for agent in self.agents.values():
            if agent.state != "available" or queue_id not in agent.serving:
                continue
            key = (-agent.skills.get(queue_id, 0), agent.idle_since)
            if best is None or key < (-best.skills.get(queue_id, 0), best.idle_since):
                best = agent
        return best

    def _answer(self, agent: SimAgent, call: SimCall) -> None:
        call.done = True
        spec = self.specs[call.queue_id]
        self._emit(
            "call.answered",
            call_id=call.call_id,
            queue_id=call.queue_id,
            agent_id=agent.agent_id,
            wait_s=round(self.now - call.arrived, 3),
        )
        agent.state, agent.reason = "busy", None
        self._emit_state(agent)
        talk = self._duration(spec, spec.talk_s)
        hold = self._duration(spec, spec.hold_s) if spec.hold_s else 0.0
        self._at(self.now + talk + hold, "talk_end", (agent, call, talk, hold))

    def _duration(self, spec: QueueSpec, mean: float) -> float:
        if spec.handle == "exponential":
            return self.rng.expovariate(1.0 / mean)
        return self._lognormal(mean)

    def _lognormal(self, mean: float, sigma: float = 0.6) -> float:
        mu = math.log(mean) - sigma * sigma / 2
        return self.rng.lognormvariate(mu, sigma)

    def _on_talk_end(self, data: tuple[SimAgent, SimCall | None, float, float]) -> None:
        agent, call, talk, hold = data
        agent.state = "wrap_up"
        self._emit_state(agent)
        queue_id = call.queue_id if call is not None else None
        wrap = (
            self._lognormal(self.specs[queue_id].wrap_s)
            if queue_id and self.specs[queue_id].wrap_s
            else 0.0
        )
        self._at(self.now + wrap, "wrap_end", (agent, call, talk, hold, wrap))

    def _on_wrap_end(self, data: tuple[SimAgent, SimCall | None, float, float, float]) -> None:
        agent, call, talk, hold, wrap = data
        if call is not None:
            self._emit(
                "call.ended", call_id=call.call_id, queue_id=call.queue_id, agent_id=agent.agent_id,
                talk_s=round(talk, 3), hold_s=round(hold, 3), wrap_s=round(wrap, 3),
            )  # fmt: skip
        if agent.release_after_call:
            self._go_home(agent)
            return
        self._become_available(agent)

    def _become_available(self, agent: SimAgent) -> None:
        agent.state, agent.reason, agent.idle_since = "available", None, self.now
        self._emit_state(agent)
        self._pick_work(agent)

    def _pick_work(self, agent: SimAgent) -> None:
        """A callback that is due; else the oldest waiting call; else any callback owed."""
        due = self._owed_callback(agent, self.now - CALLBACK_DUE_S)
        if due is None:
            oldest: SimCall | None = None
            for queue_id in agent.serving:
                queue = self.waiting.get(queue_id)
                if queue and (oldest is None or queue[0].arrived < oldest.arrived):
                    oldest = queue[0]
            if oldest is not None:
                self.waiting[oldest.queue_id].popleft()  # the oldest is at the head
                self._answer(agent, oldest)
                return
            due = self._owed_callback(agent, math.inf)
        if due is not None:
            self._call_back(agent, due)

    def _owed_callback(self, agent: SimAgent, requested_by: float) -> str | None:
        """The agent's queue owing the oldest callback requested by then, if any."""
        best: tuple[float, str] | None = None
        for queue_id in sorted(agent.serving):
            owed = self.callbacks.get(queue_id)
            if owed and owed[0][1] <= requested_by and (best is None or owed[0][1] < best[0]):
                best = (owed[0][1], queue_id)
        return best[1] if best is not None else None

    def _call_back(self, agent: SimAgent, queue_id: str) -> None:
        """contract 1: the agent calls the caller back; a connected callback is a call."""
        call_id, requested = self.callbacks[queue_id].popleft()
        agent.state, agent.reason = "busy", None
        self._emit_state(agent)
        wait = round(self.now - requested, 3)
        if self.rng.random() < CALLBACK_NO_ANSWER:
            self._emit(
                "call.callback_completed", call_id=call_id, queue_id=queue_id,
                agent_id=agent.agent_id, outcome="no_answer", wait_s=wait,
            )  # fmt: skip
            self._at(self.now + CALLBACK_RING_S, "ring_end", agent)
            return
        self._emit(
            "call.callback_completed", call_id=call_id, queue_id=queue_id,
            agent_id=agent.agent_id, outcome="connected", wait_s=wait,
        )  # fmt: skip
        spec = self.specs[queue_id]
        call = SimCall(call_id, queue_id, self.now, math.inf, done=True)
        talk = self._duration(spec, spec.talk_s)
        hold = self._duration(spec, spec.hold_s) if spec.hold_s else 0.0
        self._at(self.now + talk + hold, "talk_end", (agent, call, talk, hold))

    def _on_ring_end(self, agent: SimAgent) -> None:
        if agent.release_after_call:
            self._go_home(agent)
            return
        self._become_available(agent)

    def callbacks_pending(self, queue_id: str) -> int:
        return len(self.callbacks.get(queue_id, ()))

    def _go_home(self, agent: SimAgent) -> None:
        agent.release_after_call = False
        agent.serving = set(agent.home_serving)
        self._emit_skills(agent)
        if agent.home_state == "available":
            self._become_available(agent)
        else:
            agent.state, agent.reason = (
                agent.home_state,
                ("standby" if agent.home_state == "not_ready" else None),
            )
            self._emit_state(agent)

    # ---- commands (contract 6) -----------------------------------------------

    def apply(self, command: Command) -> bool:
        """Carry out one command now; a repeated `command_id` is ignored (False)."""
        if command.command_id in self.done_commands:
            return False
        self.done_commands.add(command.command_id)
        match command:
            case ReassignAgent(agent_id=agent_id, from_queue=from_queue, to_queue=to_queue):
                agent = self.agents.get(agent_id)
                if agent is None:
                    return False
                agent.release_after_call = False
                agent.serving.discard(from_queue)
                agent.serving.add(to_queue)
                self._emit_skills(agent)
                if agent.state == "available":
                    self._pick_work(agent)
            case ActivateAgent(agent_id=agent_id, queue_id=queue_id):
                agent = self.agents.get(agent_id)
                if agent is None:
                    return False
                agent.release_after_call = False
                agent.serving.add(queue_id)
                self._emit_skills(agent)
                if agent.state in ("not_ready", "offline"):
                    self._become_available(agent)
            case ReleaseAgent(agent_id=agent_id):
                agent = self.agents.get(agent_id)
                if agent is None:
                    return False
                if agent.state in ("busy", "wrap_up"):
                    agent.release_after_call = True  # finish the call in hand first
                else:
                    self._go_home(agent)
            case SetCallback(queue_id=queue_id, enabled=enabled, offer_after_s=after):
                if queue_id not in self.routing:
                    return False
                self.routing[queue_id].callback_after_s = (after or 0.0) if enabled else None
            case SetOverflow(queue_id=queue_id, enabled=enabled, after_s=after):
                target = self._overflow_target(command)
                if queue_id not in self.routing or (enabled and target is None):
                    return False
                routing = self.routing[queue_id]
                routing.overflow_to = target if enabled else None
                routing.overflow_after_s = 60.0 if after is None else after
                for call in self.waiting[queue_id] if enabled else ():
                    due = max(self.now, call.arrived + routing.overflow_after_s)
                    self._at(due, "overflow", call)
        return True

    def _overflow_target(self, command: SetOverflow) -> str | None:
        """The queue a `queue.overflow` names, or the same line's queue at `to_site`."""
        if command.to_queue_id is not None:
            return command.to_queue_id if command.to_queue_id in self.specs else None
        line = command.queue_id.split("@")[0]
        for spec in self.specs.values():
            if spec.site == command.to_site and spec.queue_id.split("@")[0] == line:
                return spec.queue_id
        return None
