"""Asterisk queue_log lines into the contract's events, from public samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.ingest.adapters import AdapterError, Item
from services.ingest.asterisk import Members, decode_body, parse_line, parse_lines
from shared.core.engine import Engine
from shared.core.figures import QueueStats
from shared.events import parse_event

FIXTURES = Path(__file__).parents[1] / "fixtures" / "asterisk"


def events_of(items: list[Item]) -> list[dict[str, Any]]:
    """Every item validated as ingest would (source filled in); no item is an error."""
    out = []
    for item in items:
        assert not isinstance(item, AdapterError), item
        out.append(item)
        parse_event({**item, "source": "pbx"})
    return out


def run(items: list[Item], now: float) -> dict[str, QueueStats]:
    engine = Engine()
    engine.add_many(parse_event({**e, "source": "pbx"}) for e in events_of(items))
    return engine.compute(now)


def brief(e: dict[str, Any]) -> tuple[object, ...]:
    """The fields a reader checks by eye: type, who, where, how long."""
    keys = ("type", "call_id", "queue_id", "agent_id", "state", "reason", "wait_s",
            "to_queue_id", "talk_s")  # fmt: skip
    return tuple(e.get(k) for k in keys)


# ---- line by line: every event type and layout -------------------------------------------

ROWS = [
    # docs.asterisk.org, Queue Logs: a ring that was not answered says who serves MYQUEUE
    ("1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000",
     [("agent.skills", None, None, "SIP/8007", None, None, None, None, None)]),
    ("1|c1|q|NONE|ENTERQUEUE|http://x|0421555111|3",
     [("call.queued", "c1", "q", None, None, None, None, None, None)]),
    ("1|c1|q|NONE|ENTERQUEUE||0421555111",  # <= 1.4: no position
     [("call.queued", "c1", "q", None, None, None, None, None, None)]),
    ("5|c1|q|NONE|ABANDON|2|3|44",
     [("call.abandoned", "c1", "q", None, None, None, 44.0, None, None)]),
    ("5|c1|q|NONE|EXITWITHTIMEOUT|1|2|61",
     [("call.overflowed", "c1", "q", None, None, None, 61.0, "asterisk:timeout", None)]),
    ("5|c1|q|NONE|EXITWITHTIMEOUT|1",  # <= 1.4: position only, the wait is derived
     [("call.overflowed", "c1", "q", None, None, None, None, "asterisk:timeout", None)]),
    ("5|c1|q|NONE|EXITWITHKEY|9|1|2|28",
     [("call.overflowed", "c1", "q", None, None, None, 28.0, "asterisk:key:9", None)]),
    ("5|c1|q|NONE|EXITWITHKEY|#|1",  # app_queue 1.4: "%c|%d"
     [("call.overflowed", "c1", "q", None, None, None, None, "asterisk:key:#", None)]),
    ("5|c1|q|NONE|EXITEMPTY|1|1|12",
     [("call.overflowed", "c1", "q", None, None, None, 12.0, "asterisk:empty", None)]),
    ("5|c1|q|NONE|JOINEMPTY|",
     [("call.queued", "c1", "q", None, None, None, None, None, None),
      ("call.overflowed", "c1", "q", None, None, None, 0.0, "asterisk:joinempty", None)]),
    ("9|c1|q|Local/2004@from-internal/n|CONNECT|12|c2|4",
     [("call.answered", "c1", "q", "Local/2004@from-internal/n", None, None, 12.0, None, None),
      ("agent.skills", None, None, "Local/2004@from-internal/n", None, None, None, None, None),
      ("agent.state", None, None, "Local/2004@from-internal/n", "busy", None, None, None, None)]),
    ("99|c1|q|PJSIP/7|COMPLETEAGENT|12|188|1",
     [("call.ended", "c1", "q", "PJSIP/7", None, None, None, None, 188.0),
      ("agent.skills", None, None, "PJSIP/7", None, None, None, None, None),
      ("agent.state", None, None, "PJSIP/7", "available", None, None, None, None)]),
    ("99|c1|q|PJSIP/7|TRANSFER|200|from-internal|12|95",  # 1.4: exten|context|hold|call
     [("call.ended", "c1", "q", "PJSIP/7", None, None, None, None, 95.0),
      ("agent.skills", None, None, "PJSIP/7", None, None, None, None, None),
      ("agent.state", None, None, "PJSIP/7", "available", None, None, None, None)]),
    ("99|c1|q|PJSIP/7|ATTENDEDTRANSFER|BRIDGE|c9|12|77|1",
     [("call.ended", "c1", "q", "PJSIP/7", None, None, None, None, 77.0),
      ("agent.skills", None, None, "PJSIP/7", None, None, None, None, None),
      ("agent.state", None, None, "PJSIP/7", "available", None, None, None, None)]),
    # Wazo's documentation: Agent/3001 unpaused in all queues, then in q1
    ("1341328087|NONE|NONE|Agent/3001|UNPAUSEALL|",
     [("agent.state", None, None, "Agent/3001", "available", None, None, None, None)]),
    ("1341328087|NONE|q1|Agent/3001|PAUSE|lunch",
     [("agent.skills", None, None, "Agent/3001", None, None, None, None, None),
      ("agent.state", None, None, "Agent/3001", "not_ready", "lunch", None, None, None)]),
    ("1341328086|NONE|NONE|Agent/3001|AGENTCALLBACKLOGOFF|1002@pcm-dev|43|CommandLogoff",
     [("agent.state", None, None, "Agent/3001", "offline", None, None, None, None)]),
    ("1|NONE|NONE|Agent/1001|AGENTLOGIN|SIP/1001",
     [("agent.state", None, None, "Agent/1001", "available", None, None, None, None)]),
    ("1|NONE|NONE|NONE|QUEUESTART|", []),
    ("1|NONE|NONE|NONE|CONFIGRELOAD|", []),
    ("1|c1|q|NONE|DID|0800123", []),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), ROWS)
def test_each_event_type_and_layout(line: str, expected: list[tuple[object, ...]]) -> None:
    assert [brief(e) for e in events_of(parse_line(line))] == expected


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("not a queue log line", "expected epoch|callid|queue|agent|event|data... (at least 5 fields)"),
        ("soon|c1|q|NONE|ENTERQUEUE|", "epoch 'soon' is not a Unix time"),
        ("1|c1|q|NONE|ABANDON|2|2|later", "ABANDON: waittime 'later' is not a number"),
        ("1|c1|q|PJSIP/7|CONNECT", "CONNECT: missing data fields"),
        ("1|NONE|q|NONE|ENTERQUEUE|", "ENTERQUEUE: a call line needs a callid and a queue"),
    ],
)  # fmt: skip
def test_a_bad_line_names_its_fault(line: str, error: str) -> None:
    assert parse_line(line) == [AdapterError(error)]


def test_errors_name_their_line_and_spare_their_neighbours() -> None:
    items = parse_lines(["1|c1|q|NONE|ENTERQUEUE|", "junk", "2|c1|q|NONE|ABANDON|1|1|1"])
    assert [i.message if isinstance(i, AdapterError) else i["type"] for i in items] == [
        "call.queued",
        "line 2: expected epoch|callid|queue|agent|event|data... (at least 5 fields)",
        "call.abandoned",
    ]


def test_two_members_pausing_in_the_same_second_are_two_events() -> None:
    book = Members()
    a = parse_line("1596513800|NONE|support|PJSIP/201|PAUSE|lunch", book)
    b = parse_line("1596513800|NONE|support|PJSIP/202|PAUSE|lunch", book)
    ids = [e["event_id"] for e in events_of(a + b)]
    assert len(ids) == 4 and len(set(ids)) == 4  # skills and state of each
    again = parse_line("1596513800|NONE|support|PJSIP/201|PAUSE|lunch", book)
    assert [e["event_id"] for e in events_of(again)] == [ids[1]]  # a resend: the same id


def test_membership_accumulates_across_queues_and_lines() -> None:
    book = Members()
    lines = [
        "1|MANAGER|sales|PJSIP/201|ADDMEMBER|",
        "2|MANAGER|support|PJSIP/201|ADDMEMBER|",
        "3|c1|billing|PJSIP/201|RINGNOANSWER|15000",  # a static member of billing
        "4|MANAGER|sales|PJSIP/201|REMOVEMEMBER|",
    ]
    got = [(e["type"], [s["queue_id"] for s in e.get("skills", [])], e.get("state"))
           for e in events_of(parse_lines(lines, book))]  # fmt: skip
    assert got == [
        ("agent.skills", ["sales"], None),
        ("agent.state", [], "available"),  # a new member, not paused
        ("agent.skills", ["sales", "support"], None),
        ("agent.skills", ["billing", "sales", "support"], None),
        ("agent.skills", ["billing", "support"], None),
    ]
    last = parse_lines(["5|M|billing|PJSIP/201|REMOVEMEMBER|", "6|M|support|PJSIP/201|REMOVEMEMBER|"], book)  # fmt: skip
    assert [(e["type"], e.get("state")) for e in events_of(last)][-1] == ("agent.state", "offline")


def test_a_latin_1_caller_name_does_not_spoil_the_body() -> None:
    body = "1|c1|q|NONE|ENTERQUEUE||Jos\xe9|1\n2|c2|q|NONE|ENTERQUEUE||7002|2\n".encode("latin-1")
    lines = decode_body(body).splitlines()
    assert lines[0] == "1|c1|q|NONE|ENTERQUEUE||José|1"
    assert [e["call_id"] for e in events_of(parse_lines(lines))] == ["c1", "c2"]
    assert decode_body("x|Ünï|ok\n".encode()) == "x|Ünï|ok\n"  # UTF-8 stays UTF-8


# ---- whole samples through the engine, counted by hand -----------------------------------


def test_freepbx_sample_through_the_engine() -> None:
    """Queue 9000: two calls, answered after 1 s and 2 s by the member
    Local/2004@from-internal/n (talk 3 s and 4 s); eight other members rang unanswered."""
    lines = (FIXTURES / "freepbx.queue_log").read_text().splitlines()
    stats = run(parse_lines(lines), now=100.0)
    q = stats["9000"]
    w = q.windows[300]
    assert (w.arrivals, w.answered, w.answered_within_target, w.abandoned) == (2, 2, 2, 0)
    assert (w.asa_s, w.aht_s) == (1.5, 3.5)
    assert (q.waiting, q.longest_wait_s) == (0, 0.0)
    # only 2004 has a state (available after its call); the ringing members have skills
    assert q.agents.as_json() == {"available": 1, "busy": 0, "wrap_up": 0, "not_ready": 0,
                                  "staffed": 1}  # fmt: skip


def test_support_sample_through_the_engine() -> None:
    """By hand, at 1596513900 over the hour: support had 6 arrivals: .163 abandoned after
    68 s; .170 answered after 20 s (within 30 s); .171 left with key 5 after 28 s, .172
    left an empty queue after 36 s and .173 timed out (1.4 layout, 44 s derived): three
    flow-outs; .174 answered after 72 s. Nobody is left waiting. Both members paused for
    lunch in the same second: 2 not ready. Sales: .164 still waiting since 1596513054
    (846 s), its one member available."""
    body = (FIXTURES / "support.queue_log").read_bytes()
    items = parse_lines(decode_body(body).splitlines())
    stats = run(items, now=1596513900.0)
    support, sales = stats["support"], stats["sales"]
    w = support.windows[3600]
    assert (w.arrivals, w.answered, w.answered_within_target) == (6, 2, 1)
    assert (w.abandoned, w.short_abandoned, w.overflowed, w.callbacks) == (1, 0, 3, 0)
    assert (w.asa_s, w.aht_s) == (46.0, 105.0)
    assert (support.waiting, support.waiting_over_target) == (0, 0)
    assert support.agents.as_json() == {"available": 0, "busy": 0, "wrap_up": 0,
                                        "not_ready": 2, "staffed": 2}  # fmt: skip
    assert (sales.waiting, sales.longest_wait_s) == (1, 846.0)
    assert sales.agents.as_json() == {"available": 1, "busy": 0, "wrap_up": 0, "not_ready": 0,
                                      "staffed": 1}  # fmt: skip
    caller = next(e for e in events_of(items) if e.get("call_id") == "1596513710.170")
    assert caller["type"] == "call.queued"  # the Latin-1 line is counted like the others


def test_a_refused_request_parsed_again_gives_the_same_items() -> None:
    """Ingest parses with a copy of the members and keeps it once the request is taken."""
    book = Members()
    parse_lines(["1|MANAGER|support|PJSIP/201|ADDMEMBER|"], book)
    lines = ["5|c1|sales|PJSIP/201|CONNECT|3|c2|1"]  # implies membership of sales
    refused = parse_lines(lines, book.copy())  # answered 503: the copy is dropped
    again = parse_lines(lines, book.copy())
    assert refused == again
    assert [s["queue_id"] for s in events_of(again)[1]["skills"]] == ["sales", "support"]
    assert book.queues == {"PJSIP/201": {"support"}}
