"""The batch decoder's fast path (`shared.fastcalls`) against the pydantic models that
define what is valid: whatever the fast path takes, pydantic takes with the same values;
what it does not take goes to pydantic; the engine counts the same either way."""

from __future__ import annotations

import json
import math
import random
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared.core.engine import Engine
from shared.events import (
    EVENT_ADAPTER,
    CallEnded,
    CallEvent,
    CallQueued,
    InvalidEvent,
    decode_event,
    decode_events,
)
from shared.fastcalls import (
    NUMBER_LIMIT,
    PATTERNS,
    FastAnswered,
    FastCall,
    FastCallbackCompleted,
    FastEnded,
    FastQueued,
    decode_fast,
    decode_fast_many,
)
from tests.unit.test_tick_incremental import assert_same

# each call event with its twin, by type: a call event without one is a KeyError here
_TWINS = {fast.__struct_config__.tag: fast for fast in get_args(FastCall)}
PAIRS: list[tuple[type[BaseModel], type[msgspec.Struct]]] = [
    (model, _TWINS.pop(get_args(model.model_fields["type"].annotation)[0]))
    for model in get_args(CallEvent)
]
MAX = sys.float_info.max


def _props(schema: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """A JSON schema's properties as rules to compare (`ts` and the fast path's `epoch`
    left out: the random records below compare those)."""
    schema = schema["$defs"][schema["$ref"].split("/")[-1]] if "$ref" in schema else schema
    rules = {k: _rule(v) for k, v in schema["properties"].items() if k not in ("ts", "epoch")}
    return rules, set(schema["required"])


def _rule(rule: dict[str, Any]) -> dict[str, Any]:
    """One property's rule, written one way: no titles; a const as a one-value enum, an
    enum's values in order; `\\Z` (Python's end of text) as pydantic's `$` (Rust's)."""
    rule = {k: v for k, v in rule.items() if k != "title"}
    if "const" in rule:
        rule = {"enum": [rule.pop("const")]}
    if "enum" in rule:
        rule.pop("type", None)
        rule["enum"] = sorted(rule["enum"])
    if rule.get("maximum") == NUMBER_LIMIT:  # the fast path's own bound: pydantic decides beyond
        del rule["maximum"]
    if "pattern" in rule:
        rule["pattern"] = rule["pattern"].replace("\\Z", "$")
    if "anyOf" in rule:
        rule["anyOf"] = [_rule(r) for r in rule["anyOf"]]
    return rule


@pytest.mark.parametrize(("model", "fast"), PAIRS, ids=lambda c: c.__name__)
def test_every_call_event_has_a_twin_with_the_same_fields_and_rules(
    model: type[BaseModel], fast: type[msgspec.Struct]
) -> None:
    mine, required = _props(msgspec.json.schema(fast))
    theirs, their_required = _props(model.model_json_schema())
    # the struct's rules and the pattern matched after decoding (`ts` is compared below)
    assert "pattern" not in mine["event_id"]
    mine["event_id"]["pattern"] = f"^{PATTERNS['event_id']}$"
    assert mine == theirs
    assert required == their_required


def _queued(**extra: object) -> dict[str, object]:
    return {"event_id": "e1", "type": "call.queued", "ts": "2026-11-11T20:00:00.250Z",
            "call_id": "c1", "queue_id": "billing", **extra}  # fmt: skip


def test_a_canonical_call_event_takes_the_fast_path_with_its_values() -> None:
    raw = orjson.dumps(_queued(priority=1, channel="chat", site="north", source="pbx"))
    event = decode_events([raw])[0]
    assert isinstance(event, FastQueued)
    assert (event.event_id, event.call_id, event.queue_id) == ("e1", "c1", "billing")
    assert (event.priority, event.channel, event.site, event.source) == (1, "chat", "north", "pbx")
    assert event.epoch == 1794427200.25 == EVENT_ADAPTER.validate_json(raw).epoch


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        (_queued(note="kept"), "an extra field: pydantic keeps it"),
        (_queued(ts="2026-11-11T20:00:00.1234567Z"), "7 digits: rounded here, cut there"),
        (_queued(ts="2026-11-11T20:00Z"), "no seconds: pydantic's leniency decides"),
        (_queued(ts="2026-11-11 20:00:00Z"), "a space for T: likewise"),
        (
            {
                "event_id": "s1",
                "type": "agent.state",
                "ts": "2026-11-11T20:00:00Z",
                "agent_id": "a1",
                "state": "available",
            },
            "an agent event",
        ),  # fmt: skip
    ],
)
def test_what_the_fast_path_does_not_take_pydantic_decides(
    fields: dict[str, object], why: str
) -> None:
    raw = orjson.dumps(fields)
    with pytest.raises(msgspec.DecodeError):
        decode_fast(raw)
    (event,) = decode_events([raw])
    assert isinstance(event, BaseModel), why
    assert event == decode_event(raw)
    if fields.get("ts") == "2026-11-11T20:00:00.1234567Z":
        assert event.epoch == 1794427200.123456  # cut to microseconds, as ever


