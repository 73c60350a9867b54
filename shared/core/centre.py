"""Centre totals across monitor instances (contract 4, `GET /v1/centre`). Pure.

Each monitor sees the queues of its partitions, and every agent. It hands over its part:
the sums behind its queues' figures, and the agents serving them by id. Parts add up
exactly: counts and sums are summed, rates recomputed from the sums, and an agent is
counted once however many queues (and monitors) it serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, replace
from typing import Any

from shared.core.figures import (
    Agent,
    Breakdown,
    CentreStats,
    QueueStats,
    WindowMetrics,
    centre,
    count_agents,
)

Part = dict[str, Any]  # Any: the JSON form of a part, as `part` writes it


def part(now: float, stats: Iterable[QueueStats], agents: Iterable[Agent]) -> Part:
    """One monitor's share of the centre: its queues' sums, and their agents by id."""
    mine = list(stats)
    queue_ids = {s.queue_id for s in mine}
    c = centre(now, mine, [])
    serving = {
        a.agent_id: [a.state, a.site or "unknown"]
        for a in agents
        if a.state is not None and a.serving & queue_ids
    }
    return {
        "now": now,
        "queues": sorted(queue_ids),
        "windows": {str(w): asdict(m) for w, m in c.windows.items()},
        "totals": _breakdown_json(c.totals),
        "by_site": {k: _breakdown_json(b) for k, b in c.by_site.items()},
        "callbacks_expired": c.callbacks_expired,
        "agents": serving,
    }


def merge(parts: list[Part]) -> CentreStats:
    """The centre of several parts (one per monitor), as one monitor seeing all would."""
    windows: dict[int, WindowMetrics] = {}
    total: Breakdown | None = None
    sites: dict[str, Breakdown] = {}
    queues: set[str] = set()
    agents: dict[str, tuple[str, str]] = {}
    expired = 0
    for p in parts:
        queues.update(p["queues"])
        expired += int(p["callbacks_expired"])
        for w, m in p["windows"].items():
            window = WindowMetrics(**m)
            windows[int(w)] = windows[int(w)] + window if int(w) in windows else window
        t = _breakdown(p["totals"])
        total = t if total is None else total + t
        for site, b in p["by_site"].items():
            sites[site] = sites[site] + _breakdown(b) if site in sites else _breakdown(b)
        for agent_id, (state, site) in p["agents"].items():
            agents[agent_id] = (state, site)
    everyone = [_agent(i, state, site) for i, (state, site) in agents.items()]
    assert total is not None  # noqa: S101  # callers pass at least one part
    return CentreStats(
        now=max(float(p["now"]) for p in parts),
        queues=len(queues),
        windows=dict(sorted(windows.items())),
        totals=replace(total, agents=count_agents(everyone)),
        by_site={
            site: replace(b, agents=count_agents(a for a in everyone if a.site == site))
            for site, b in sorted(sites.items())
        },
        callbacks_expired=expired,
    )


def _agent(agent_id: str, state: str, site: str) -> Agent:
    return Agent(agent_id, state=state, site=site)


def _breakdown_json(b: Breakdown) -> dict[str, Any]:
    return {
        "window": asdict(b.window),
        "waiting": b.waiting,
        "waiting_over_target": b.waiting_over_target,
        "longest_wait_s": b.longest_wait_s,
        "callbacks_pending": b.callbacks_pending,
        "oldest_callback_s": b.oldest_callback_s,
    }


def _breakdown(d: dict[str, Any]) -> Breakdown:
    return Breakdown(
        WindowMetrics(**d["window"]),
        d["waiting"],
        d["waiting_over_target"],
        d["longest_wait_s"],
        d["callbacks_pending"],
        d["oldest_callback_s"],
    )
