"""Incidents (contract 7): one record per queue from its first alert to its recovery.

Built by the notifier from `floorwatch.alerts`, `floorwatch.actions` and
`floorwatch.metrics`, kept in Redis, read by the API (`GET /v1/incidents`) and drawn on
the after-action page (`GET /incidents/{id}`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.messages.alerts import AlertKind, Instant, Numbers

IncidentState = Literal["open", "closed"]
EntryKind = Literal["alert", "action", "ack", "recovered", "closed"]
# the action states after which an action holds nothing open (contract 6)
CLOSED_ACTION_STATES = frozenset({"done", "reverted", "rejected", "expired"})


class AlertView(BaseModel):
    """One alert of the incident: the numbers that raised it and the numbers now."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    kind: AlertKind
    state: Literal["active", "cleared"] = "active"
    tier: int = 0
    raised_at: Instant
    numbers_then: Numbers = {}
    numbers_now: Numbers = {}
    acked_by: str | None = None
    acked_at: Instant | None = None


class ActionView(BaseModel):
    """One dispatcher action: its commands, its state, projected and measured effect."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    state: str
    created_at: Instant
    changed_at: Instant
    changed_by: str | None = None
    summary: str = ""
    # Any: commands and effects as the dispatcher wrote them (typed in shared.messages.actions)
    commands: list[dict[str, Any]] = []
    projected: dict[str, Any] = {}
    measured: dict[str, Any] | None = None

    @property
    def is_open(self) -> bool:
        return self.state not in CLOSED_ACTION_STATES


class Entry(BaseModel):
    """One line of the timeline."""

    model_config = ConfigDict(frozen=True)

    at: Instant
    kind: EntryKind
    text: Annotated[str, Field(max_length=2000)]
    ref: str | None = None  # the alert or action it is about
    by: str | None = None


class Sample(BaseModel):
    """The queue at one tick, as the chart draws it."""

    model_config = ConfigDict(frozen=True)

    at: Instant
    answer_rate: float | None = None
    abandon_rate: float | None = None
    arrivals: int | None = None
    expected: float | None = None
    agents: int | None = None
    callbacks_pending: int = 0


class Counts(BaseModel):
    """Calls counted while the incident lasted (from the snapshot's `today`)."""

    model_config = ConfigDict(frozen=True)

    offered: int = 0
    answered_within_target: int = 0
    abandoned: int = 0
    callbacks: int = 0
    callbacks_completed: int = 0


class Summary(BaseModel):
    """The after-action figures (contract 7)."""

    model_config = ConfigDict(frozen=True)

    duration_s: float = 0.0
    time_to_first_action_s: float | None = None
    time_to_recover_s: float | None = None
    answer_rate: float | None = None
    abandon_rate: float | None = None
    agents_moved: int = 0
    callbacks_offered: int = 0
    callbacks_kept: int = 0
    max_tier: int = 0


class Incident(BaseModel):
    """`GET /v1/incidents/{id}`."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    queue_id: str
    state: IncidentState = "open"
    opened_at: Instant
    updated_at: Instant
    closed_at: Instant | None = None
    calm_since: Instant | None = None  # no alert, no open action, no callback pending
    recovered_at: Instant | None = None
    sl_target: float = 0.9
    alerts: tuple[AlertView, ...] = ()
    actions: tuple[ActionView, ...] = ()
    timeline: tuple[Entry, ...] = ()
    series: tuple[Sample, ...] = ()
    counts_at_open: Counts | None = None
    counts: Counts = Counts()
    summary: Summary = Summary()

    def as_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"counts_at_open"})

    def alert(self, alert_id: str) -> AlertView | None:
        return next((a for a in self.alerts if a.alert_id == alert_id), None)

    def action(self, action_id: str) -> ActionView | None:
        return next((a for a in self.actions if a.action_id == action_id), None)

    @property
    def tier(self) -> int:
        """The highest tier of its active surge alerts (0 for a breach alone)."""
        return max((a.tier for a in self.alerts if a.state == "active"), default=0)

    @property
    def numbers_now(self) -> Numbers:
        """The latest numbers of its most recently raised active alert."""
        active = [a for a in self.alerts if a.state == "active"] or list(self.alerts)
        latest = max(active, key=lambda a: a.raised_at, default=None)
        if latest is None:
            return {}
        return latest.numbers_now or latest.numbers_then