def test_an_invalid_record_says_why_whichever_path() -> None:
    bad = [
        orjson.dumps(_queued(priority=7)),
        orjson.dumps(_queued(ts="2026-02-30T00:00:00Z")),
        orjson.dumps({**_queued(), "call_id": ""}),
    ]
    out = decode_events(bad)
    assert [e.errors if isinstance(e, InvalidEvent) else e for e in out] == [
        ["priority: must be <= 3"],
        ["ts: must be an RFC 3339 timestamp"],
        ["call_id: String should have at least 1 character"],
    ]


# ---- random records: the fast path never takes what pydantic refuses ------------------

DIGITS = st.text("0123456789", min_size=1, max_size=3)
TS = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, s, frac, off: f"{y}-{mo}-{d}T{h}:{mi}:{s}{frac}{off}",
        st.sampled_from(["0000", "0001", "1969", "1970", "2024", "2026", "9999"]),
        st.sampled_from(["00", "01", "02", "12", "13"]),
        st.sampled_from(["00", "01", "28", "29", "30", "31", "32"]),
        st.sampled_from(["00", "12", "23", "24"]),
        st.sampled_from(["00", "59", "60"]),
        st.sampled_from(["00", "59", "60", "61"]),
        st.sampled_from(["", ".", ".0", ".5", ".123", ".999999", ".9999995", ".1234567"]),
        st.sampled_from(
            [
                "Z",
                "z",
                "+00:00",
                "-00:00",
                "+05:30",
                "-23:59",
                "+23:59",
                "+24:00",
                "+99:99",
                "",
                "+0530",
                "+05",
            ]
        ),
    ),  # fmt: skip
    st.text(max_size=30),
)
TRICKY: st.SearchStrategy[object] = st.one_of(
    st.sampled_from(
        [
            "",
            "x" * 128,
            "x" * 129,
            "x" * 256,
            "x" * 257,
            "e\n",
            "e 1",
            "é",
            "ок",
            "\u2028",
            0,
            -0.0,
            -1,
            1,
            2,
            3,
            4,
            2.0,
            0.5,
            1e308,
            MAX,
            5e-324,
            True,
            False,
            None,
            [],
            {},
            "12",
            "voice",
            "chat",
            "fax",
            "connected",
            "maybe",
        ]
    ),  # fmt: skip
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
    st.text(max_size=10),
)
RAW_NUMBERS = [
    "1e400",
    "-1e400",
    "1" + "0" * 400,
    "169069915921344850751064383000000000000000",
    "1e15",
    "1000000000000001",
    "1.0e0",
    "2.50",
    "-0",
    "0e0",
    "1E2",
]
FIELDS = ["event_id", "ts", "call_id", "queue_id", "site", "source", "priority", "channel",
          "agent_id", "wait_s", "to_queue_id", "outcome", "talk_s", "hold_s", "wrap_s",
          "type", "epoch"]  # fmt: skip
