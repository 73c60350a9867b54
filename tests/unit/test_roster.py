"""The agents list per queue, from a hand-worked table of agent events.

Events (seconds before 20:00:00Z), in the order they are fed:

| agent | serving          | state events                                              |
|-------|------------------|-----------------------------------------------------------|
| a1    | billing          | available -600, not_ready/break -500, not_ready/lunch -100 |
| a2    | billing, sales   | wrap_up -130, then late: busy -200                        |
| a3    | billing (skills) | not_ready/training -1000                                  |
| a4    | billing          | busy -50                                                  |
| a5    | billing          | available -300, offline -10                               |
| a6    | sales            | wrap_up -400                                              |

At 20:00:00 with the defaults (not_ready 900 s, wrap_up 120 s), billing lists a3
(not_ready 1000 s > 900: overdue), a2 (wrap_up 130 s > 120: overdue), a1 (not_ready since
-500 although its reason changed at -100: 500 s), a4 (busy 50 s); a5 is offline. The late
busy of a2 at -200 is older than its wrap_up and changes nothing.
"""

from __future__ import annotations

import pytest

from shared.core.engine import Engine
from shared.core.roster import Limits, Roster, listing, stored_entries
from shared.events import AgentEvent, AgentSkillsChanged, AgentStateChanged, parse_event
from tests.conftest import T0, iso

NOW = T0.timestamp()
SEQ = iter(range(10**6))


def state(agent: str, at: float, value: str, reason: str | None = None) -> AgentEvent:
    raw: dict[str, object] = {
        "event_id": f"e{next(SEQ)}",
        "type": "agent.state",
        "ts": iso(at),
        "agent_id": agent,
        "state": value,
        "site": "north",
    }
    if reason is not None:
        raw["reason"] = reason
    event = parse_event(raw)
    assert isinstance(event, AgentStateChanged)
    return event


def skills(agent: str, queues: list[str], serving: list[str] | None = None) -> AgentEvent:
    raw: dict[str, object] = {
        "event_id": f"e{next(SEQ)}",
        "type": "agent.skills",
        "ts": iso(-1000),
        "agent_id": agent,
        "skills": [{"queue_id": q, "level": 5} for q in queues],
    }
    if serving is not None:
        raw["serving"] = serving
    event = parse_event(raw)
    assert isinstance(event, AgentSkillsChanged)
    return event


TABLE: list[AgentEvent] = [
    skills("a1", ["billing", "sales"], ["billing"]),
    skills("a2", ["billing", "sales"]),
    skills("a3", ["billing"]),
    skills("a4", ["billing"], ["billing"]),
    skills("a5", ["billing"]),
    skills("a6", ["sales"]),
    state("a1", -600, "available"),
    state("a1", -500, "not_ready", "break"),
    state("a3", -1000, "not_ready", "training"),
    state("a2", -130, "wrap_up"),
    state("a4", -50, "busy"),
    state("a5", -300, "available"),
    state("a6", -400, "wrap_up"),
    state("a1", -100, "not_ready", "lunch"),
    state("a5", -10, "offline"),
    state("a2", -200, "busy"),  # late: older than its wrap_up
]


class Fed:
    """The engine takes each event, then the roster notes its agent (as the monitor does)."""

    def __init__(self) -> None:
        self.engine = Engine()
        self.roster = Roster(self.engine.agents)

    def add(self, event: AgentEvent) -> None:
        if self.engine.add(event):
            self.roster.add(event.agent_id)


def fed(events: list[AgentEvent] = TABLE) -> Fed:
    floor = Fed()
    for event in events:
        floor.add(event)
    return floor


def rows(roster: Roster, queue: str, at: float, limits: Limits) -> list[tuple[object, ...]]:
    got = roster.queue(queue, NOW + at, limits)
    return [(r.agent_id, r.state, r.reason, r.in_state_s, r.overdue) for r in got.agents]


@pytest.mark.parametrize(
    ("queue", "at", "limits", "expected", "overdue"),
    [
        (
            "billing",
            0,
            Limits(),
            [
                ("a3", "not_ready", "training", 1000.0, True),
                ("a2", "wrap_up", None, 130.0, True),
                ("a1", "not_ready", "lunch", 500.0, False),
                ("a4", "busy", None, 50.0, False),
            ],
            2,
        ),
        (  # 10 s earlier: a2's wrap_up is exactly 120 s, not more: not overdue yet
            "billing",
            -10,
            Limits(),
            [
                ("a3", "not_ready", "training", 990.0, True),
                ("a1", "not_ready", "lunch", 490.0, False),
                ("a2", "wrap_up", None, 120.0, False),
                ("a4", "busy", None, 40.0, False),
            ],
            1,
        ),
        (  # the queue's own limits: not_ready 400 s, wrap_up 200 s
            "billing",
            0,
            Limits(not_ready_s=400, wrap_up_s=200),
            [
                ("a3", "not_ready", "training", 1000.0, True),
                ("a1", "not_ready", "lunch", 500.0, True),
                ("a2", "wrap_up", None, 130.0, False),
                ("a4", "busy", None, 50.0, False),
            ],
            2,
        ),
        (
            "sales",
            0,
            Limits(),
            [("a6", "wrap_up", None, 400.0, True), ("a2", "wrap_up", None, 130.0, True)],
            2,
        ),
        ("unknown", 0, Limits(), [], 0),
    ],
)
def test_list_from_the_table(
    queue: str, at: float, limits: Limits, expected: list[tuple[object, ...]], overdue: int
) -> None:
    roster = fed().roster
    assert rows(roster, queue, at, limits) == expected
    assert roster.queue(queue, NOW + at, limits).overdue == overdue


