"""Settings of the ingest service."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

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
    ingest_topics_check_s: float = Field(
        1.0, gt=0, description="how often ingest looks for topics the broker has lost"
    )
    ingest_dedup_ttl_s: int = Field(
        2 * 3600, ge=1, description="how long an event_id is remembered (>= longest window)"
    )
    # contract 1: bounds on what one event may hold
    ingest_max_future_skew_s: float = Field(
        300.0, ge=0, description="`ts` at most this far ahead of ingest's clock"
    )
    ingest_max_age_s: float = Field(
        7 * 86400.0, gt=0, description="`ts` at most this far behind ingest's clock"
    )
    ingest_max_queues: int = Field(
        5000, ge=1, description="distinct queue ids; a new one beyond this is refused"
    )
    # contract 2: each token's rate, and a bound on work in flight (overload)
    ingest_rate_per_s: int = Field(2000, ge=1, description="events a second per token")
    ingest_rate_burst: int = Field(
        10, ge=1, description="bursts of this many seconds' worth of events"
    )
    ingest_max_in_flight: int = Field(
        20_000, ge=1, description="events being validated and produced at once; more is a 429"
    )
    ingest_admit_wait_s: float = Field(
        0.5, ge=0, description="how long a request may wait for room before that 429"
    )

    twilio_auth_token: str = Field("", description="checks X-Twilio-Signature; empty: adapter off")
    twilio_callback_url: str = Field(
        "", description="the callback URL as Twilio calls it (behind a proxy); default: as received"
    )
    connect_shared_secret: str = Field(
        "",
        description="the secret Amazon Connect's sender puts in X-Floorwatch-Secret; empty: off",
    )

    @model_validator(mode="after")
    def _one_request_fits(self) -> IngestSettings:
        most = self.ingest_max_events
        if self.ingest_rate_per_s * self.ingest_rate_burst < most:
            raise ValueError(
                f"ingest_rate_per_s x ingest_rate_burst must be >= {most} (max_events)"
            )
        if self.ingest_max_in_flight < most:
            raise ValueError(f"ingest_max_in_flight must be >= {most} (ingest_max_events)")
        return self

    @field_validator("ingest_tokens")
    @classmethod
    def _tokens_parse(cls, v: str) -> str:
        parse_pairs(v, 2)
        return v

    def tokens(self) -> dict[str, str]:
        """Secret -> source."""
        return {secret: source for source, secret in parse_pairs(self.ingest_tokens, 2)}
