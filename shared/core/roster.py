"""Agents per queue with their state, reason and time in state (the board's agents list).

It reads the engine's own agent records (`Engine.agents`: state, reason, `since`, serving
and site, each as of its latest event, so neither a duplicate nor a late event moves
`since` backwards) and is told which agent an event the engine took was about; it keeps
who serves each queue and which queues' lists changed.

A queue's list holds the staffed agents (state known and not `offline`) whose `serving`
includes the queue, sorted for a floor manager: overdue agents first, then the other
`not_ready` and `wrap_up` agents, then the rest; in each group the longest in state first.
An agent is overdue when `not_ready` has lasted more than the queue's `not_ready_alert_s`
or `wrap_up` more than its `wrap_up_alert_s`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core.figures import Agent
from shared.queue_settings import QueueSettings
from shared.timefmt import iso_ms, parse_ts

MAX_LISTED = 2000  # agents in one queue's list; `staffed` and `overdue` count them all
ALERTED = ("not_ready", "wrap_up")


@dataclass(frozen=True, slots=True)
class Entry:
    """One staffed agent as a queue's list needs it (time in state aside)."""

    agent_id: str
    state: str
    reason: str | None
    since: float
    site: str | None = None
    since_iso: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """One agent of a queue's list at `now`."""

    agent_id: str
    state: str
    reason: str | None
    since: float
    in_state_s: float
    overdue: bool
    site: str | None = None
    since_iso: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "agent_id": self.agent_id,
            "state": self.state,
            "reason": self.reason,
            "since": self.since_iso or iso_ms(self.since),
            "in_state_s": self.in_state_s,
            "overdue": self.overdue,
            "site": self.site,
        }


@dataclass(frozen=True, slots=True)
class Limits:
    """A queue's alert thresholds (settings `not_ready_alert_s`, `wrap_up_alert_s`)."""

    not_ready_s: float = 900.0
    wrap_up_s: float = 120.0

    @classmethod
    def of(cls, settings: QueueSettings) -> Limits:
        return cls(settings.not_ready_alert_s, settings.wrap_up_alert_s)

    def limit(self, state: str) -> float | None:
        """The longest a state may last before the agent is overdue (None: no limit)."""
        if state == "not_ready":
            return self.not_ready_s
        if state == "wrap_up":
            return self.wrap_up_s
        return None


@dataclass(frozen=True, slots=True)
class QueueAgents:
    """One queue's agents list at `now`."""

    queue_id: str
    now: float
    agents: tuple[Row, ...]
    overdue: int  # every overdue agent, listed or not
    staffed: int  # every staffed agent serving the queue, listed or not
    limits: Limits
    due: float = math.inf  # the earliest time an agent becomes overdue by time alone
    by_site: tuple[tuple[str, int, int], ...] = ()  # (site, staffed, overdue), every agent

    def as_json(self) -> dict[str, object]:
        return {
            "queue_id": self.queue_id,
            "as_of": iso_ms(self.now),
            "agents": [r.as_json() for r in self.agents],
            "overdue": self.overdue,
            "staffed": self.staffed,
            "not_ready_alert_s": self.limits.not_ready_s,
            "wrap_up_alert_s": self.limits.wrap_up_s,
        }

    def counts_json(self) -> dict[str, object]:
        """Agents staffed and overdue, in all and by the agents' site (the board's tiles)."""
        return {
            "queue_id": self.queue_id,
            "as_of": iso_ms(self.now),
            "staffed": self.staffed,
            "overdue": self.overdue,
            "by_site": {site: {"staffed": n, "overdue": late} for site, n, late in self.by_site},
        }

    def signature(self) -> tuple[object, ...]:
        """What a reader sees change: everything but the time in state."""
        rows = tuple(
            (r.agent_id, r.state, r.reason, r.since, r.site, r.overdue) for r in self.agents
        )
        return (rows, self.overdue, self.staffed, self.limits)


def stored_entries(body: dict[str, Any]) -> tuple[float, list[Entry], Limits]:  # Any: JSON
    """The time, entries and limits of a stored list (`QueueAgents.as_json`)."""
    entries = [
        Entry(
            str(a["agent_id"]),
            str(a["state"]),
            a.get("reason"),
            parse_ts(a["since"]),
            a.get("site"),
            str(a["since"]),
        )
        for a in body["agents"]
    ]
    limits = Limits(float(body["not_ready_alert_s"]), float(body["wrap_up_alert_s"]))
    return parse_ts(str(body["as_of"])), entries, limits


