"""Alert transitions (`floorwatch.alerts`) and the alert records built from them.

A transition is a fact: `raised`, `escalated`, `deescalated`, `cleared` (the monitor's
tier machine) or `acknowledged` (a lead, through the API). The record is what readers
see (`GET /v1/alerts`); `apply_change` folds one transition into it.

Numbers (contract 5): every change from the monitor carries `numbers`: the surge window
shown (`window_s`, `ratio`, `expected`, `basis`, `arrivals`, `p`) and the primary
window's answer rates. While an alert is active the monitor also publishes, every tick,
an `updated` change: not a transition of state but the numbers now. In the record:
- `numbers` are always the numbers now (the latest change of any kind but an
  acknowledgement), so a reader that shows `numbers` shows the numbers now;
- `raised_numbers` are the numbers that raised the alert to its current tier (set by
  `raised` and `escalated`);
- each history entry keeps the numbers of its own transition; `updated` changes are
  not kept in the history (one every tick would swamp it) and do not move `tier` or
  `state`. An `updated` change for a cleared alert changes nothing; for an unknown one
  (its `raised` was lost) it makes an active record with the numbers now.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from shared.timefmt import iso_ms, parse_ts

Transition = Literal["raised", "escalated", "deescalated", "cleared", "acknowledged", "updated"]
AlertKind = Literal["surge", "sl_breach"]
Numbers = dict[str, float | int | str | None]


def _epoch(value: object) -> object:
    return parse_ts(value) if isinstance(value, str) else value


# epoch seconds inside floorwatch, RFC 3339 with milliseconds on the wire
Instant = Annotated[float, BeforeValidator(_epoch), PlainSerializer(iso_ms, return_type=str)]


class AlertChange(BaseModel):
    """One alert transition, with the numbers that caused it (contract 5)."""

    model_config = ConfigDict(frozen=True)

    alert_id: Annotated[str, Field(min_length=1, max_length=600)]
    kind: AlertKind
    queue_id: Annotated[str, Field(min_length=1, max_length=256)]
    transition: Transition
    tier: int = 0
    from_tier: int = 0
    at: Instant
    numbers: Numbers = {}
    by: str | None = None  # who acknowledged

    def as_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)


class AlertHistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    transition: Transition
    at: Instant
    tier: int | None = None
    by: str | None = None
    numbers: Numbers | None = None


class AlertRecord(BaseModel):
    """An alert as `GET /v1/alerts` shows it: its state and every transition so far."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    kind: AlertKind
    queue_id: str
    state: Literal["active", "cleared"] = "active"
    tier: int = 0
    raised_at: Instant
    updated_at: Instant
    acknowledged_by: str | None = None
    acknowledged_at: Instant | None = None
    cleared_at: Instant | None = None
    numbers: Numbers | None = None  # the numbers now
    raised_numbers: Numbers | None = None  # the numbers that raised it to its tier
    history: tuple[AlertHistoryEntry, ...] = ()

    def as_json(self) -> dict[str, object]:
        return self.model_dump(mode="json")


def apply_change(record: AlertRecord | None, change: AlertChange) -> AlertRecord:
    """The alert record after one transition; acknowledging twice changes nothing."""
    if record is None:
        record = AlertRecord(
            alert_id=change.alert_id,
            kind=change.kind,
            queue_id=change.queue_id,
            tier=change.tier,
            raised_at=change.at,
            updated_at=change.at,
        )
    if change.transition == "updated":
        if record.state != "active":
            return record
        return record.model_copy(update={"updated_at": change.at, "numbers": change.numbers})
    if change.transition == "acknowledged" and record.acknowledged_by is not None:
        return record
    update: dict[str, object] = {"updated_at": change.at}
    if change.transition == "acknowledged":
        update.update(acknowledged_by=change.by, acknowledged_at=change.at)
    else:
        update.update(tier=change.tier, numbers=change.numbers)
        if change.transition in ("raised", "escalated"):
            update.update(raised_numbers=change.numbers)
        if change.transition == "cleared":
            update.update(state="cleared", cleared_at=change.at)
    entry = AlertHistoryEntry(
        transition=change.transition,
        at=change.at,
        tier=None if change.transition == "acknowledged" else change.tier,
        by=change.by,
        numbers=None if change.transition == "acknowledged" else change.numbers,
    )
    return record.model_copy(update={**update, "history": (*record.history, entry)})
