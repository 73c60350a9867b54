"""Amazon Connect contact events and agent event stream records into the contract's events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.ingest.adapters import AdapterError
from services.ingest.connect import Contacts, connect_items, secret_matches
from shared.core.engine import Engine
from shared.events import parse_event

FIXTURES = Path(__file__).parents[1] / "fixtures" / "connect"
CONTACTS = json.loads((FIXTURES / "contact-events.json").read_text())
AGENTS = json.loads((FIXTURES / "agent-events.json").read_text())
T = 1762891200
Q = "5c2d1e4f-0a9b-4c8d-9e7f-EXAMPLE22222"  # BasicQueue
Q2 = "7e8f9a0b-1c2d-4e3f-8a9b-EXAMPLE33333"  # Sales


def items_of(records: list[Any], book: Contacts | None = None) -> list[dict[str, Any]]:
    book = book if book is not None else Contacts()
    out: list[dict[str, Any]] = []
    for record in records:
        for item in connect_items(record, book):
            assert not isinstance(item, AdapterError), item
            parse_event({**item, "source": "connect"})
            out.append(item)
    return out


def test_what_each_contact_event_becomes() -> None:
    got = [(e["type"], e["call_id"][:3], e["queue_id"] == Q2, e.get("wait_s"),
            e.get("to_queue_id", e.get("outcome")))
           for e in items_of(CONTACTS)]  # fmt: skip
    assert got == [
        ("call.queued", "c10", False, None, None),  # C1
        ("call.queued", "c20", False, None, None),  # C2
        ("call.queued", "c30", False, None, None),  # C3
        ("call.answered", "c10", False, 12.0, None),
        ("call.callback_requested", "c30", False, None, None),  # CB3 queued: C3 asked
        ("call.overflowed", "c30", False, 31.0, "connect:contact_flow_disconnect"),
        ("call.abandoned", "c20", False, 60.0, None),
        ("call.queued", "c40", True, None, None),
        ("call.queued", "c50", False, None, None),
        ("call.overflowed", "c50", False, None, Q2),  # moved by its flow
        ("call.queued", "c50", True, None, None),
        ("call.answered", "c50", True, 20.0, None),
        ("call.ended", "c10", False, None, None),
        ("call.callback_completed", "c30", False, 260.0, "connected"),
        ("call.ended", "c30", False, None, None),
    ]
    events = items_of(CONTACTS)
    requested, flowed = events[4], events[5]
    assert requested["event_id"] == flowed["event_id"]  # C3 left BasicQueue once
    ended = [(e["agent_id"].split("-")[0].rsplit("/")[-1], e["talk_s"], e["wrap_s"])
             for e in events if e["type"] == "call.ended"]  # fmt: skip
    assert ended == [("ann", 188.0, 30.0), ("cho", 100.0, 20.0)]
    assert events[7]["channel"] == "chat"


def test_what_each_agent_record_becomes() -> None:
    events = items_of(AGENTS)
    assert all(e["agent_id"] == f"{e['name']}-0000-4000-8000-EXAMPLE44444" for e in events)
    got = [(e["name"], e["type"], e.get("state") or [s["queue_id"][:4] for s in e["skills"]],
            e.get("reason"))
           for e in events]  # fmt: skip
    assert got == [
        ("ann", "agent.state", "available", None),
        ("ann", "agent.skills", ["5c2d"], None),
        ("bob", "agent.state", "available", None),
        ("bob", "agent.skills", ["5c2d", "7e8f"], None),
        ("cho", "agent.state", "available", None),
        ("cho", "agent.skills", ["5c2d"], None),
        ("ann", "agent.state", "busy", None),
        ("cho", "agent.state", "not_ready", "lunch"),
        ("dan", "agent.state", "offline", None),
        ("bob", "agent.state", "busy", None),
        ("ann", "agent.state", "wrap_up", None),  # after-contact work
        ("ann", "agent.state", "available", None),
    ]


def test_the_centre_through_the_engine() -> None:
    """By hand, at T+250 over 300 s, what Connect had reported by then. BasicQueue: C1,
    C2, C3, C5 arrived; C1 answered after 12 s (talk 188 s + 30 s after-contact work);
    C2 hung up after 60 s; C3 asked for a callback (its flow disconnect is the same
    departure, counted once); C5 was moved to Sales. Sales: C4 (chat) waits since T+100,
    C5 answered after 20 s. Agents: ann available, bob busy (he serves both), cho at
    lunch; dan logged out and serves nothing."""
    events = [
        parse_event({**e, "source": "connect"})
        for e in items_of(CONTACTS) + items_of(AGENTS)
        if parse_event(e).epoch <= T + 250
    ]
    engine = Engine()
    engine.add_many(events)
    stats = engine.compute(T + 250.0)
    basic, sales = stats[Q], stats[Q2]
    w = basic.windows[300]
    assert (w.arrivals, w.answered, w.answered_within_target, w.abandoned) == (4, 1, 1, 1)
    assert (w.callbacks, w.overflowed, w.asa_s, w.aht_s) == (1, 1, 12.0, 218.0)
    assert basic.waiting == 0
    assert basic.agents.as_json() == {"available": 1, "busy": 1, "wrap_up": 0,
                                      "not_ready": 1, "staffed": 3}  # fmt: skip
    s = sales.windows[300]
    assert (s.arrivals, s.answered, s.answered_within_target, s.asa_s) == (2, 1, 1, 20.0)
    assert (sales.waiting, sales.longest_wait_s) == (1, 150.0)
    assert sales.agents.as_json() == {"available": 0, "busy": 1, "wrap_up": 0,
                                      "not_ready": 0, "staffed": 1}  # fmt: skip


def test_bad_records_name_their_fault() -> None:
    assert connect_items([1]) == [AdapterError("a Connect record must be a JSON object")]
    assert connect_items({"detail-type": "Something else"}) == [
        AdapterError("neither an Amazon Connect Contact Event nor an agent event record")
    ]
    broken = {**CONTACTS[1], "time": "yesterday"}
    assert connect_items(broken) == [
        AdapterError("Connect record: Invalid isoformat string: 'yesterday'")
    ]


def test_the_shared_secret() -> None:
    assert secret_matches("s3cret", "s3cret")
    assert not secret_matches("s3cret", "s3cret ")
    assert not secret_matches("s3cret", None)
    assert not secret_matches("", "")  # no secret set: the adapter is off


def test_a_record_sent_again_gives_the_same_items() -> None:
    book = Contacts()
    for record in CONTACTS + AGENTS:
        assert connect_items(record, book) == connect_items(record, book)
