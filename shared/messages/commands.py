"""Commands for telephony systems (contract 6), on `floorwatch.commands`: imperatives."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

QueueId = Annotated[str, Field(min_length=1, max_length=256)]
AgentId = Annotated[str, Field(min_length=1, max_length=256)]
Pool = Literal["standby", "partner", "emergency", "regular"]


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: Annotated[str, Field(min_length=1, max_length=300)]  # makes it idempotent
    action_id: Annotated[str, Field(min_length=1, max_length=300)]


class ReassignAgent(_Command):
    """Route `to_queue` to this cross-skilled agent instead of `from_queue`, until `until`."""

    type: Literal["agent.reassign"] = "agent.reassign"
    agent_id: AgentId
    from_queue: QueueId
    to_queue: QueueId
    until: AwareDatetime


class ActivateAgent(_Command):
    """Bring a standby, partner or emergency agent online for the queue."""

    type: Literal["agent.activate"] = "agent.activate"
    agent_id: AgentId
    queue_id: QueueId
    pool: Pool = "standby"


class ReleaseAgent(_Command):
    """Undo a reassignment or an activation: the agent goes back to its home queue."""

    type: Literal["agent.release"] = "agent.release"
    agent_id: AgentId
    queue_id: QueueId


class SetCallback(_Command):
    """IVR offers a callback to callers whose expected wait exceeds `offer_after_s`."""

    type: Literal["queue.callback"] = "queue.callback"
    queue_id: QueueId
    enabled: bool
    offer_after_s: Annotated[float, Field(ge=0)] | None = None


class SetOverflow(_Command):
    """Route callers waiting longer than `after_s` to another queue, or to another site."""

    type: Literal["queue.overflow"] = "queue.overflow"
    queue_id: QueueId
    to_queue_id: QueueId | None = None
    to_site: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    enabled: bool
    after_s: Annotated[float, Field(ge=0)] | None = None


Command = Annotated[
    ReassignAgent | ActivateAgent | ReleaseAgent | SetCallback | SetOverflow,
    Field(discriminator="type"),
]
COMMAND_ADAPTER: TypeAdapter[
    ReassignAgent | ActivateAgent | ReleaseAgent | SetCallback | SetOverflow
] = TypeAdapter(Command)


def decode_command(
    data: bytes | str,
) -> ReassignAgent | ActivateAgent | ReleaseAgent | SetCallback | SetOverflow:
    """One command from its JSON form (raises pydantic's ValidationError)."""
    return COMMAND_ADAPTER.validate_json(data)


def encode_command(
    command: ReassignAgent | ActivateAgent | ReleaseAgent | SetCallback | SetOverflow,
) -> bytes:
    return command.model_dump_json(exclude_none=True).encode()
