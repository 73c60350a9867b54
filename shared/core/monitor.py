"""The monitor's pure core: engine, tier machine and forecasts, ticked with `now`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.core.engine import Engine, QueueStats
from shared.core.tiers import QueueAlertState, SurgeView, step
from shared.forecast import Forecast
from shared.messages.alerts import AlertChange
from shared.queue_settings import DEFAULT_QUEUE_SETTINGS, QueueSettings
from shared.timefmt import iso_ms


def snapshot_json(stats: QueueStats, surge: SurgeView, state: QueueAlertState) -> dict[str, object]:
    """One queue's snapshot in the shape of `GET /v1/queues/{queue_id}` (contract 7)."""
    return {
        "queue_id": stats.queue_id,
        "as_of": iso_ms(stats.now),
        "windows": {str(w): m.as_json() for w, m in stats.windows.items()},
        "waiting": stats.waiting,
        "waiting_over_target": stats.waiting_over_target,
        "longest_wait_s": stats.longest_wait_s,
        "agents": stats.agents.as_json(),
        "surge": {
            "ratio": surge.ratio,
            "expected": surge.expected,
            "arrivals": surge.arrivals,
            "window_s": surge.window_s,
            "p": surge.p,
            "basis": surge.basis,
            "tier": state.tier,
            "since": iso_ms(state.since) if state.since is not None else None,
        },
        "sl_breach": state.breach,
    }


@dataclass
class TickOutput:
    as_of: float
    snapshots: list[dict[str, object]]
    changes: list[AlertChange]
    stats: dict[str, QueueStats]
    updates: list[AlertChange] = field(default_factory=list)  # contract 5: the numbers now

    def queues_json(self) -> dict[str, object]:
        """The body of `GET /v1/queues`."""
        return {"as_of": iso_ms(self.as_of), "queues": self.snapshots}


@dataclass
class Monitor:
    """Everything the monitor computes, without I/O."""

    settings: dict[str, QueueSettings] = field(default_factory=dict)
    forecasts: dict[str, Forecast] = field(default_factory=dict)
    states: dict[str, QueueAlertState] = field(default_factory=dict)
    grace_s: float = 300.0
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = Engine(self.settings_for, self.grace_s)

    def settings_for(self, queue_id: str) -> QueueSettings:
        return self.settings.get(queue_id, DEFAULT_QUEUE_SETTINGS)

    def tick(self, now: float, owns: Callable[[str], bool] | None = None) -> TickOutput:
        """Compute every queue at `now`, advance the tier machines, prune old state.

        With `owns`, only the queues this instance owns (by partition) are reported and
        have their tiers advanced: another monitor speaks for the others.
        """
        stats = self.engine.compute(now)
        if owns is not None:
            stats = {q: s for q, s in stats.items() if owns(q)}
        snapshots: list[dict[str, object]] = []
        changes: list[AlertChange] = []
        updates: list[AlertChange] = []
        for queue_id in sorted(stats):
            result = step(
                self.states.get(queue_id, QueueAlertState()),
                stats[queue_id],
                self.forecasts.get(queue_id),
            )
            self.states[queue_id] = result.state
            changes.extend(result.changes)
            updates.extend(result.updates)
            snapshots.append(snapshot_json(stats[queue_id], result.surge, result.state))
        self.engine.prune(now)
        return TickOutput(now, snapshots, changes, stats, updates)
