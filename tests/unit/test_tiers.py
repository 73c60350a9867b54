"""Surge tiers and the SL breach alert (contract 5), tick by tick from tables."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.core.engine import AgentCounts, QueueStats, WindowMetrics
from shared.core.tiers import QueueAlertState, expected_arrivals, step
from shared.forecast import Forecast
from shared.queue_settings import QueueSettings
from tests.conftest import T0

NOW = T0.timestamp()
# 100 arrivals expected in every 300 s surge window around NOW
FLAT = Forecast(queue_id="q", start=T0 - timedelta(hours=2), interval_s=300, arrivals=[100] * 48)


def stats(
    at: float,
    arrivals: int,
    answered_within: int = 0,
    offered: int = 0,
    over: int = 0,
    baseline: int | None = None,
    settings: QueueSettings | None = None,
) -> QueueStats:
    live = answered_within / (offered + over) if offered + over else None
    window = WindowMetrics(
        arrivals=arrivals, answered=offered, answered_within_target=answered_within,
        short_abandoned=0, abandoned=0, callbacks=0, overflowed=0, offered=offered,
        answer_rate=answered_within / offered if offered else None, answer_rate_live=live,
        abandon_rate=0.0 if offered else None, asa_s=None, aht_s=None,
    )  # fmt: skip
    s = settings or QueueSettings()
    return QueueStats(
        queue_id="q", now=NOW + at, windows=dict.fromkeys(s.windows_s, window), waiting=over,
        waiting_over_target=over, longest_wait_s=0.0, agents=AgentCounts(),
        surge_arrivals=arrivals, baseline_arrivals=baseline, settings=s,
    )  # fmt: skip


# (seconds after NOW, arrivals in the surge window, tier after the tick, transition or None)
SURGE = [
    (0, 119, 0, None),  # ratio 1.19
    (2, 120, 1, "raised"),  # 1.20 reaches tier 1
    (4, 210, 3, "escalated"),  # 2.10 jumps straight to tier 3
    (6, 195, 3, None),  # 1.95 is above the exit line 1.90
    (8, 189, 3, None),  # below 1.90 from t=8 ...
    (127, 150, 3, None),  # ... 119 s so far
    (128, 150, 2, "deescalated"),  # 120 s: one tier down; tier 2's clock starts now
    (130, 139, 2, None),
    (247, 139, 2, None),
    (248, 139, 1, "deescalated"),  # 120 s after the last step
    (300, 130, 1, None),  # 1.30 is above tier 1's exit line 1.10: the clock resets
    (302, 105, 1, None),
    (421, 105, 1, None),
    (422, 105, 0, "cleared"),
    (424, 119, 0, None),
]


def test_tiers_enter_at_once_and_leave_one_at_a_time() -> None:
    state = QueueAlertState()
    seen = []
    for at, arrivals, _tier, _transition in SURGE:
        result = step(state, stats(at, arrivals), FLAT)
        state = result.state
        got = [c.transition for c in result.changes if c.kind == "surge"]
        seen.append((at, state.tier, got[0] if got else None))
        assert result.surge.expected == pytest.approx(100.0)
    assert seen == [(at, tier, transition) for at, _, tier, transition in SURGE]


def test_every_change_carries_its_numbers_and_one_id() -> None:
    first = step(QueueAlertState(), stats(0, 160), FLAT)
    (raised,) = first.changes
    assert raised.as_json() == {
        "alert_id": f"surge:q:{int(NOW * 1000)}",
        "kind": "surge",
        "queue_id": "q",
        "transition": "raised",
        "tier": 2,
        "from_tier": 0,
        "at": "2026-11-11T20:00:00.000Z",
        "numbers": {
            "ratio": 1.6, "expected": 100.0, "arrivals": 160, "surge_window_s": 300,
            "answer_rate": None, "answer_rate_live": None, "offered": 0,
            "waiting_over_target": 0, "window_s": 300, "threshold": 1.5,
        },
    }  # fmt: skip
    second = step(first.state, stats(2, 250), FLAT)
    assert [(c.alert_id, c.transition, c.from_tier, c.tier) for c in second.changes] == [
        (raised.alert_id, "escalated", 2, 3)
    ]


def test_no_tier_below_min_arrivals_or_without_expectation() -> None:
    small = Forecast(queue_id="q", start=T0 - timedelta(hours=1), interval_s=300, arrivals=[5] * 24)
    assert step(QueueAlertState(), stats(0, 9), small).state.tier == 0  # ratio 1.8, 9 < 10
    assert step(QueueAlertState(), stats(0, 10), small).state.tier == 3  # ratio 2.0
    nothing = step(QueueAlertState(), stats(0, 500), None)
    assert (nothing.surge.ratio, nothing.surge.expected, nothing.state.tier) == (None, None, 0)


@pytest.mark.parametrize(
    ("baseline", "forecast", "expected"),
    [
        (600, None, 50.0),  # 600 in the hour before -> 50 per 300 s
        (600, FLAT, 100.0),  # a covering forecast wins
        (None, None, None),  # the hour before not yet observed
    ],
)
def test_expected_from_forecast_or_baseline(
    baseline: int | None, forecast: Forecast | None, expected: float | None
) -> None:
    assert expected_arrivals(stats(0, 0, baseline=baseline), forecast) == expected


def test_forecast_is_prorated_within_intervals() -> None:
    f = Forecast(queue_id="q", start=T0, interval_s=600, arrivals=[60, 120, 30])
    # (T0+450, T0+750]: 150 s of interval 0 (60/600 per s) and 150 s of interval 1
    assert f.expected(NOW + 450, NOW + 750) == pytest.approx(15 + 30)
    assert f.covers(NOW, NOW + 1800) and not f.covers(NOW - 1, NOW + 10)


def test_sl_breach_raises_and_clears_after_hold() -> None:
    rows = [
        # at, within, offered, over, breach, transition
        (0, 8, 9, 0, False, None),  # live 8/9 = 0.889 >= 0.85
        (2, 7, 8, 1, False, None),  # live 7/9 = 0.778 but volume 9 < 10
        (4, 7, 9, 1, True, "raised"),  # live 7/10 = 0.70, volume 10
        (6, 86, 100, 0, True, None),  # 0.86 is not yet 0.87: stays
        (8, 87, 100, 0, True, None),  # 0.87: the clear clock starts
        (127, 87, 100, 0, True, None),
        (128, 87, 100, 0, False, "cleared"),  # 120 s at or above 0.87
    ]
    state = QueueAlertState()
    for at, within, offered, over, breach, transition in rows:
        result = step(state, stats(at, 0, within, offered, over), FLAT)
        state = result.state
        got = [c.transition for c in result.changes if c.kind == "sl_breach"]
        assert (at, state.breach, got[0] if got else None) == (at, breach, transition)
