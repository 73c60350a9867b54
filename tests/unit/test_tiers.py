"""Surge tiers and the SL breach alert (contract 5), tick by tick from tables.

Every p-value is worked out here independently of the code under test: the Poisson
upper tail summed exactly with fractions, `e^-E * sum_{k >= N} E^k / k!`.
"""

from __future__ import annotations

import math
from datetime import timedelta
from fractions import Fraction

import orjson
import pytest

from shared.core.figures import AgentCounts, QueueStats, WindowMetrics
from shared.core.tiers import QueueAlertState, evidence, expected_for, poisson_tail, step
from shared.forecast import Forecast
from shared.messages.alerts import AlertChange, AlertRecord, apply_change
from shared.queue_settings import QueueSettings
from tests.conftest import T0, iso

NOW = T0.timestamp()
# the tables are worked at the contract's significance level, 1e-4 (the default is 1e-7)
P = 1e-4
ONE = QueueSettings(surge_windows_s=[300], surge_p_value=P)  # one surge window, the primary one
FOUR = QueueSettings(surge_p_value=P)  # the default windows 30, 60, 300, 900


def tail(n: int, mean: int) -> float:
    """P(Poisson(mean) >= n): the tail's terms summed exactly as fractions (until they
    are below 1e-30 of the sum), then scaled by e^-mean in logarithms."""
    term = Fraction(mean**n, math.factorial(n))
    total = Fraction(0)
    k = n
    while term * 10**30 > total:
        total += term
        k += 1
        term = term * mean / k
    log_total = math.log(total.numerator) - math.log(total.denominator)
    return math.exp(log_total - mean)


def flat(per_300s: float) -> Forecast:
    """A forecast of `per_300s` arrivals every 300 s, from two hours before NOW."""
    start = T0 - timedelta(hours=2)
    return Forecast(queue_id="q", start=start, interval_s=300, arrivals=[per_300s] * 48)


def stats(
    at: float,
    counts: dict[int, tuple[int, int | None]],
    settings: QueueSettings = ONE,
    within: int = 0,
    offered: int = 0,
    over: int = 0,
    queue_id: str = "q",
) -> QueueStats:
    live = within / (offered + over) if offered + over else None
    window = WindowMetrics(
        arrivals=0, answered=offered, answered_within_target=within,
        short_abandoned=0, abandoned=0, callbacks=0, overflowed=0, offered=offered,
        answer_rate=within / offered if offered else None, answer_rate_live=live,
        abandon_rate=0.0 if offered else None, asa_s=None, aht_s=None,
    )  # fmt: skip
    primary = counts.get(settings.surge_window_s, (0, None))
    return QueueStats(
        queue_id=queue_id, now=NOW + at, windows=dict.fromkeys(settings.windows_s, window),
        waiting=over, waiting_over_target=over, longest_wait_s=0.0, agents=AgentCounts(),
        surge_arrivals=primary[0], baseline_arrivals=primary[1], settings=settings,
        surge_counts=counts,
    )  # fmt: skip


# ---- the Poisson tail --------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "mean"),
    [
        (1, 2),  # 1 - e^-2 = 0.8647
        (10, 1),  # 1.114e-7: ten calls in a window expecting one
        (12, 5),  # 0.0055: 240% of a tiny forecast is chance
        (15, 10),  # 0.0835: v1's tier 2 on a small queue
        (60, 50),  # 0.0923: 120% of 50
        (90, 50),  # 1.1e-7
        (1200, 1000),  # 1.6e-10: 120% of a big queue is not chance
        (2000, 2000),  # a big queue at its forecast: just over one half
        (5000, 4000),  # far in the tail, far beyond any float factorial
    ],
)
def test_poisson_tail_is_exact(n: int, mean: int) -> None:
    assert poisson_tail(n, mean) == pytest.approx(tail(n, mean), rel=1e-9)


def test_poisson_tail_at_the_edges() -> None:
    assert poisson_tail(0, 3.0) == 1.0  # at least nothing: certain
    assert poisson_tail(1, 2.0) == pytest.approx(1 - math.exp(-2.0), rel=1e-12)
    assert poisson_tail(200_000, 100_000.0) == 0.0  # underflows to 0, no overflow error