def listing(
    queue_id: str,
    now: float,
    entries: Iterable[Entry],
    limits: Limits,
    max_listed: int = MAX_LISTED,
) -> QueueAgents:
    """The list at `now`: overdue first, then the other not_ready and wrap_up, then the
    rest; the longest in state first within each; at most `max_listed` agents."""
    rows = []
    due = math.inf
    for e in entries:
        in_state = round(max(0.0, now - e.since), 3)
        limit = limits.limit(e.state)
        late = limit is not None and in_state > limit
        if limit is not None and not late:
            due = min(due, e.since + limit)
        row = Row(e.agent_id, e.state, e.reason, e.since, in_state, late, e.site, e.since_iso)
        rows.append(row)
    rows.sort(
        key=lambda r: (0 if r.overdue else 1 if r.state in ALERTED else 2, r.since, r.agent_id)
    )
    sites: dict[str, list[int]] = {}
    for r in rows:
        counts = sites.setdefault(r.site or "unknown", [0, 0])
        counts[0] += 1
        counts[1] += r.overdue
    overdue = sum(late for _, late in sites.values())
    by_site = tuple((site, n, late) for site, (n, late) in sorted(sites.items()))
    listed = tuple(rows[:max_listed])
    return QueueAgents(queue_id, now, listed, overdue, len(rows), limits, due, by_site)


def _ms(ts: float) -> float:
    return round(ts * 1000) / 1000


@dataclass
class Roster:
    """Who serves each queue, from the engine's agents, and the lists that changed."""

    agents: Mapping[str, Agent]  # the engine's, read only
    members: dict[str, set[str]] = field(default_factory=dict)  # queue -> agents serving it
    max_listed: int = MAX_LISTED
    _serving: dict[str, frozenset[str]] = field(default_factory=dict)  # as last seen
    _seen: dict[str, tuple[object, ...]] = field(default_factory=dict)  # state, reason, ...
    _since_iso: dict[str, str] = field(default_factory=dict)  # agent -> its since, as text
    _dirty: set[str] = field(default_factory=set)  # queues whose members changed
    _reported: dict[str, tuple[object, ...]] = field(default_factory=dict)
    _due: dict[str, float] = field(default_factory=dict)  # when time alone changes a list

    def add(self, agent_id: str) -> None:
        """The engine took an event of this agent: note what changed of it."""
        agent = self.agents[agent_id]
        serving = self._serving.get(agent_id, frozenset())
        if agent.serving != serving:
            for queue_id in serving - agent.serving:
                self.members.get(queue_id, set()).discard(agent_id)
            for queue_id in agent.serving - serving:
                self.members.setdefault(queue_id, set()).add(agent_id)
            self._dirty.update(serving ^ agent.serving)
            self._serving[agent_id] = agent.serving
        seen = (agent.state, agent.reason, agent.since, agent.site)
        if seen != self._seen.get(agent_id):
            self._dirty.update(agent.serving)
            self._seen[agent_id] = seen
            if agent.state is not None:  # a state event sets since
                self._since_iso[agent_id] = iso_ms(_ms(agent.since))

    def entries(self, queue_id: str) -> list[Entry]:
        """The staffed agents serving the queue."""
        out = []
        for agent_id in self.members.get(queue_id, ()):
            a = self.agents[agent_id]
            if a.state is not None and a.state != "offline":
                since_iso = self._since_iso[agent_id]
                out.append(Entry(agent_id, a.state, a.reason, _ms(a.since), a.site, since_iso))
        return out

    def queue(self, queue_id: str, now: float, limits: Limits) -> QueueAgents:
        """The queue's list at `now`."""
        return listing(queue_id, now, self.entries(queue_id), limits, self.max_listed)

    def changed(
        self, queue_ids: Iterable[str], now: float, limits_for: Callable[[str], Limits]
    ) -> list[QueueAgents]:
        """The lists of these queues that changed since last reported here (members,
        states, reasons, sites, overdue agents, limits), now reported; the others (not
        this caller's) are forgotten, so they are reported again when they come back."""
        wanted = set(queue_ids)
        for queue_id in [q for q in self._reported if q not in wanted]:
            del self._reported[queue_id]
            self._due.pop(queue_id, None)
        out = []
        for queue_id in sorted(wanted):
            limits = limits_for(queue_id)
            before = self._reported.get(queue_id)
            fresh = (
                before is None
                or queue_id in self._dirty
                or now > self._due.get(queue_id, math.inf)
                or before[-1] != limits
            )
            if not fresh:
                continue
            self._dirty.discard(queue_id)
            current = self.queue(queue_id, now, limits)
            self._due[queue_id] = current.due
            signature = current.signature()
            if signature != before:
                self._reported[queue_id] = signature
                out.append(current)
        return out
