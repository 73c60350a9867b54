"""Dispatcher actions (contract 6) and leads' requests about them, on `floorwatch.actions`.

An action is one plan: every command that closes a queue's gap this tick, its reason,
the projected effect of the whole plan, and its lifecycle. Leads' approvals, rejections,
undos and hand-made proposals travel as `ActionRequest`s on the same topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.messages.commands import (
    ActivateAgent,
    ReassignAgent,
    ReleaseAgent,
    SetCallback,
    SetOverflow,
)
from shared.queue_settings import Lever

AnyCommand = ReassignAgent | ActivateAgent | ReleaseAgent | SetCallback | SetOverflow
State = Literal["proposed", "approved", "sent", "done", "reverted", "rejected", "expired"]
Kind = Literal["plan", "recall", "unwind", "renew", "hand", "undo"]
OPEN_STATES: tuple[State, ...] = ("proposed", "approved", "sent")
Name = Annotated[str, Field(min_length=1, max_length=256)]


def at(ts: float) -> datetime:
    """Epoch seconds as an aware datetime, to the millisecond."""
    return datetime.fromtimestamp(round(ts, 3), tz=UTC)


class Effect(BaseModel):
    """Projected answer rate and abandonment before and after the whole plan (Erlang A)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agents_before: float
    agents_after: float
    answer_rate_before: float
    answer_rate_after: float
    abandon_rate_before: float
    abandon_rate_after: float


class Measured(BaseModel):
    """The queue's answer rate over the 15 minutes after the action was sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    answer_rate: float | None
    projected: float


class Change(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    state: State
    by: Name
    at: datetime


class Reason(BaseModel):
    """Why the action was taken: the alert and its numbers when planned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trigger: Literal["sl_breach", "1", "2", "3", "recall", "calm", "renew", "hand", "undo"]
    alert_id: str | None = None
    tier: int = 0
    ratio: float | None = None
    answer_rate_live: float | None = None
    arrival_rate_per_s: float = 0.0
    aht_s: float | None = None
    patience_s: float | None = None
    agents_needed: int = 0
    agents_staffed: float = 0.0
    callbacks_pending: int = 0
    text: str = ""


class Action(BaseModel):
    """One plan for one queue: its commands, undo, projection and lifecycle (contract 6)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: Literal["action"] = "action"
    action_id: Name
    queue_id: Name
    kind: Kind
    levers: list[Lever]
    reason: Reason
    commands: list[Annotated[AnyCommand, Field(discriminator="type")]]
    undo: list[Annotated[AnyCommand, Field(discriminator="type")]]
    projected: Effect
    state: State
    created_at: datetime
    changed_by: Name
    changed_at: datetime
    sent_at: datetime | None = None
    measured: Measured | None = None
    history: list[Change] = []

    def moved(self, state: State, by: str, now: float) -> Action:
        """The same action in a new state, with the change in its history."""
        stamp = at(now)
        sent = stamp if state == "sent" else self.sent_at
        return self.model_copy(
            update={
                "state": state,
                "changed_by": by,
                "changed_at": stamp,
                "sent_at": sent,
                "history": [*self.history, Change(state=state, by=by, at=stamp)],
            }
        )

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def summary(self) -> str:
        """What a floor manager reads on the board: the plan in a few words."""
        counts: dict[str, int] = {}
        for c in self.commands:
            counts[c.type] = counts.get(c.type, 0) + 1
        words = {
            "agent.reassign": "move",
            "agent.activate": "call in",
            "agent.release": "release",
            "queue.callback": "callback",
            "queue.overflow": "overflow",
        }
        parts = [f"{words[t]} {n}" for t, n in sorted(counts.items())]
        p = self.projected
        return (
            f"{', '.join(parts) or 'nothing'}: "
            f"{100 * p.answer_rate_before:.1f}% -> {100 * p.answer_rate_after:.1f}%"
        )


class ActionRequest(BaseModel):
    """A lead's word on an action, or a hand-made proposal (contract 6 and 7)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message: Literal["request"] = "request"
    request_id: Name
    verb: Literal["approve", "reject", "undo", "propose"]
    by: Name
    at: datetime
    action_id: Name | None = None
    queue_id: Name | None = None
    lever: Lever | None = None
    count: Annotated[int, Field(ge=1, le=200)] | None = None


ActionMessage = Annotated[Action | ActionRequest, Field(discriminator="message")]
ACTION_MESSAGE: TypeAdapter[Action | ActionRequest] = TypeAdapter(ActionMessage)
