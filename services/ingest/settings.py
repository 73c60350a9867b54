"""Settings of the ingest service."""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.settings import CommonSettings, parse_pairs


class IngestSettings(CommonSettings):
    """`FLOORWATCH_INGEST_*` and the common settings."""

    ingest_tokens: str = Field(
        "", description="source:secret pairs, comma-separated; the source names the sender"
    )
    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8001
    ingest_max_body_bytes: int = Field(1024 * 1024, ge=1)
    ingest_max_events: int = Field(1000, ge=1)
    ingest_produce_timeout_s: float = Field(5.0, gt=0, description="bound on Kafka's ack")
    ingest_retry_after_s: int = Field(2, ge=1)
    ingest_dedup_ttl_s: int = Field(
        2 * 3600, ge=1, description="how long an event_id is remembered (>= longest window)"
    )

    twilio_auth_token: str = Field("", description="checks X-Twilio-Signature; empty: adapter off")
    twilio_callback_url: str = Field(
        "", description="the callback URL as Twilio calls it (behind a proxy); default: as received"
    )

    @field_validator("ingest_tokens")
    @classmethod
    def _tokens_parse(cls, v: str) -> str:
        parse_pairs(v, 2)
        return v

    def tokens(self) -> dict[str, str]:
        """Secret -> source."""
        return {secret: source for source, secret in parse_pairs(self.ingest_tokens, 2)}