# ---- expected(W) and its basis --------------------------------------------------------


@pytest.mark.parametrize(
    ("forecast", "declared", "before", "window", "expected", "basis"),
    [
        (flat(100), None, 600, 300, 100.0, "forecast"),  # a covering forecast wins
        (flat(100), 1200.0, 600, 30, 10.0, "forecast"),  # prorated: 30 s of 100 per 300 s
        (None, 1200.0, 600, 300, 100.0, "declared"),  # 1200 an hour -> 100 per 300 s
        (None, 1200.0, None, 60, 20.0, "declared"),  # a new line: no hour observed yet
        (None, None, 600, 300, 50.0, "baseline"),  # 600 in the hour before -> 50 per 300 s
        (None, None, 600, 30, 5.0, "baseline"),
        (None, None, None, 300, None, None),  # the hour before not yet observed
    ],
)
def test_expected_from_forecast_declared_or_baseline(
    forecast: Forecast | None,
    declared: float | None,
    before: int | None,
    window: int,
    expected: float | None,
    basis: str | None,
) -> None:
    s = QueueSettings(surge_windows_s=[window], expected_per_hour=declared)
    got = expected_for(window, stats(0, {window: (0, before)}, s), forecast)
    assert got == (pytest.approx(expected) if expected is not None else None, basis)


def test_a_forecast_not_covering_the_window_falls_back() -> None:
    late = Forecast(queue_id="q", start=T0 - timedelta(seconds=100), interval_s=300, arrivals=[9])
    s = QueueSettings(surge_windows_s=[30, 300], surge_p_value=P)
    st = stats(0, {30: (0, 720), 300: (0, 720)}, s)
    assert expected_for(30, st, late)[1] == "forecast"  # (NOW - 30, NOW] is covered
    assert expected_for(30, st, late)[0] == pytest.approx(0.9)
    assert expected_for(300, st, late)[1] == "baseline"  # 720 an hour -> 60 per 300 s
    assert expected_for(300, st, late)[0] == pytest.approx(60.0)
    # prorated: 150 s of 60 per 300 s and 150 s of 120 per 300 s, as Forecast.expected
    two = Forecast(queue_id="q", start=T0 - timedelta(seconds=450), interval_s=300, arrivals=[60, 120])  # fmt: skip
    assert expected_for(300, st, two) == (30.0 + 60.0, "forecast")
    assert two.expected(NOW - 300, NOW) == 90.0


# ---- evidence: ratio, p and the tier each window indicates -----------------------------


@pytest.mark.parametrize(
    ("arrivals", "per_300s", "ratio", "tier"),
    [
        (120, 100, 1.2, 0),  # 120% of 100: p = 0.0282, chance
        (1200, 1000, 1.2, 1),  # 120% of 1000: p = 1.6e-10
        (1500, 1000, 1.5, 2),
        (2000, 1000, 2.0, 3),
        (1199, 1000, 1.199, 0),  # below the line, however significant
        (12, 5, 2.4, 0),  # 240% of a tiny forecast: p = 0.0055
        (18, 5, 3.6, 3),  # p = 2.5e-5 <= 1e-4
        (9, 1, 9.0, 0),  # p = 1.0e-6 but 9 < min_arrivals
        (10, 1, 10.0, 3),  # p = 1.1e-7 and 10 arrivals
    ],
)
def test_a_window_indicates_a_tier_when_high_many_and_significant(
    arrivals: int, per_300s: int, ratio: float, tier: int
) -> None:
    (row,) = evidence(stats(0, {300: (arrivals, None)}), flat(per_300s), QueueAlertState())
    assert (row.window_s, row.arrivals, row.basis) == (300, arrivals, "forecast")
    assert row.expected == pytest.approx(per_300s)
    assert row.ratio == pytest.approx(ratio)
    assert row.p == pytest.approx(tail(arrivals, per_300s), rel=1e-9)
    assert row.tier == tier


