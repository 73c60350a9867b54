"""The incident tracker (contract 7), fed from hand-written tables of alerts, actions and ticks."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.incidents import (
    Tracker,
    action_from_json,
    incident_id,
    sample_from_snapshot,
)
from shared.messages.alerts import AlertChange
from shared.messages.incidents import Incident
from shared.timefmt import iso_ms

T0 = 1_794_427_200.0  # 2026-11-11T20:00:00Z


def alert(
    t: float, transition: str, kind: str = "surge", tier: int = 1, **extra: Any
) -> AlertChange:
    return AlertChange.model_validate(
        {"alert_id": f"{kind}:sales:1", "kind": kind, "queue_id": "sales", "transition": transition,
         "tier": tier, "at": iso_ms(T0 + t), "numbers": {"ratio": 1.3, "answer_rate_live": 0.8}, **extra}
    )  # fmt: skip


def action(t: float, state: str, created: float = 30, action_id: str = "a1") -> dict[str, Any]:
    moves = [{"type": "agent.reassign", "agent_id": f"ag{i}", "from_queue": "billing",
              "to_queue": "sales"} for i in (1, 2)]  # fmt: skip
    return {"action_id": action_id, "queue_id": "sales", "state": state, "summary": "move 2",
            "created_at": iso_ms(T0 + created), "changed_at": iso_ms(T0 + t), "changed_by": "dispatcher",
            "plan": moves, "projected": {"answer_rate": 0.91}, "unknown_field": [1]}  # fmt: skip


def snap(
    t: float, rate: float, pending: int = 0, today: tuple[int, ...] = (100, 95, 2, 0, 0)
) -> dict[str, Any]:
    names = ("offered", "answered_within_target", "abandoned", "callbacks", "callbacks_completed")
    return {"queue_id": "sales", "as_of": iso_ms(T0 + t), "callbacks_pending": pending,
            "windows": {"900": {"answer_rate_live": 0.5}, "300": {"answer_rate_live": rate, "abandon_rate": 0.1}},
            "surge": {"ratio": 1.4, "expected": 50.0, "arrivals": 70}, "agents": {"staffed": 12},
            "today": dict(zip(names, today, strict=True))}  # fmt: skip


def feed(tracker: Tracker, step: tuple[str, Any]) -> Incident | None:
    what, value = step
    if what == "alert":
        return tracker.on_alert(value)
    if what == "action":
        return tracker.on_action("sales", action_from_json(value))
    return tracker.on_sample("sales", *sample_from_snapshot(value))


STORY: list[tuple[str, Any]] = [
    ("snap", snap(0, 0.95)),
    ("alert", alert(10, "raised")),
    ("snap", snap(20, 0.6)),
    ("action", action(30, "proposed")),
    ("action", action(35, "sent")),
    ("alert", alert(40, "raised", kind="sl_breach", tier=0)),
    ("alert", alert(50, "acknowledged", by="Zoë")),
    ("snap", snap(60, 0.92, pending=3, today=(160, 130, 12, 5, 2))),
    ("alert", alert(70, "cleared", tier=0)),
    ("alert", alert(70, "cleared", kind="sl_breach", tier=0)),
    ("action", action(80, "done")),
    ("snap", snap(90, 0.95, pending=0, today=(170, 140, 12, 5, 3))),
]


def tracker() -> Tracker:
    return Tracker(targets=lambda queue_id: (120.0, 0.9))


def test_one_incident_from_first_alert_to_calm_with_its_summary() -> None:
    t = tracker()
    assert feed(t, STORY[0]) is None  # no incident before the first alert
    calm = []
    for step in STORY[1:]:
        incident = feed(t, step)
        assert incident is not None
        calm.append(None if incident.calm_since is None else incident.calm_since - T0)
    # calm only once alerts cleared, the action is done and no callback is pending
    assert calm == [None] * 10 + [90.0]
    assert t.tick(T0 + 209.999) == []
    [closed] = t.tick(T0 + 210)
    assert t.open == {}
    assert closed.incident_id == incident_id("sales", "surge:sales:1")
    assert (closed.state, closed.opened_at - T0, closed.closed_at) == ("closed", 10.0, T0 + 210)
    assert closed.summary.model_dump() == {
        "duration_s": 200.0, "time_to_first_action_s": 20.0, "time_to_recover_s": 50.0,
        "answer_rate": round(45 / 70, 4), "abandon_rate": round(10 / 70, 4), "agents_moved": 2,
        "callbacks_offered": 5, "callbacks_kept": 3, "max_tier": 1,
    }  # fmt: skip
    assert [(e.at - T0, e.kind, e.text) for e in closed.timeline] == [
        (10.0, "alert", "raised: surge tier 1, 130% of expected, answer rate 80%"),
        (30.0, "action", "move 2: proposed by dispatcher"),
        (35.0, "action", "move 2: sent by dispatcher"),
        (40.0, "alert", "raised: answer rate below its alert line, answer rate 80%"),
        (50.0, "ack", "surge acknowledged by Zoë"),
        (60.0, "recovered", "answer rate back at target: 92%"),
        (70.0, "alert", "cleared: surge tier 0, 130% of expected, answer rate 80%"),
        (70.0, "alert", "cleared: answer rate below its alert line, answer rate 80%"),
        (80.0, "action", "move 2: done by dispatcher"),
        (210.0, "closed", "calm: no alert, action or callback pending"),
    ]
    surge = closed.alert("surge:sales:1")
    assert surge is not None
    assert (surge.acked_by, surge.numbers_then["answer_rate_live"], surge.numbers_now["answer_rate_live"]) == (
        "Zoë", 0.8, 0.8)  # fmt: skip
    # the chart: the tick before the alert, then one point per 10 s at most
    assert [(s.at - T0, s.answer_rate, s.agents, s.expected) for s in closed.series] == [
        (0.0, 0.95, 12, 50.0), (20.0, 0.6, 12, 50.0), (60.0, 0.92, 12, 50.0), (90.0, 0.95, 12, 50.0),
    ]  # fmt: skip
    # the next alert opens a new incident
    again = t.on_alert(alert(300, "raised").model_copy(update={"alert_id": "surge:sales:2"}))
    assert again is not None and again.incident_id == incident_id("sales", "surge:sales:2")


@pytest.mark.parametrize(
    ("steps", "calm_since"),
    [
        ([("alert", alert(10, "raised")), ("alert", alert(20, "cleared"))], 20.0),
        # an action still open keeps the incident open
        ([("alert", alert(10, "raised")), ("action", action(15, "sent")), ("alert", alert(20, "cleared"))], None),
        ([("alert", alert(10, "raised")), ("action", action(15, "sent")), ("alert", alert(20, "cleared")),
          ("action", action(25, "reverted"))], 25.0),
        # callbacks pending keep it open until served
        ([("alert", alert(10, "raised")), ("snap", snap(12, 0.5, pending=2)), ("alert", alert(20, "cleared"))], None),
        ([("alert", alert(10, "raised")), ("snap", snap(12, 0.5, pending=2)), ("alert", alert(20, "cleared")),
          ("snap", snap(40, 0.95, pending=0))], 40.0),
        # a second alert raised after the first cleared starts the clock again
        ([("alert", alert(10, "raised")), ("alert", alert(20, "cleared")),
          ("alert", alert(30, "raised", kind="sl_breach", tier=0))], None),
    ],
)  # fmt: skip
def test_calm_needs_no_alert_no_open_action_and_no_callback_pending(
    steps: list[tuple[str, Any]], calm_since: float | None
) -> None:
    t = tracker()
    for step in steps:
        feed(t, step)
    incident = t.open["sales"]
    assert (None if incident.calm_since is None else incident.calm_since - T0) == calm_since


def test_a_redelivered_record_changes_nothing() -> None:
    t = tracker()
    first = t.on_alert(alert(10, "raised"))
    assert first is not None
    assert t.on_alert(alert(10, "raised")) is None
    assert t.on_action("sales", action_from_json(action(30, "sent"))) is not None
    assert t.on_action("sales", action_from_json(action(30, "sent"))) is None
    assert t.on_alert(alert(40, "acknowledged", by="ann")) is not None
    assert t.on_alert(alert(45, "acknowledged", by="bob")) is None  # the first ack stands
    assert [e.kind for e in t.open["sales"].timeline] == ["alert", "action", "ack"]


def test_an_alert_that_is_not_a_raise_opens_nothing_and_actions_of_calm_queues_are_ignored() -> (
    None
):
    t = tracker()
    assert t.on_alert(alert(10, "cleared")) is None
    assert t.on_alert(alert(10, "acknowledged", by="ann")) is None
    assert t.on_action("sales", action_from_json(action(30, "sent"))) is None
    assert t.open == {}


def test_a_long_incident_keeps_its_chart_bounded() -> None:
    t = Tracker(targets=lambda q: (120.0, 0.9), sample_every_s=1.0, max_samples=10)
    t.on_alert(alert(0, "raised"))
    for i in range(1, 26):
        t.on_sample("sales", *sample_from_snapshot(snap(i, 0.5)))
    times = [s.at - T0 for s in t.open["sales"].series]
    # 11 points halve to 6 (every other, and the newest), three times over
    assert times == [1.0, 9.0, 14.0, 17.0, 19.0, 21.0, 22.0, 23.0, 24.0, 25.0]


def test_action_without_its_fields_is_refused() -> None:
    with pytest.raises(KeyError):
        action_from_json({"queue_id": "sales"})


def test_updated_changes_carry_the_numbers_now_and_stay_off_the_timeline() -> None:
    t = tracker()
    t.on_alert(alert(10, "raised"))
    now = t.on_alert(alert(12, "updated", numbers={"ratio": 2.1, "answer_rate_live": 0.3}))
    assert now is not None
    [view] = now.alerts
    assert (view.numbers_then, view.numbers_now) == (
        {"ratio": 1.3, "answer_rate_live": 0.8},
        {"ratio": 2.1, "answer_rate_live": 0.3},
    )
    assert [e.at - T0 for e in now.timeline] == [10.0]
    assert now.numbers_now == {"ratio": 2.1, "answer_rate_live": 0.3}
    # a notifier that missed the raise opens the incident from the numbers now
    late = tracker()
    opened = late.on_alert(alert(12, "updated"))
    assert opened is not None and opened.incident_id == incident_id("sales", "surge:sales:1")
