"""Settings of the API service."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator

from shared.settings import CommonSettings, parse_pairs

Role = Literal["viewer", "lead", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "lead", "admin")
_SCOPE = re.compile(r"^(?P<secret>.+):(?P<kind>site|queue)=(?P<names>[^:]+)$")


@dataclass(frozen=True)
class TokenSpec:
    """One API token as configured: `name:role:secret`, optionally `:site=a|b` or
    `:queue=x|y` (contract 7)."""

    name: str
    role: Role
    secret: str
    sites: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()


def parse_tokens(spec: str) -> list[TokenSpec]:
    out: list[TokenSpec] = []
    for name, role, rest in parse_pairs(spec, 3):
        if role not in ROLES:
            raise ValueError(f"token {name!r}: role {role!r} must be one of {', '.join(ROLES)}")
        scope = _SCOPE.match(rest)
        secret = rest
        sites: tuple[str, ...] = ()
        queues: tuple[str, ...] = ()
        if scope is not None:
            secret = scope["secret"]
            names = tuple(n for n in scope["names"].split("|") if n)
            sites, queues = (names, ()) if scope["kind"] == "site" else ((), names)
        out.append(TokenSpec(name, role, secret, sites, queues))
    return out


class ApiSettings(CommonSettings):
    """`FLOORWATCH_API_*`, `FLOORWATCH_TICK_S` and the common settings."""

    api_tokens: str = Field("", description="name:role:secret, comma-separated")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_origins: str = Field(
        "", description="allowed websocket Origins, comma-separated; empty: same host only"
    )
    api_client_queue: int = Field(256, ge=8, description="messages buffered per board client")
    api_rate_per_s: float = Field(
        20.0, gt=0, description="requests a second per token (bursts of 10x), 429 beyond"
    )
    api_read_timeout_s: float = Field(
        10.0, gt=0, description="a client that sends its request body slower is answered 408"
    )
    audit_keep: int = Field(10_000, ge=100, description="audit log entries kept")
    tick_s: float = Field(2.0, gt=0)

    @field_validator("api_tokens")
    @classmethod
    def _tokens_parse(cls, v: str) -> str:
        parse_tokens(v)
        return v

    def tokens(self) -> list[TokenSpec]:
        return parse_tokens(self.api_tokens)

    def origins(self) -> set[str]:
        return {o.strip().rstrip("/") for o in self.api_origins.split(",") if o.strip()}
