"""Routing rules, the weekly rota, paging per incident, the outbox schedule, signed links
and what each channel is sent (pure)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from services.notify.channels import build, headline
from services.notify.outbox import Outcome, classify, next_due
from services.notify.pager import Pager, Push, lead_tag
from services.notify.service import decode_fact
from shared.consume import Poison
from shared.messages.alerts import AlertChange
from shared.messages.incidents import ActionView, AlertView, Incident
from shared.notify_config import Channel, NotifyConfig, Rota, ack_what, link_ok, link_sig

LONDON = ZoneInfo("Europe/London")
ROTA = Rota.model_validate(
    {"timezone": "Europe/London", "handovers": [
        {"weekday": 0, "at": "08:00", "leads": ["ann", "bob"]},   # Monday day
        {"weekday": 0, "at": "20:00", "leads": ["cy", "ann"]},    # Monday night
        {"weekday": 4, "at": "20:00", "leads": ["dee"]},          # the weekend
    ]}
)  # fmt: skip


@pytest.mark.parametrize(
    ("local", "leads"),
    [
        ("2026-11-23 07:59", ["dee"]),  # Monday before the first handover: last week's weekend
        ("2026-11-23 08:00", ["ann", "bob"]),
        ("2026-11-23 19:59", ["ann", "bob"]),
        ("2026-11-24 03:00", ["cy", "ann"]),  # Tuesday night still Monday night's
        ("2026-11-28 12:00", ["dee"]),  # Saturday
        (
            "2026-07-06 08:30",
            ["ann", "bob"],
        ),  # summer time: London is UTC+1, handover in local time
    ],
)
def test_rota_hands_over_in_its_own_time_zone(local: str, leads: list[str]) -> None:
    at = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=LONDON).timestamp()
    assert ROTA.on_call(at) == leads


def config(**extra: Any) -> NotifyConfig:
    return NotifyConfig.model_validate(
        {"leads": [{"name": n, "channels": [{"type": "slack", "url": "http://x"}]} for n in ("ann", "bob", "cy", "dee")],
         "rotas": {"default": ROTA.model_dump()}, "ack_timeout_s": 60, "min_update_s": 30, **extra}
    )  # fmt: skip


MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=LONDON).timestamp()


def incident(*alerts: tuple[str, int], acked_by: str | None = None, **extra: Any) -> Incident:
    views = [AlertView(alert_id=f"{kind}:q", kind=kind, tier=tier, raised_at=MONDAY_NOON,  # type: ignore[arg-type]
                       acked_by=acked_by) for kind, tier in alerts]  # fmt: skip
    fields = {
        "incident_id": "inc_1",
        "queue_id": "q",
        "opened_at": MONDAY_NOON,
        "updated_at": MONDAY_NOON,
        "alerts": tuple(views),
        **extra,
    }
    return Incident.model_validate(fields)  # fmt: skip


@pytest.mark.parametrize(
    ("alerts", "told"),
    [([("surge", 1)], []), ([("surge", 2)], ["ann"]), ([("surge", 3)], ["ann"]),
     ([("sl_breach", 0)], ["ann"]), ([("surge", 1), ("sl_breach", 0)], ["ann"])],
)  # fmt: skip
def test_default_rule_is_tiers_two_and_three_and_breaches(
    alerts: list[tuple[str, int]], told: list[str]
) -> None:
    pushes = Pager().on_incident(incident(*alerts), config(), MONDAY_NOON)
    assert [(p.lead, p.event) for p in pushes] == [(lead, "trigger") for lead in told]


def test_one_page_per_incident_updates_held_escalation_and_repeats() -> None:
    p, c, t = Pager(), config(), MONDAY_NOON
    assert [(x.event, x.lead) for x in p.on_incident(incident(("surge", 2)), c, t)] == [
        ("trigger", "ann")
    ]
    # the breach of the same queue a moment later: no second page, an update 30 s after the page
    assert p.on_incident(incident(("surge", 2), ("sl_breach", 0)), c, t + 1) == []
    assert p.on_tick(c, t + 29) == []
    [update] = p.on_tick(c, t + 30)
    assert (update.event, update.lead, update.news) == ("update", "ann", ("answer rate breach",))
    assert update.delivery_id == f"inc_1.2.update.{lead_tag('ann')}.0"
    assert p.on_incident(incident(("surge", 2), ("sl_breach", 0)), c, t + 31) == []  # nothing new
    assert [(x.event, x.lead) for x in p.on_tick(c, t + 60)] == [("escalate", "bob")]
    assert [(x.event, x.lead) for x in p.on_tick(c, t + 120)] == [
        ("repeat", "ann"),
        ("repeat", "bob"),
    ]
    assert p.on_tick(c, t + 120 + 899) == []
    assert [x.event for x in p.on_tick(c, t + 120 + 900)] == ["repeat", "repeat"]


def test_an_ack_stops_escalation_and_the_close_resolves() -> None:
    p, c, t = Pager(), config(), MONDAY_NOON
    p.on_incident(incident(("surge", 3)), c, t)
    acked = p.on_incident(incident(("surge", 3), acked_by="Zoë"), c, t + 10)
    assert [(x.event, x.lead) for x in acked] == [("acknowledge", "ann")]
    assert p.pages["inc_1"].acked_by == "Zoë"
    assert p.on_tick(c, t + 3600) == []
    closed = incident(("surge", 3), acked_by="Zoë", state="closed", closed_at=t + 400)
    assert [(x.event, x.lead) for x in p.on_incident(closed, c, t + 400)] == [("resolve", "ann")]
    assert p.on_incident(closed, c, t + 401) == []
    assert Pager.from_json(p.as_json()) == p
    p.forget(older_than=t + 400)
    assert list(p.pages) == ["inc_1"]  # resolved at t + 400: kept until then
    p.forget(older_than=t + 400.001)
    assert p.pages == {}


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        ("whsec_" + base64.b64encode(b"k" * 24).decode(), None),
        ("whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("="), None),
        ("plain-secret", "starts with whsec_"),
        ("whsec_Zoë!!", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes, not 5"),
    ],
)
def test_webhook_secrets_are_checked_when_configured(secret: str, error: str | None) -> None:
    channel = {"type": "webhook", "url": "http://x", "secret": secret}
    if error is None:
        Channel.model_validate(channel)
    else:
        with pytest.raises(ValidationError, match=error):
            Channel.model_validate(channel)


@pytest.mark.parametrize(
    ("status", "retry_after", "outcome"),
    [
        (200, None, Outcome("delivered")), (204, None, Outcome("delivered")),
        (400, None, Outcome("failed", "HTTP 400: refused, not retried")),
        (404, None, Outcome("failed", "HTTP 404: refused, not retried")),
        (408, None, Outcome("retry", "HTTP 408")),
        (410, None, Outcome("disabled", "HTTP 410: endpoint gone, disabled")),
        (429, "7", Outcome("retry", "HTTP 429", 7.0)), (429, "soon", Outcome("retry", "HTTP 429")),
        (503, "7", Outcome("retry", "HTTP 503")), (None, None, Outcome("retry", "ConnectError")),
    ],
)  # fmt: skip
def test_what_an_answer_means(
    status: int | None, retry_after: str | None, outcome: Outcome
) -> None:
    assert classify(status, retry_after, "ConnectError" if status is None else None) == outcome


def test_retries_follow_the_standard_webhooks_schedule() -> None:
    plain = [next_due(n, 0.0, 1.0, Outcome("retry")) for n in range(1, 9)]
    assert plain == [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, None]
    assert [next_due(n, 100.0, 0.01, Outcome("retry")) for n in (1, 2, 3)] == [100.05, 103.0, 118.0]
    assert next_due(1, 0.0, 0.01, Outcome("retry", None, 7.0)) == 7.0  # 429: Retry-After wins
    # a receiver down for 30 s: attempts at 0 and 5 s fail, the one at 305 s gets it
    assert next_due(2, 5.0, 1.0, Outcome("retry")) == 305.0


def test_signed_links_expire_and_name_what_they_do() -> None:
    key = b"k" * 32
    sig = link_sig(key, ack_what("surge:Soporte Técnico:1", "Zoë"), 1000.0, 3600)
    assert sig.startswith("4600.")
    assert link_ok(key, ack_what("surge:Soporte Técnico:1", "Zoë"), sig, 4600.0)
    assert not link_ok(key, ack_what("surge:Soporte Técnico:1", "Zoë"), sig, 4601.0)  # expired
    assert not link_ok(key, ack_what("surge:other:1", "Zoë"), sig, 2000.0)
    assert not link_ok(key, ack_what("surge:Soporte Técnico:1", "Bob"), sig, 2000.0)
    assert not link_ok(b"x" * 32, ack_what("surge:Soporte Técnico:1", "Zoë"), sig, 2000.0)
    assert not link_ok(key, ack_what("surge:Soporte Técnico:1", "Zoë"), "9" * 40 + ".ab", 2000.0)


def test_slack_sms_and_pagerduty_requests() -> None:
    c = NotifyConfig.model_validate({"api_url": "http://api", "leads": [{"name": "Zoë", "channels": [
        {"type": "slack", "url": "http://slack"}, {"type": "pagerduty", "url": "http://pd", "routing_key": "R"},
        {"type": "sms", "url": "http://twilio", "account_sid": "AC1", "auth_token": "tok",
         "from_number": "+15550001", "to_number": "+34 600 000 000"}]}]})  # fmt: skip
    action = ActionView(action_id="a1", state="proposed", created_at=MONDAY_NOON, changed_at=MONDAY_NOON,
                        summary="move 2 from billing", commands=[{"type": "agent.reassign"}] * 2)  # fmt: skip
    inc = incident(("surge", 3), actions=(action,), queue_id="Soporte Técnico/" + "x" * 256)
    push = Push("inc_1.1.trigger.x.0", "inc_1", "trigger", "Zoë", 0, MONDAY_NOON)
    lead = c.leads[0]
    slack = orjson.loads(build(push, inc, lead.channels[0], c, b"k" * 32, None, MONDAY_NOON).body)
    buttons = slack["blocks"][2]["elements"]
    assert [(b["action_id"], b.get("value")) for b in buttons] == [
        ("ack", "surge:q"),
        ("approve", "a1"),
        ("open", None),
    ]
    assert slack["blocks"][1]["text"]["text"] == "• move 2 from billing: waiting for approval"
    pd = orjson.loads(build(push, inc, lead.channels[1], c, b"k" * 32, None, MONDAY_NOON).body)
    assert (pd["dedup_key"], pd["payload"]["severity"], len(pd["payload"]["source"])) == (
        "inc_1",
        "critical",
        255,
    )
    sms = build(push, inc, lead.channels[2], c, b"k" * 32, None, MONDAY_NOON)
    assert sms.url == "http://twilio/2010-04-01/Accounts/AC1/Messages.json"
    assert sms.headers["authorization"] == "Basic " + base64.b64encode(b"AC1:tok").decode()
    form = parse_qs(sms.body.decode())
    assert (form["To"], form["From"]) == (["+34 600 000 000"], ["+15550001"])
    assert form["Body"][0].startswith("[OPEN] Soporte Técnico/xxx")
    assert "\nAck: http://api/ack/surge%3Aq?by=Zo%C3%AB&sig=" in form["Body"][0]
    assert headline(inc, "acknowledge", "Zoë").startswith("[ACK by Zoë] Soporte Técnico/xx")
    assert headline(inc, "repeat").endswith(": surge tier 3, n/a of expected, answer rate n/a now")


def test_config_refuses_unknown_leads_and_zones() -> None:
    with pytest.raises(ValidationError, match="unknown leads"):
        NotifyConfig.model_validate(
            {"rotas": {"default": {"handovers": [{"weekday": 0, "at": "08:00", "leads": ["zed"]}]}}}
        )
    with pytest.raises(ValidationError):
        Rota.model_validate(
            {
                "timezone": "Mars/Olympus",
                "handovers": [{"weekday": 0, "at": "08:00", "leads": ["a"]}],
            }
        )


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b'{"action_id": "a1", "queue_id": "q", "state": "sent", "created_at": "2026-11-11T20:00:00Z"}', dict),
        (b'{"alert_id": "s:q:1", "kind": "surge", "queue_id": "q", "transition": "raised", "at": "2026-11-11T20:00:00Z"}',
         AlertChange),
        (b"{not json", "Invalid JSON"),
        (b'{"action_id": "a1", "state": "sent"}', "an action is a JSON object with a queue_id"),
        (b'{"action_id": "a1", "queue_id": "q", "state": "sent"}', "action: ValidationError"),
        (b'{"alert_id": "s:q:1", "kind": "fire", "queue_id": "q", "transition": "raised", "at": "2026-11-11T20:00:00Z"}',
         "kind: Input should be 'surge' or 'sl_breach'"),
    ],
)  # fmt: skip
def test_one_consumer_reads_alerts_typed_and_actions_tolerantly(
    raw: bytes, decoded: type | str
) -> None:
    if isinstance(decoded, type):
        assert type(decode_fact(raw)) is decoded
    else:
        with pytest.raises(Poison, match=decoded):
            decode_fact(raw)
