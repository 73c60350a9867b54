"""What the planner sizes with (contract 6 "Sizing"): the floor at one tick, each agent's
share of time per queue, and Erlang A at the live arrival rate, AHT and patience. Pure."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.core.erlang import Performance, erlang_a, erlang_c
from shared.core.figures import Agent, QueueStats
from shared.core.tiers import QueueAlertState
from shared.queue_settings import Lever, QueueSettings, Trigger

DEFAULT_AHT_S = 300.0
DEFAULT_PATIENCE_S = 120.0
WORKING = ("available", "busy", "wrap_up")
COST_ORDER: tuple[Lever, ...] = (
    "standby", "cross_skill", "partner", "emergency", "callback", "overflow",
)  # fmt: skip


@dataclass(frozen=True)
class Floor:
    """What the planner sees at one tick."""

    now: float
    stats: Mapping[str, QueueStats]
    states: Mapping[str, QueueAlertState]
    agents: Mapping[str, Agent]
    shares: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    ratios: Mapping[str, float | None] = field(default_factory=dict)

    def share(self, agent: Agent, queue_id: str) -> float:
        """contract 6: the share of its time the agent gave the queue (1 when unknown)."""
        per = self.shares.get(agent.agent_id)
        if not per or len(agent.serving) < 2:
            return 1.0
        total = sum(per.get(q, 0.0) for q in agent.serving)
        return per.get(queue_id, 0.0) / total if total > 0 else 1.0

    def have(self, queue_id: str) -> float:
        """Working agents serving the queue, each counted as its share of time."""
        return sum(
            self.share(a, queue_id)
            for a in self.agents.values()
            if queue_id in a.serving and a.state in WORKING
        )

    def pending(self, queue_id: str) -> int:
        """contract 6: callbacks pending count as load to serve within callback_target_s."""
        stats = self.stats.get(queue_id)
        return stats.callbacks_pending if stats is not None else 0


class TimeShares:
    """contract 6: each agent's share of its handle time per queue over a window."""

    def __init__(self, window_s: float = 300.0) -> None:
        self.window_s = window_s
        self._ended: deque[tuple[float, str, str, float]] = deque()

    def add(self, ts: float, agent_id: str, queue_id: str, handle_s: float) -> None:
        """One `call.ended` (events come in time order, or nearly)."""
        self._ended.append((ts, agent_id, queue_id, handle_s))

    def shares(self, now: float) -> dict[str, dict[str, float]]:
        """Agents who worked for several queues in (now - window, now]: their shares."""
        while self._ended and self._ended[0][0] <= now - self.window_s:
            self._ended.popleft()
        time: dict[str, dict[str, float]] = {}
        for _, agent_id, queue_id, handle in self._ended:
            per = time.setdefault(agent_id, {})
            per[queue_id] = per.get(queue_id, 0.0) + handle
        out: dict[str, dict[str, float]] = {}
        for agent_id, per in time.items():
            total = sum(per.values())
            if len(per) > 1 and total > 0:
                out[agent_id] = {q: t / total for q, t in per.items()}
        return out


def project(stats: QueueStats, agents: float, pending: int = 0) -> Performance:
    """Erlang A at the live arrival rate, AHT and patience; callbacks pending add load."""
    s = stats.settings
    rate = stats.surge_arrivals / s.surge_window_s + pending / s.callback_target_s
    longest = max(s.windows_s)  # short windows see only the calls that ended early
    aht = stats.windows[longest].aht_s or stats.windows[s.primary_window_s].aht_s or DEFAULT_AHT_S
    patience = stats.patience_s or DEFAULT_PATIENCE_S
    n = math.floor(agents + 1e-9)
    if rate <= 0:
        return erlang_c(max(n, 1), 0.0, aht, s.sl_threshold_s)
    return erlang_a(n, rate, aht, patience, s.sl_threshold_s)


def meets(perf: Performance, s: QueueSettings) -> bool:
    return perf.answer_rate >= s.sl_target and perf.abandon_rate <= s.abandon_cap


def needed_agents(stats: QueueStats, ceiling: int, pending: int = 0) -> int:
    """The fewest agents meeting `sl_target` and `abandon_cap` (at most `ceiling`)."""
    lo, hi = -1, max(1, ceiling)
    if not meets(project(stats, hi, pending), stats.settings):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid >= 0 and meets(project(stats, mid, pending), stats.settings):
            hi = mid
        else:
            lo = mid
    return hi


def live_below_target(stats: QueueStats) -> bool:
    s = stats.settings
    rate = stats.windows[s.primary_window_s].answer_rate_live
    return rate is not None and rate < s.sl_target


def levers_for(settings: QueueSettings, state: QueueAlertState) -> list[Lever]:
    """contract 6: the playbook's levers for the tier and the tiers below, and a breach."""
    triggers: list[Trigger] = ["1", "2", "3"][: state.tier]  # type: ignore[assignment]
    if state.breach:
        triggers.append("sl_breach")
    wanted = {lever for t in triggers for lever in settings.playbook.get(t, [])}
    return [lever for lever in COST_ORDER if lever in wanted]
