"""Settings common to every service (pydantic-settings, `FLOORWATCH_` prefix)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Where the broker and Redis are; each service's settings class extends this."""

    model_config = SettingsConfigDict(env_prefix="FLOORWATCH_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    kafka_idempotence: bool = Field(
        False, description="idempotent producer; on for Apache Kafka, off for the local broker"
    )
    topic_prefix: str = Field("floorwatch.", description="prefix of every topic name")
    topic_partitions: int = Field(3, ge=1, description="partitions of topics floorwatch creates")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL")
    redis_max_connections: int = Field(
        512, ge=4, le=10000, description="connections a process may open to Redis at once"
    )
    log_level: str = Field("INFO", description="logging level")
    lease_ttl_ms: int = Field(
        6000, ge=500, le=60000, description="the singletons' leader lease (dispatcher, notifier)"
    )
    dispatch_mode: Literal["auto", "approve"] = Field(
        "auto", description="the dispatcher's mode for queues whose settings do not name one"
    )

    def topic(self, name: str) -> str:
        """The full name of a topic, e.g. `events` -> `floorwatch.events`."""
        return f"{self.topic_prefix}{name}"


def parse_pairs(spec: str, parts: int) -> list[tuple[str, ...]]:
    """Split `a:b,c:d` into tuples of `parts` fields; the last field may hold colons."""
    out: list[tuple[str, ...]] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        fields = item.split(":", parts - 1)
        if len(fields) != parts or not all(fields):
            raise ValueError(f"{item!r}: expected {parts} non-empty fields separated by ':'")
        out.append(tuple(fields))
    return out