BASES: list[dict[str, object]] = [
    _queued(),
    {**_queued(), "type": "call.answered", "agent_id": "a1", "wait_s": 12.5},
    {**_queued(), "type": "call.abandoned", "wait_s": 40},
    {**_queued(), "type": "call.overflowed", "to_queue_id": "sales"},
    {**_queued(), "type": "call.callback_requested"},
    {**_queued(), "type": "call.callback_completed", "outcome": "connected", "agent_id": "a2"},
    {**_queued(), "type": "call.ended", "agent_id": "a1", "talk_s": 180, "hold_s": 0.5},
]


def _encode(pairs: list[tuple[str, str]]) -> bytes:
    """A JSON object from (key, value text) pairs: repeated keys and raw numbers kept."""
    return ("{" + ",".join(f"{orjson.dumps(k).decode()}:{v}" for k, v in pairs) + "}").encode()


@st.composite
def records(draw: st.DrawFn) -> bytes:
    base = dict(draw(st.sampled_from(BASES)))
    pairs = [(k, orjson.dumps(v).decode()) for k, v in base.items()]
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["set", "ts", "raw", "drop", "repeat", "extra"]))
        key = draw(st.sampled_from(FIELDS))
        if what == "drop":
            pairs = [(k, v) for k, v in pairs if k != key]
            continue
        if what == "ts":
            key, value = "ts", orjson.dumps(draw(TS)).decode()
        elif what == "raw":
            value = draw(st.sampled_from(RAW_NUMBERS))
        else:
            value = json.dumps(draw(TRICKY))  # integers of any size
        if what == "extra":
            key = draw(st.sampled_from(["note", "Type", "queue_id ", "_x"]))
        if what in ("repeat", "extra") or all(k != key for k, _ in pairs):
            pairs.append((key, value))
        else:
            pairs = [(k, value if k == key else v) for k, v in pairs]
    return _encode(pairs)


def _agree(raw: bytes) -> None:
    try:
        fast = decode_fast(raw)
    except msgspec.DecodeError:
        return  # pydantic decides, as for any record
    try:
        model = EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise AssertionError(f"the fast path took what pydantic refuses: {raw!r}") from exc
    assert model.type == fast.__struct_config__.tag  # the same kind of event
    for name in fast.__struct_fields__:
        if name == "epoch":
            assert fast.epoch == model.epoch, raw
        elif name == "ts":
            assert datetime.fromisoformat(fast.ts) == model.ts, raw
        else:
            mine, theirs = getattr(fast, name), getattr(model, name)
            assert (mine, type(mine)) == (theirs, type(theirs)), (name, raw)
            if isinstance(mine, float):  # -0.0 and 0.0 are ==: the sign too
                assert math.copysign(1, mine) == math.copysign(1, theirs), (name, raw)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_the_fast_path_takes_nothing_pydantic_refuses_and_reads_the_same_values(
    raw: bytes,
) -> None:
    _agree(raw)


def test_the_random_records_reach_both_verdicts() -> None:
    """The property above is no vacuous pass: its records are taken and refused both."""
    taken = find(records(), _taken)
    refused = find(records(), lambda raw: not _taken(raw))
    assert _taken(taken) and not _taken(refused)


def _taken(raw: bytes) -> bool:
    try:
        decode_fast(raw)
    except msgspec.DecodeError:
        return False
    return True


# ---- the engine counts the same whichever path a record took ---------------------------