def test_every_window_is_weighed_and_the_highest_tier_is_shown() -> None:
    # 1,200 an hour in the hour before: 10, 20, 100, 300 expected per window; 30 s and
    # 60 s: a step to 8x 20 s ago (46 more calls than usual); 300 s, 900 s: other counts
    counts: dict[int, tuple[int, int | None]] = {30: (10 + 140 // 3, 1200), 60: (20 + 140 // 3, 1200), 300: (150, 1200), 900: (350, 1200)}  # fmt: skip
    st = stats(0, counts, FOUR)
    rows = evidence(st, None, QueueAlertState())
    assert [(r.window_s, r.arrivals, r.expected, r.tier) for r in rows] == [
        (30, 56, 10.0, 3), (60, 66, 20.0, 3), (300, 150, 100.0, 2), (900, 350, 300.0, 0),
    ]  # fmt: skip
    # 300 s: p(150 | 100) = 2.3e-6 -> tier 2; 900 s: 350 of 300 is p = 0.0029
    assert [r.p for r in rows] == pytest.approx(
        [tail(56, 10), tail(66, 20), tail(150, 100), tail(350, 300)], rel=1e-9
    )
    result = step(QueueAlertState(), st, None)
    # tiers 3 from 30 s and 60 s: the smaller p is the 30 s window's
    assert (result.state.tier, result.surge.window_s, result.surge.arrivals) == (3, 30, 56)
    assert result.surge.basis == "baseline"
    assert result.surge.p == pytest.approx(tail(56, 10), rel=1e-9)
    quiet = step(QueueAlertState(), stats(0, {30: (12, 1200), 300: (105, 1200)}, FOUR), None)
    assert (quiet.state.tier, quiet.surge.window_s, quiet.surge.arrivals) == (0, 300, 105)


# ---- entering and leaving tiers --------------------------------------------------------

# (seconds after NOW, arrivals in the 300 s window against 1,000 expected, tier after the
# tick, the surge transition of the tick or None)
SURGE = [
    (0, 1190, 0, None),  # 1.19
    (2, 1200, 1, "raised"),  # 1.20 and p = 1.6e-10
    (4, 2100, 3, "escalated"),  # 2.10: straight to tier 3 in one tick
    (6, 1950, 3, None),  # 1.95 is not tier 3 but above its exit line 1.90
    (8, 1890, 3, None),  # below 1.90 from t=8 ...
    (127, 1500, 3, None),  # ... 119 s so far
    (128, 1500, 2, "deescalated"),  # 120 s: one tier down; tier 2's clock starts now
    (130, 1390, 2, None),
    (247, 1390, 2, None),
    (248, 1390, 1, "deescalated"),  # 120 s after the last step
    (300, 1150, 1, None),  # not tier 1 but above its exit line 1.10: the clock resets
    (302, 1050, 1, None),
    (421, 1050, 1, None),
    (422, 1050, 0, "cleared"),
    (424, 1190, 0, None),
]


def test_tiers_enter_at_once_and_leave_one_at_a_time() -> None:
    state = QueueAlertState()
    seen = []
    for at, arrivals, _tier, _transition in SURGE:
        result = step(state, stats(at, {300: (arrivals, None)}), flat(1000))
        state = result.state
        got = [c.transition for c in result.changes if c.kind == "surge"]
        seen.append((at, state.tier, got[0] if got else None))
    assert seen == [(at, tier, transition) for at, _, tier, transition in SURGE]


def test_no_step_down_while_another_window_still_indicates_the_tier() -> None:
    s = QueueSettings(surge_windows_s=[30, 300], surge_p_value=P)
    state = step(QueueAlertState(), stats(0, {30: (100, None), 300: (2000, None)}, s), flat(1000)).state  # fmt: skip
    assert state.tier == 3
    for at in (2, 200):  # 300 s at 1.0, but the 30 s window still at 3x (p = 3e-22)
        state = step(state, stats(at, {30: (300, None), 300: (1000, None)}, s), flat(1000)).state
    assert (state.tier, state.below_since) == (3, None)
    state = step(state, stats(202, {30: (100, None), 300: (1000, None)}, s), flat(1000)).state
    state = step(state, stats(322, {30: (100, None), 300: (1000, None)}, s), flat(1000)).state
    assert state.tier == 2


def test_every_change_carries_its_numbers_and_one_id() -> None:
    first = step(QueueAlertState(), stats(0, {300: (30, None)}), flat(10))
    (raised,) = first.changes
    assert raised.as_json() == {
        "alert_id": f"surge:q:{int(NOW * 1000)}",
        "kind": "surge",
        "queue_id": "q",
        "transition": "raised",
        "tier": 3,
        "from_tier": 0,
        "at": "2026-11-11T20:00:00.000Z",
        "numbers": {
            "window_s": 300, "ratio": 3.0, "expected": 10.0, "basis": "forecast",
            "arrivals": 30, "p": pytest.approx(tail(30, 10), rel=1e-9), "answer_rate": None,
            "answer_rate_live": None, "offered": 0, "waiting_over_target": 0,
            "primary_window_s": 300, "threshold": 2.0,
        },
    }  # fmt: skip
    assert first.updates == []
    second = step(first.state, stats(2, {300: (33, None)}, within=9, offered=10), flat(10))
    assert second.changes == []
    (now,) = second.updates  # the numbers now, every tick while active
    assert (now.alert_id, now.transition, now.tier, now.from_tier) == (raised.alert_id, "updated", 3, 3)  # fmt: skip
    assert (now.numbers["arrivals"], now.numbers["ratio"], now.numbers["answer_rate"]) == (33, 3.3, 0.9)  # fmt: skip


def test_no_tier_without_an_expectation() -> None:
    nothing = step(QueueAlertState(), stats(0, {300: (500, None)}), None)
    assert (nothing.surge.ratio, nothing.surge.expected, nothing.surge.p) == (None, None, None)
    assert (nothing.surge.basis, nothing.state.tier) == (None, 0)


# ---- the frozen baseline and the declared rate ----------------------------------------


def test_the_baseline_is_frozen_while_a_surge_lasts() -> None:
    # no forecast; 600 in the hour before -> 50 expected per 300 s; a 3x surge
    state = step(QueueAlertState(), stats(0, {300: (150, 600)}), None).state
    assert (state.tier, state.frozen_per_hour) == (3, {300: 600.0})
    # an hour on, the hour before the window is all surge (1,800): still 50 expected
    later = step(state, stats(3600, {300: (150, 1800)}), None)
    assert (later.state.tier, later.surge.expected, later.surge.ratio) == (3, 50.0, 3.0)
    assert later.surge.basis == "baseline"
    # the surge ends: 50 arrivals; three steps down, 120 s apart, then the baseline thaws
    state = later.state
    for at in (3602, 3722, 3842, 3962):
        state = step(state, stats(at, {300: (50, 1800)}), None).state
    assert (state.tier, state.frozen_per_hour) == (0, {})
    thawed = step(state, stats(3964, {300: (50, 1800)}), None)
    assert thawed.surge.expected == 150.0
    assert thawed.surge.ratio == pytest.approx(1 / 3)


def test_a_new_line_gets_tiers_from_its_declared_rate() -> None:
    s = QueueSettings(surge_windows_s=[30, 300], expected_per_hour=1200.0, surge_p_value=P)
    # its first minute: no hour observed, 40 calls in 30 s against 10 declared
    result = step(QueueAlertState(), stats(60, {30: (40, None), 300: (60, None)}, s), None)
    assert (result.state.tier, result.surge.window_s, result.surge.basis) == (3, 30, "declared")
    assert result.surge.p == pytest.approx(tail(40, 10), rel=1e-9)


def test_state_survives_json_and_older_stored_states() -> None:
    state = step(QueueAlertState(), stats(0, {300: (150, 600)}), None).state
    assert QueueAlertState.from_json(state.as_json()) == state
    assert state.as_json()["frozen_per_hour"] == {"300": 600.0}
    v1 = {"tier": 2, "since": NOW, "below_since": None, "surge_id": "surge:q:1",
          "breach": False, "breach_since": None, "breach_ok_since": None, "breach_id": None}  # fmt: skip
    old = QueueAlertState.from_json({**v1, "retired_field": 1})
    assert (old.tier, old.surge_id, old.frozen_per_hour) == (2, "surge:q:1", {})
    # at tier 2 with nothing frozen and no forecast: no expectation, the tier unwinds
    assert step(old, stats(2, {300: (500, 600)}), None).surge.expected is None


# ---- sl_breach -------------------------------------------------------------------------


def test_sl_breach_raises_and_clears_after_hold() -> None:
    rows = [
        # at, within, offered, over, breach, transition
        (0, 8, 9, 0, False, None),  # live 8/9 = 0.889 >= 0.85
        (2, 7, 8, 1, False, None),  # live 7/9 = 0.778 but volume 9 < 10
        (4, 7, 9, 1, True, "raised"),  # live 7/10 = 0.70, volume 10
        (6, 86, 100, 0, True, "updated"),  # 0.86 is not yet 0.87: stays
        (8, 87, 100, 0, True, "updated"),  # 0.87: the clear clock starts
        (127, 87, 100, 0, True, "updated"),
        (128, 87, 100, 0, False, "cleared"),  # 120 s at or above 0.87
        (130, 87, 100, 0, False, None),
    ]
    state = QueueAlertState()
    for at, within, offered, over, breach, transition in rows:
        result = step(state, stats(at, {300: (0, None)}, ONE, within, offered, over), flat(100))
        state = result.state
        got = [c.transition for c in result.changes + result.updates if c.kind == "sl_breach"]
        assert (at, state.breach, got) == (at, breach, [transition] if transition else [])


# ---- alert records: the numbers then and now ------------------------------------------


def change(transition: str, at: float, tier: int, arrivals: int) -> AlertChange:
    return AlertChange.model_validate(
        {"alert_id": "a", "kind": "surge", "queue_id": "q", "transition": transition,
         "tier": tier, "at": NOW + at, "numbers": {"arrivals": arrivals}}
    )  # fmt: skip


def test_records_keep_the_numbers_that_raised_them_and_the_numbers_now() -> None:
    record: AlertRecord | None = None
    for c in [
        change("raised", 0, 1, 120),
        change("updated", 2, 1, 130),
        change("escalated", 4, 3, 210),
        change("updated", 6, 3, 260),
        change("updated", 8, 3, 250),
    ]:
        record = apply_change(record, c)
    assert record is not None
    assert (record.tier, record.state, record.numbers, record.raised_numbers) == (
        3, "active", {"arrivals": 250}, {"arrivals": 210},
    )  # fmt: skip
    assert [(h.transition, h.tier, h.numbers) for h in record.history] == [
        ("raised", 1, {"arrivals": 120}), ("escalated", 3, {"arrivals": 210}),
    ]  # fmt: skip
    assert record.updated_at == NOW + 8
    cleared = apply_change(record, change("cleared", 10, 0, 100))
    late = apply_change(cleared, change("updated", 12, 3, 300))  # delivered after the clear
    assert late == cleared and late.numbers == {"arrivals": 100}
    lost = apply_change(None, change("updated", 14, 2, 90))  # its `raised` was never stored
    assert (lost.state, lost.tier, lost.numbers, lost.history) == (
        "active",
        2,
        {"arrivals": 90},
        (),
    )


# ---- replay, tick by tick ----------------------------------------------------------------


def test_replay_reproduces_tiers_and_alerts_tick_by_tick() -> None:
    from services.monitor.replay import forecasts_from, queue_settings_from, replay_ticks

    # one call a second from T0+1 s; 6 expected per 30 s window (60 per 300 s)
    lines = [
        orjson.dumps(
            {
                "event_id": f"e{i}",
                "type": "call.queued",
                "ts": iso(i),
                "call_id": f"c{i}",
                "queue_id": "q",
            }
        )  # fmt: skip
        for i in range(1, 31)
    ]
    forecasts = forecasts_from({"q": {"start": iso(-3600), "interval_s": 300, "arrivals": [60] * 24}})  # fmt: skip
    settings = queue_settings_from({"q": {"surge_windows_s": [30], "surge_p_value": P}})
    got = replay_ticks([*lines, b"not json"], NOW + 40, 2.0, settings, forecasts)
    assert [b.line for b in got.bad] == [31]
    # ticks at T0+2, +4, ...: 18 calls by T0+18 is p = 5.7e-5 <= 1e-4 (16 by T0+16 is
    # 5.1e-4): tier 3 (ratio 3) at T0+18
    assert tail(18, 6) < 1e-4 < tail(16, 6)
    assert [(c.transition, c.tier, c.at) for c in got.changes if c.kind == "surge"] == [
        ("raised", 3, NOW + 18)
    ]
    queues: list[dict[str, dict[str, object]]] = got.body["queues"]  # type: ignore[assignment]
    (snap,) = queues
    assert snap["surge"]["since"] == "2026-11-11T20:00:18.000Z"
    assert (snap["surge"]["tier"], snap["surge"]["arrivals"], snap["surge"]["window_s"]) == (3, 20, 30)  # fmt: skip
    (record,) = [a for a in got.alerts if a.kind == "surge"]
    assert (record.state, record.tier, record.raised_at) == ("active", 3, NOW + 18)
    assert (record.raised_numbers or {})["arrivals"] == 18  # (T0-12, T0+18]
    assert (record.numbers or {})["arrivals"] == 20  # now: (T0+10, T0+40]
    assert record.updated_at == NOW + 40


def test_a_window_without_a_frozen_baseline_borrows_the_nearest() -> None:
    # tier 1 entered when only the 300 s window's hour (600 calls) had been observed
    state = QueueAlertState(tier=1, since=NOW, surge_id="s", frozen_per_hour={300: 600.0, 900: 1200.0})  # fmt: skip
    s = QueueSettings(surge_windows_s=[30, 300, 900], surge_p_value=P)
    st = stats(0, {30: (12, 3000), 300: (90, 3000), 900: (400, 3000)}, s)
    assert expected_for(30, st, None, state) == (5.0, "baseline")  # 600 an hour, for 30 s
    assert expected_for(900, st, None, state) == (300.0, "baseline")  # its own, frozen
    assert expected_for(30, st, None, QueueAlertState()) == (25.0, "baseline")  # not frozen


def test_a_tiny_queue_pages_at_the_contracts_1e_4_and_not_at_the_default() -> None:
    """The default `surge_p_value` is 1e-7, not the contract's 1e-4 (README, "Decisions"):
    a 2-calls-a-minute queue (120 calls the hour before) gets 10 calls in 30 s (expected
    1, ratio 10) about once in 9 million windows; at 1e-4 that is a tier 3, at the default
    no tier. An 8x step of 20 calls a minute (80 calls in 30 s against 10) is a tier 3 at
    both."""
    assert QueueSettings().surge_p_value == 1e-7
    quiet = sum(math.exp(-1.0) / math.factorial(k) for k in range(10))  # P(X <= 9 | 1)
    assert poisson_tail(10, 1.0) == pytest.approx(1.0 - quiet, rel=1e-9)  # 1.1e-7
    assert 1e-7 < tail(10, 1) <= 1e-4 and tail(80, 10) < 1e-7
    default = QueueSettings(surge_windows_s=[30])
    contract = QueueSettings(surge_windows_s=[30], surge_p_value=1e-4)
    tiny: dict[int, tuple[int, int | None]] = {30: (10, 120)}
    assert step(QueueAlertState(), stats(0, tiny, contract), None).state.tier == 3
    assert step(QueueAlertState(), stats(0, tiny, default), None).state.tier == 0
    step8x: dict[int, tuple[int, int | None]] = {30: (80, 1200)}
    assert step(QueueAlertState(), stats(0, step8x, default), None).state.tier == 3
