"""Scenario files: a contact centre, its traffic over time, and the forecast it breaks.

One JSON file per scenario in `services/simulator/scenarios/`. The format:

    {
      "name": "promo-night", "duration_s": 3600, "tick_s": 2,
      "surge": {"start_s": 900, "end_s": 2700},
      "queues": [{"queue_id": "sales", "calls_per_min": 20, "talk_s": 180, "hold_s": 10,
                  "wrap_s": 20, "patience_s": 90, "short_abandon_share": 0.03,
                  "callback_accept": 0.6}],
      "profile": [{"at_s": 0, "multiplier": {"sales": 1.0}}, ...],   # linear between points
      "agents": [{"count": 10, "prefix": "s", "skills": {"sales": 8, "billing": 4},
                  "serving": ["sales"], "state": "available", "reason": null}],
      "forecast_interval_s": 300
    }

`calls_per_min` is the forecast (normal) rate; the profile multiplies it over time.
A queue has that forecast unless it says `"forecast": false`; it may then declare its
expected rate in its settings (`"settings": {"expected_per_hour": 600}`, contract 5) or
have neither, leaving the tiers to its own baseline hour. `floorwatch scenario` takes a
shipped name or the path of a file of one's own (at most 1 MiB).
`serving` defaults to the agent's first skill; `state` `not_ready` with reason `standby`
makes a standby pool.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.files import read_bounded

SCENARIOS = (
    "steady",
    "promo-night",
    "hotline-launch",
    "virtual-centre",
    "quiet-day",
    "instant-step",
)
MAX_FILE_BYTES = 1 << 20


class QueueSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_id: str
    calls_per_min: Annotated[float, Field(ge=0)]
    talk_s: Annotated[float, Field(gt=0)] = 180
    hold_s: Annotated[float, Field(ge=0)] = 10
    wrap_s: Annotated[float, Field(ge=0)] = 20
    patience_s: Annotated[float, Field(gt=0)] = 90
    short_abandon_share: Annotated[float, Field(ge=0, le=1)] = 0.03
    callback_accept: Annotated[float, Field(ge=0, le=1)] = 0.6
    handle: Literal["lognormal", "exponential"] = "lognormal"
    forecast: bool = True  # false: no forecast (a declared rate in settings, or neither)
    site: str | None = None  # the site its calls are queued at (contract 1)
    settings: dict[str, object] = {}  # the queue's own settings (contract 7), e.g. overflow_to

    @property
    def aht_s(self) -> float:
        return self.talk_s + self.hold_s + self.wrap_s


class ProfilePoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at_s: Annotated[float, Field(ge=0)]
    multiplier: dict[str, Annotated[float, Field(ge=0)]]


class AgentGroup(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    count: Annotated[int, Field(ge=1)]
    prefix: str
    skills: dict[str, Annotated[int, Field(ge=1, le=10)]]
    serving: list[str] | None = None
    state: Literal["available", "not_ready", "offline"] = "available"
    reason: str | None = None
    # None: `standby` when the reason is standby, else `regular`
    pool: Literal["regular", "standby", "partner", "emergency"] | None = None
    site: str | None = None  # the agents' own site

    @property
    def agent_pool(self) -> str:
        """contract 6: who may call the agent in."""
        if self.pool is not None:
            return self.pool
        return "standby" if self.reason == "standby" else "regular"


class Span(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start_s: float
    end_s: float


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    duration_s: Annotated[float, Field(gt=0)]
    tick_s: Annotated[float, Field(gt=0)] = 2.0
    surge: Span
    queues: list[QueueSpec]
    profile: list[ProfilePoint]
    agents: list[AgentGroup]
    forecast_interval_s: Annotated[int, Field(ge=60, le=3600)] = 300
    baseline_s: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = {q.queue_id for q in self.queues}
        for point in self.profile:
            unknown = set(point.multiplier) - names
            if unknown:
                raise ValueError(
                    f"profile at {point.at_s} s names unknown queues {sorted(unknown)}"
                )
        if [p.at_s for p in self.profile] != sorted(p.at_s for p in self.profile):
            raise ValueError("profile points must be in time order")
        return self

    def multiplier(self, queue_id: str, t: float) -> float:
        """The profile's multiplier of a queue's normal rate at t, linear between points."""
        points = [(p.at_s, p.multiplier.get(queue_id, 1.0)) for p in self.profile]
        if not points or t <= points[0][0]:
            return points[0][1] if points else 1.0
        for (t0, m0), (t1, m1) in zip(points, points[1:], strict=False):
            if t <= t1:
                return m0 if t1 == t0 else m0 + (m1 - m0) * (t - t0) / (t1 - t0)
        return points[-1][1]

    def max_multiplier(self, queue_id: str) -> float:
        return max([p.multiplier.get(queue_id, 1.0) for p in self.profile] + [1.0])


def load_scenario(name: str) -> Scenario:
    """A shipped scenario by name, or a scenario file by its path (contract 8)."""
    if name in SCENARIOS:
        text = resources.files("services.simulator").joinpath(f"scenarios/{name}.json").read_text()
        return Scenario.model_validate(json.loads(text))
    path = Path(name)
    if path.suffix != ".json" and not path.is_file():
        raise ValueError(
            f"unknown scenario {name[:100]!r}: one of {', '.join(SCENARIOS)}, or a .json file"
        )
    data = read_bounded(path, MAX_FILE_BYTES, name)
    return Scenario.model_validate(json.loads(data))
