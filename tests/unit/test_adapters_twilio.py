"""Twilio TaskRouter event callbacks into the contract's events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from services.ingest.adapters import AdapterError
from services.ingest.twilio import Tasks, signature, taskrouter_items
from shared.core.engine import Engine
from shared.events import parse_event

CALLBACKS = json.loads((Path(__file__).parents[1] / "fixtures/twilio/callbacks.json").read_text())
T = 1762891200
URL = "https://cc.example.com/v1/adapters/twilio/taskrouter"


def items_of(book: Tasks | None = None) -> list[dict[str, Any]]:
    book = book if book is not None else Tasks()
    out: list[dict[str, Any]] = []
    for params in CALLBACKS:
        for item in taskrouter_items(params, book):
            assert not isinstance(item, AdapterError), item
            out.append(item)
    return out


def test_the_signature_is_twilios() -> None:
    validator = RequestValidator("tw-token")
    for params in CALLBACKS[:5]:
        ours = signature("tw-token", URL, params)
        assert ours == validator.compute_signature(URL, params)
        assert validator.validate(URL, params, ours)
    assert signature("other", URL, CALLBACKS[0]) != validator.compute_signature(URL, CALLBACKS[0])


def test_what_each_callback_becomes() -> None:
    got = [
        (e["type"], e.get("call_id") or e.get("agent_id"), e.get("queue_id"), e.get("state"),
         e.get("wait_s"), e.get("to_queue_id"))
        for e in items_of()
    ]  # fmt: skip
    assert got == [
        ("agent.skills", "ann", None, None, None, None),
        ("agent.skills", "bob", None, None, None, None),
        ("agent.skills", "cho", None, None, None, None),
        ("agent.state", "ann", None, "available", None, None),
        ("agent.state", "bob", None, "available", None, None),
        ("agent.state", "cho", None, "not_ready", None, None),
        ("call.queued", "WT1", "Support", None, None, None),
        ("call.queued", "WT2", "Support", None, None, None),
        ("call.answered", "WT1", "Support", None, 10.0, None),
        ("agent.state", "ann", None, "busy", None, None),
        ("call.queued", "WT3", "Support", None, None, None),
        ("call.queued", "WT4", "Support", None, None, None),
        ("call.abandoned", "WT2", "Support", None, 45.0, None),  # reason hangup
        ("call.overflowed", "WT3", "Support", None, 60.0, "twilio:next"),  # timeout
        ("call.overflowed", "WT3", "Support", None, 60.0, "twilio:next"),  # moved: same id
        ("call.queued", "WT3", "Support Overflow", None, None, None),
        # wait from entering the overflow queue (10 s), not TaskAge (70 s)
        ("call.answered", "WT3", "Support Overflow", None, 10.0, None),
        ("agent.state", "bob", None, "busy", None, None),
        ("agent.state", "ann", None, "wrap_up", None, None),
        ("call.ended", "WT1", "Support", None, None, None),
        ("agent.state", "ann", None, "available", None, None),
        ("call.queued", "WT5", "Support Overflow", None, None, None),
        # a TTL is no abandon: a flow-out
        ("call.overflowed", "WT4", "Support", None, 120.0, "twilio:timeout"),
    ]
    events = items_of()
    timeout, moved = (e for e in events if e["type"] == "call.overflowed" and e["call_id"] == "WT3")
    assert timeout["event_id"] == moved["event_id"]  # the task left Support once
    ended = next(e for e in events if e["type"] == "call.ended")
    assert (ended["agent_id"], ended["talk_s"], ended["wrap_s"]) == ("ann", 90.0, 30.0)
    skills = {e["agent_id"]: e["skills"] for e in events if e["type"] == "agent.skills"}
    assert skills == {
        "ann": [{"queue_id": "Support", "level": 7}],
        "bob": [{"queue_id": "Support Overflow", "level": 1}],
        "cho": [{"queue_id": "Support", "level": 1}],
    }
    learnt = taskrouter_items({**CALLBACKS[10], "WorkerName": "dan", "Sid": "EV99"})
    assert [e["skills"] for e in learnt if not isinstance(e, AdapterError) and "skills" in e] == [
        [{"queue_id": "Support", "level": 1}]  # a worker reserved from a queue serves it
    ]
    assert events[5]["reason"] == "break"


def test_the_workspace_through_the_engine() -> None:
    """By hand, at T+200 over 300 s. Support: WT1..WT4 arrived; WT1 answered after 10 s
    (talk 90 s + wrap 30 s); WT2 hung up after 45 s; WT3 timed out to the overflow queue
    after 60 s and WT4's TTL ran out after 120 s: two flow-outs. Overflow: WT3 arrived
    and was answered after 10 s (100% within 30 s, where TaskAge's 70 s gave 0%); WT5
    waits since T+140. Agents: ann available and cho on a break serve Support; bob is
    busy in the overflow queue."""
    engine = Engine()
    engine.add_many(parse_event({**e, "source": "twilio"}) for e in items_of())
    stats = engine.compute(T + 200.0)
    support, overflow = stats["Support"], stats["Support Overflow"]
    w = support.windows[300]
    assert (w.arrivals, w.answered, w.answered_within_target) == (4, 1, 1)
    assert (w.abandoned, w.overflowed, w.asa_s, w.aht_s) == (1, 2, 10.0, 120.0)
    assert (support.waiting, support.longest_wait_s) == (0, 0.0)
    assert support.agents.as_json() == {"available": 1, "busy": 0, "wrap_up": 0,
                                        "not_ready": 1, "staffed": 2}  # fmt: skip
    o = overflow.windows[300]
    assert (o.arrivals, o.answered, o.answered_within_target, o.abandoned) == (2, 1, 1, 0)
    assert (overflow.waiting, overflow.longest_wait_s) == (1, 60.0)
    assert overflow.agents.as_json() == {"available": 0, "busy": 1, "wrap_up": 0,
                                         "not_ready": 0, "staffed": 1}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"TaskCanceledReason": "Workflow Timeout"}, ("call.overflowed", "twilio:timeout")),
        ({"TaskCanceledReason": "Task TTL Exceeded"}, ("call.overflowed", "twilio:timeout")),
        ({"TaskCanceledReason": "hangup"}, ("call.abandoned", None)),
        ({"TaskCanceledReason": ""}, ("call.abandoned", None)),
    ],
)
def test_cancel_reasons(fields: dict[str, str], expected: tuple[str, str | None]) -> None:
    params = {"EventType": "task.canceled", "Sid": "EV9", "Timestamp": str(T + 60),
              "TaskSid": "WT9", "TaskQueueName": "Support",
              "TaskQueueEnteredDate": str((T + 20) * 1000), **fields}  # fmt: skip
    (item,) = taskrouter_items(params)
    assert not isinstance(item, AdapterError)
    assert (item["type"], item.get("to_queue_id"), item["wait_s"]) == (*expected, 40.0)


def test_a_bad_callback_names_its_fault() -> None:
    assert taskrouter_items({"EventType": "task.canceled", "Timestamp": "soon"}) == [
        AdapterError("Timestamp 'soon' is not a Unix time")
    ]
    assert taskrouter_items({"EventType": "reservation.accepted", "Timestamp": "1"}) == [
        AdapterError("reservation.accepted: TaskSid missing")
    ]
    assert (
        taskrouter_items({"EventType": "task.completed", "Timestamp": "1", "TaskSid": "WTx"}) == []
    )


def test_a_callback_sent_again_gives_the_same_items() -> None:
    """TaskRouter resends a callback ingest refused (429, 503): nothing may be lost."""
    book = Tasks()
    for params in CALLBACKS:
        assert taskrouter_items(params, book) == taskrouter_items(params, book)