def test_since_is_when_the_state_began_and_never_moves_back() -> None:
    floor = fed()
    roster = floor.roster
    a1 = roster.agents["a1"]
    assert (a1.state, a1.reason, a1.since) == ("not_ready", "lunch", NOW - 500)
    # a repeat of the latest event and a late not_ready (between available and the
    # not_ready it already knows) change nothing
    floor.add(state("a1", -100, "not_ready", "lunch"))
    floor.add(state("a1", -550, "not_ready", "break"))
    floor.add(state("a1", -700, "busy"))
    assert (a1.state, a1.reason, a1.since) == ("not_ready", "lunch", NOW - 500)
    # a later change of state starts the clock again
    floor.add(state("a1", -20, "available"))
    assert (a1.state, a1.reason, a1.since) == ("available", None, NOW - 20)


def test_the_list_is_bounded_and_counts_every_agent() -> None:
    roster = fed().roster
    roster.max_listed = 2
    got = roster.queue("billing", NOW, Limits())
    assert [r.agent_id for r in got.agents] == ["a3", "a2"]
    assert (got.staffed, got.overdue) == (4, 2)
    assert got.counts_json() == {
        "queue_id": "billing",
        "as_of": "2026-11-11T20:00:00.000Z",
        "staffed": 4,
        "overdue": 2,
        "by_site": {"north": {"staffed": 4, "overdue": 2}},
    }


def test_changed_reports_a_queue_when_its_list_or_overdue_set_changes() -> None:
    floor = fed()
    roster = floor.roster
    limits = {"billing": Limits(), "sales": Limits()}
    first = roster.changed(["billing", "sales"], NOW, limits.__getitem__)
    assert [q.queue_id for q in first] == ["billing", "sales"]
    assert roster.changed(["billing", "sales"], NOW + 2, limits.__getitem__) == []
    # a1 (not_ready since -500) passes 900 s at +400: overdue from the first tick after
    assert roster.changed(["billing", "sales"], NOW + 400, limits.__getitem__) == []
    later = roster.changed(["billing", "sales"], NOW + 400.002, limits.__getitem__)
    assert [(q.queue_id, q.overdue) for q in later] == [("billing", 3)]
    # a state change reports the queues the agent serves: a2 serves both
    floor.add(state("a2", 401, "available"))
    again = roster.changed(["billing", "sales"], NOW + 402, limits.__getitem__)
    assert [(q.queue_id, q.overdue) for q in again] == [("billing", 2), ("sales", 1)]
    # a skills change moves a4 out of billing into sales
    floor.add(skills("a4", ["sales"]))
    moved = roster.changed(["billing", "sales"], NOW + 404, limits.__getitem__)
    assert [(q.queue_id, q.staffed) for q in moved] == [("billing", 3), ("sales", 3)]
    # new limits report the queue again; a queue no longer asked for is forgotten
    limits["sales"] = Limits(wrap_up_s=1000)
    assert [
        (q.queue_id, q.overdue) for q in roster.changed(["sales"], NOW + 406, limits.__getitem__)
    ] == [("sales", 0)]
    assert [q.queue_id for q in roster.changed(["billing"], NOW + 408, limits.__getitem__)] == [
        "billing"
    ]


def test_a_stored_list_read_back_gives_the_same_list_later() -> None:
    roster = fed().roster
    stored = roster.queue("billing", NOW, Limits()).as_json()
    assert stored["agents"][1] == {  # type: ignore[index]
        "agent_id": "a2",
        "state": "wrap_up",
        "reason": None,
        "since": "2026-11-11T19:57:50.000Z",
        "in_state_s": 130.0,
        "overdue": True,
        "site": "north",
    }
    as_of, entries, limits = stored_entries(stored)
    assert as_of == NOW
    again = listing("billing", NOW + 400.5, entries, limits)
    assert [(r.agent_id, r.in_state_s, r.overdue) for r in again.agents] == [
        ("a3", 1400.5, True),
        ("a1", 900.5, True),
        ("a2", 530.5, True),
        ("a4", 450.5, False),
    ]