def _stream(seed: int) -> list[bytes]:
    """Calls of three queues over an hour: queued, then answered or abandoned, ended or
    owed a callback, some delivered twice, some late, a few with extra fields."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for n in range(400):
        t = 1762891200 - rng.uniform(0, 3600)
        q = rng.choice(["billing", "sales", "support"])
        base = {"call_id": f"c{n}", "queue_id": q, "source": rng.choice([None, "pbx"])}
        zone = rng.choice([UTC, timezone(timedelta(hours=1))])

        def stamp(s: float, t: float = t, zone: timezone = zone) -> str:
            return datetime.fromtimestamp(t + s, zone).isoformat()

        evs: list[dict[str, object]] = [
            {"event_id": f"e{n}q", "type": "call.queued", "ts": stamp(0),
             "priority": rng.randrange(4), "site": rng.choice([None, "north"]), **base},
        ]  # fmt: skip
        wait = rng.expovariate(1 / 25)
        kind = rng.random()
        if kind < 0.7:
            evs.append({"event_id": f"e{n}a", "type": "call.answered", "ts": stamp(wait),
                        "agent_id": "a1", **base})  # fmt: skip
            evs.append({"event_id": f"e{n}e", "type": "call.ended", "ts": stamp(wait + 200),
                        "agent_id": "a1", "talk_s": 170.25, "wrap_s": 30, **base})  # fmt: skip
        elif kind < 0.85:
            evs.append({"event_id": f"e{n}b", "type": "call.abandoned", "ts": stamp(wait),
                        "note": "hung up", **base})  # fmt: skip
        else:
            evs.append({"event_id": f"e{n}r", "type": "call.callback_requested",
                        "ts": stamp(wait), **base})  # fmt: skip
            evs.append({"event_id": f"e{n}k", "type": "call.callback_completed",
                        "ts": stamp(wait + 600), "outcome": "connected", **base})  # fmt: skip
        for e in evs:
            e = {k: v for k, v in e.items() if v is not None}
            out.append(orjson.dumps(e))
            if rng.random() < 0.05:
                out.append(orjson.dumps(e))
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_engine_counts_the_same_from_either_path(seed: int) -> None:
    data = _stream(seed)
    batch = decode_events(data)
    assert not [e for e in batch if isinstance(e, InvalidEvent)]
    fast = sum(isinstance(e, FastQueued | FastAnswered | FastEnded | FastCallbackCompleted)
               for e in batch)  # fmt: skip
    assert len(data) > fast > len(data) // 2  # both paths taken
    one, many = Engine(), Engine()
    counted_one = [one.add(decode_event(raw)) for raw in data]
    times = many.add_many([e for e in batch if not isinstance(e, InvalidEvent)])
    assert counted_one == [t == t for t in times]
    for now in (1762891200.0, 1762891200.0 + 900):
        assert_same(many.compute(now), one.compute(now), now)


# ---- found in review: each failed before its fix ----------------------------------------


def test_a_record_neither_decoder_can_read_is_invalid_not_an_error() -> None:
    """Bytes that are not UTF-8 made msgspec raise UnicodeDecodeError, which escaped
    `decode_events` and stopped the consumer loop (no DLQ, no commit)."""
    raw = b'{"event_id":"e1","type":"call.queued","ts":"\xff","call_id":"c1","queue_id":"q"}'
    (out,) = decode_events([raw])
    assert isinstance(out, InvalidEvent)
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw)
    assert out.errors == caught.value.errors


def test_a_deeply_nested_extra_field_goes_to_pydantic() -> None:
    """A record nested 1,000 deep made msgspec raise RecursionError; pydantic takes it."""
    raw = b'{"note":' + b"[" * 1000 + b"]" * 1000 + b"," + orjson.dumps(_queued())[1:]
    (out,) = decode_events([raw])
    assert isinstance(out, CallQueued)
    assert (out.event_id, out.call_id, out.queue_id, out.epoch) == (
        "e1",
        "c1",
        "billing",
        1794427200.25,
    )


@pytest.mark.parametrize("offset", ["+00:99", "+05:60", "-01:75"])
def test_an_offset_of_sixty_minutes_or_more_is_invalid(offset: str) -> None:
    """Python reads `+00:99` as 1 h 39 min; pydantic refuses it. The fast path took it and
    counted the call 99 minutes off."""
    raw = orjson.dumps(_queued(ts=f"2026-11-11T20:00:00{offset}"))
    with pytest.raises(msgspec.DecodeError):
        decode_fast(raw)
    (out,) = decode_events([raw])
    assert isinstance(out, InvalidEvent)
    assert out.errors == ["ts: must be an RFC 3339 timestamp"]


@pytest.mark.parametrize(
    "number", ["169069915921344850751064383000000000000000", "1" + "0" * 20, "1e16"]
)
def test_a_huge_number_is_read_as_pydantic_reads_it(number: str) -> None:
    """msgspec rounds an integer of 40 digits to the nearest float, pydantic's parser not
    always (1.6906991592134486e+41 against ...484e+41): beyond 1e15 pydantic decides."""
    base = {**BASES[-1], "talk_s": 0}
    raw = orjson.dumps(base).replace(b'"talk_s":0', b'"talk_s":' + number.encode())
    (out,) = decode_events([raw])
    assert isinstance(out, CallEnded)
    assert out.talk_s == EVENT_ADAPTER.validate_json(raw).talk_s  # type: ignore[union-attr]


# ---- a batch: its patterns are matched in one call, each record's verdict its own -------


def _verdict(event: object) -> tuple[str, object]:
    """What decoding gave, comparably: the class, and the values or the reasons."""
    if isinstance(event, InvalidEvent):
        return "invalid", event.errors
    if isinstance(event, BaseModel):
        return type(event).__name__, event.model_dump()
    assert isinstance(event, msgspec.Struct)
    return type(event).__name__, msgspec.structs.asdict(event)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=12))
def test_a_batch_decodes_each_record_as_it_decodes_alone(batch: list[bytes]) -> None:
    alone = [_verdict(decode_events([raw])[0]) for raw in batch]
    assert [_verdict(e) for e in decode_events(batch)] == alone
    assert [e is not None for e in decode_fast_many(batch)] == [_taken(raw) for raw in batch]


@pytest.mark.parametrize(
    "fields",
    [
        _queued(event_id="e2\ne3"),  # joined, "e1 e2 e3 e4" would read as four good ids
        _queued(ts="2026-11-11T20:00:00Z\n2026-11-11T20:00:00Z"),
        _queued(event_id="e2\n"),
        _queued(event_id="e 2"),
    ],
    ids=["id-of-two-lines", "ts-of-two-lines", "id-ending-in-a-line-break", "id-with-a-space"],
)
def test_a_value_with_a_line_break_in_a_batch_goes_to_pydantic(fields: dict[str, object]) -> None:
    batch = [orjson.dumps(_queued(event_id="e1")), orjson.dumps(fields)]
    batch.append(orjson.dumps(_queued(event_id="e4", call_id="c4")))
    first, bad, last = decode_events(batch)
    assert isinstance(first, FastQueued) and first.event_id == "e1"
    assert isinstance(last, FastQueued) and (last.event_id, last.call_id) == ("e4", "c4")
    assert isinstance(bad, InvalidEvent)
    assert decode_fast_many(batch)[1] is None


def test_a_time_with_no_offset_in_a_batch_goes_to_pydantic() -> None:
    """Read before the batch's patterns are matched, `ts` with no offset is local time
    to Python; pydantic refuses it, and so the batch does."""
    batch = [orjson.dumps(_queued(ts=ts)) for ts in ("2026-11-11T20:00:00Z", "2026-11-11T20:00:00")]
    ok, naive = decode_events(batch)
    assert isinstance(ok, FastQueued) and ok.epoch == 1794427200.0
    assert isinstance(naive, InvalidEvent)
    assert naive.errors == ["ts: timestamp must include a UTC offset"]
