"""Settings of the API service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from shared.settings import CommonSettings, parse_pairs

Role = Literal["viewer", "lead", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "lead", "admin")


class ApiSettings(CommonSettings):
    """`FLOORWATCH_API_*`, `FLOORWATCH_TICK_S` and the common settings."""

    api_tokens: str = Field("", description="name:role:secret, comma-separated")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_origins: str = Field(
        "", description="allowed websocket Origins, comma-separated; empty: same host only"
    )
    api_client_queue: int = Field(256, ge=8, description="messages buffered per board client")
    tick_s: float = Field(2.0, gt=0)

    @field_validator("api_tokens")
    @classmethod
    def _tokens_parse(cls, v: str) -> str:
        for _name, role, _secret in parse_pairs(v, 3):
            if role not in ROLES:
                raise ValueError(f"role {role!r}: must be one of {', '.join(ROLES)}")
        return v

    def tokens(self) -> dict[str, tuple[str, Role]]:
        """Secret -> (name, role)."""
        out: dict[str, tuple[str, Role]] = {}
        for name, role, secret in parse_pairs(self.api_tokens, 3):
            out[secret] = (name, role)  # type: ignore[assignment]  # checked by the validator
        return out

    def origins(self) -> set[str]:
        return {o.strip().rstrip("/") for o in self.api_origins.split(",") if o.strip()}
