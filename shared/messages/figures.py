"""The value types every figure message shares: counts, rates, seconds, frozen models."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Count = Annotated[int, Field(ge=0)]
Rate = Annotated[float, Field(ge=0, le=1)] | None
Seconds = Annotated[float, Field(ge=0)]


class Frozen(BaseModel):
    """A message nobody changes after it is made, with no field the contract lacks."""

    model_config = ConfigDict(frozen=True, extra="forbid")
