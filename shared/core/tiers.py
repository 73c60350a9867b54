"""Surge tiers and the SL breach alert (contract 5): a pure state machine per queue."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from shared.core.engine import QueueStats
from shared.forecast import Forecast
from shared.messages.alerts import AlertChange


def expected_arrivals(stats: QueueStats, forecast: Forecast | None) -> float | None:
    """Forecast arrivals in the surge window, or the trailing-hour baseline (contract 5).

    A forecast is used when it covers the whole surge window; otherwise the queue's own
    arrival rate over the hour before the window, scaled to the window, once that hour
    has been observed. None when neither is known.
    """
    window = stats.settings.surge_window_s
    if forecast is not None and forecast.covers(stats.now - window, stats.now):
        return forecast.expected(stats.now - window, stats.now)
    if stats.baseline_arrivals is None:
        return None
    return stats.baseline_arrivals * window / 3600.0


@dataclass(frozen=True)
class QueueAlertState:
    """What the tier machine remembers of one queue between ticks."""

    tier: int = 0
    since: float | None = None  # when the current tier was entered
    below_since: float | None = None  # since when the ratio has stayed under the exit line
    surge_id: str | None = None
    breach: bool = False
    breach_since: float | None = None
    breach_ok_since: float | None = None
    breach_id: str | None = None

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)

    @staticmethod
    def from_json(data: dict[str, object]) -> QueueAlertState:
        return QueueAlertState(**data)  # type: ignore[arg-type]  # our own as_json output


@dataclass(frozen=True)
class SurgeView:
    ratio: float | None
    expected: float | None
    arrivals: int


@dataclass
class TickResult:
    state: QueueAlertState
    surge: SurgeView
    changes: list[AlertChange] = field(default_factory=list)


def step(state: QueueAlertState, stats: QueueStats, forecast: Forecast | None) -> TickResult:
    """Advance one queue's alert state by one tick."""
    s = stats.settings
    now = stats.now
    expected = expected_arrivals(stats, forecast)
    arrivals = stats.surge_arrivals
    ratio = arrivals / expected if expected else None
    surge = SurgeView(ratio, expected, arrivals)
    primary = stats.windows[s.primary_window_s]
    numbers: dict[str, float | int | None] = {
        "ratio": ratio,
        "expected": expected,
        "arrivals": arrivals,
        "surge_window_s": s.surge_window_s,
        "answer_rate": primary.answer_rate,
        "answer_rate_live": primary.answer_rate_live,
        "offered": primary.offered,
        "waiting_over_target": stats.waiting_over_target,
        "window_s": s.primary_window_s,
    }
    changes: list[AlertChange] = []

    # contract 5: enter the highest tier reached, with at least min_arrivals in the window
    reached = 0
    if ratio is not None and arrivals >= s.min_arrivals:
        reached = sum(1 for t in s.tier_thresholds if ratio >= t)
    if reached > state.tier:
        surge_id = state.surge_id or f"surge:{stats.queue_id}:{int(now * 1000)}"
        numbers_t = {**numbers, "threshold": s.tier_thresholds[reached - 1]}
        transition: Literal["raised", "escalated"] = "raised" if state.tier == 0 else "escalated"
        changes.append(
            AlertChange(
                alert_id=surge_id,
                kind="surge",
                queue_id=stats.queue_id,
                transition=transition,
                tier=reached,
                from_tier=state.tier,
                at=now,
                numbers=numbers_t,
            )
        )
        state = replace(state, tier=reached, since=now, below_since=None, surge_id=surge_id)
    elif state.tier > 0:
        # leave one tier at a time, after clear_after_s below (threshold - hysteresis)
        exit_line = s.tier_thresholds[state.tier - 1] - s.tier_hysteresis
        if ratio is None or ratio < exit_line:
            below = state.below_since if state.below_since is not None else now
            state = replace(state, below_since=below)
            if now - below >= s.clear_after_s:
                new_tier = state.tier - 1
                down: Literal["cleared", "deescalated"] = (
                    "cleared" if new_tier == 0 else "deescalated"
                )
                numbers_t = {**numbers, "threshold": exit_line, "below_since_s": now - below}
                changes.append(
                    AlertChange(
                        alert_id=state.surge_id or "",
                        kind="surge",
                        queue_id=stats.queue_id,
                        transition=down,
                        tier=new_tier,
                        from_tier=state.tier,
                        at=now,
                        numbers=numbers_t,
                    )
                )
                # the next step down needs its own clear_after_s, counted from now
                state = replace(
                    state,
                    tier=new_tier,
                    since=now if new_tier else None,
                    below_since=now if new_tier else None,
                    surge_id=state.surge_id if new_tier else None,
                )
        else:
            state = replace(state, below_since=None)

    state, breach_changes = _step_breach(state, stats, numbers)
    changes.extend(breach_changes)
    return TickResult(state, surge, changes)


def _step_breach(
    state: QueueAlertState, stats: QueueStats, numbers: dict[str, float | int | None]
) -> tuple[QueueAlertState, list[AlertChange]]:
    """contract 5: the sl_breach alert on the primary window's answer_rate_live."""
    s = stats.settings
    now = stats.now
    primary = stats.windows[s.primary_window_s]
    rate = primary.answer_rate_live
    volume = primary.offered + stats.waiting_over_target
    numbers = {**numbers, "threshold": s.sl_alert_below}
    if not state.breach:
        if rate is not None and rate < s.sl_alert_below and volume >= 10:
            breach_id = f"sl_breach:{stats.queue_id}:{int(now * 1000)}"
            change = AlertChange(
                alert_id=breach_id,
                kind="sl_breach",
                queue_id=stats.queue_id,
                transition="raised",
                at=now,
                numbers=numbers,
            )
            return replace(
                state, breach=True, breach_since=now, breach_ok_since=None, breach_id=breach_id
            ), [change]
        return state, []
    if rate is None or rate >= s.sl_alert_below + 0.02:
        ok_since = state.breach_ok_since if state.breach_ok_since is not None else now
        if now - ok_since >= s.clear_after_s:
            change = AlertChange(
                alert_id=state.breach_id or "",
                kind="sl_breach",
                queue_id=stats.queue_id,
                transition="cleared",
                at=now,
                numbers=numbers,
            )
            return replace(
                state, breach=False, breach_since=None, breach_ok_since=None, breach_id=None
            ), [change]
        return replace(state, breach_ok_since=ok_since), []
    return replace(state, breach_ok_since=None), []
