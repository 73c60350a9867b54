"""Routing rules, the weekly rota, and incidents that do not flap (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.notify.incidents import Notifier
from shared.notify_config import NotifyConfig, Rota

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
         "rotas": {"default": ROTA.model_dump()}, "ack_timeout_s": 60, "reopen_within_s": 120, **extra}
    )  # fmt: skip


MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=LONDON).timestamp()


@pytest.mark.parametrize(
    ("kind", "tier", "told"),
    [("surge", 1, []), ("surge", 2, ["ann"]), ("surge", 3, ["ann"]), ("sl_breach", 0, ["ann"])],
)
def test_default_rule_is_tiers_two_and_three_and_breaches(
    kind: str, tier: int, told: list[str]
) -> None:
    pushes = Notifier().on_change(
        {
            "alert_id": "a1",
            "kind": kind,
            "queue_id": "q",
            "transition": "raised",
            "tier": tier,
            "at": "t",
        },
        config(),
        MONDAY_NOON,
    )
    assert [p.lead for p in pushes] == told


def raised(alert_id: str, at: str, tier: int = 2) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "kind": "surge",
        "queue_id": "q",
        "transition": "raised",
        "tier": tier,
        "at": at,
    }


def test_escalation_order_then_repeat_and_a_flap_is_the_same_incident() -> None:
    n, c, t = Notifier(), config(), MONDAY_NOON
    assert [(p.event, p.lead) for p in n.on_change(raised("a1", "t0"), c, t)] == [
        ("trigger", "ann")
    ]
    assert n.on_tick(c, t + 59) == []
    assert [(p.event, p.lead) for p in n.on_tick(c, t + 60)] == [("escalate", "bob")]
    assert [(p.event, p.lead) for p in n.on_tick(c, t + 120)] == [
        ("repeat", "ann"),
        ("repeat", "bob"),
    ]
    assert n.on_change(raised("a1", "t0"), c, t + 121) == []  # a redelivery changes nothing
    clear = {**raised("a1", "t1", 0), "transition": "cleared"}
    assert n.on_change(clear, c, t + 130) == []
    # raised again within 120 s as a new alert: the same incident, no resolve sent
    again = n.on_change(raised("a2", "t2"), c, t + 200)
    assert [(p.incident_id, p.event) for p in again] == [("a1", "update"), ("a1", "update")]
    assert n.on_tick(c, t + 251) == []
    n.on_change({**raised("a2", "t3", 0), "transition": "cleared"}, c, t + 300)
    assert [(p.event, p.lead) for p in n.on_tick(c, t + 420)] == [
        ("resolve", "ann"),
        ("resolve", "bob"),
    ]


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
