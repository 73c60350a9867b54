"""The Dockerfile (no Docker engine here): what each service reads from it is a real setting,
every service listens where the healthcheck and the probes look, and the user is not root."""

from __future__ import annotations

import re

from tests.deploy.conftest import ROOT, SERVICES
from tests.deploy.test_compose import KNOWN

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def env_of_runtime() -> dict[str, str]:
    runtime = DOCKERFILE[DOCKERFILE.index("AS runtime") :]
    block = runtime[runtime.index("ENV ") : runtime.index("WORKDIR")]
    return dict(re.findall(r"(\w+)=(\S+)", block))


def test_two_stages_from_a_slim_python() -> None:
    assert re.findall(r"^FROM (\S+) AS (\w+)$", DOCKERFILE, re.M) == [
        ("${PYTHON_IMAGE}", "build"),
        ("${PYTHON_IMAGE}", "runtime"),
    ]
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE
    assert "COPY --from=build /opt/floorwatch /opt/floorwatch" in DOCKERFILE


def test_every_service_listens_on_8080_where_the_healthcheck_looks() -> None:
    env = env_of_runtime()
    assert {k for k in env if k.startswith("FLOORWATCH_")} <= KNOWN
    prefixes = {"ingest": "INGEST", "monitor": "MONITOR", "api": "API", "dispatcher": "DISPATCHER"}
    prefixes |= {"notify": "NOTIFY", "simulator": "SIM"}
    assert set(prefixes) == {*SERVICES, "simulator"}
    for prefix in prefixes.values():
        assert (env[f"FLOORWATCH_{prefix}_HOST"], env[f"FLOORWATCH_{prefix}_PORT"]) == (
            "0.0.0.0",  # noqa: S104  # inside the container: reachable from its network
            "8080",
        )
    assert env["FLOORWATCH_KAFKA_IDEMPOTENCE"] == "true"
    healthcheck = DOCKERFILE[DOCKERFILE.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "urlopen('http://127.0.0.1:8080/healthz', timeout=2)" in healthcheck


def test_the_image_runs_as_a_numbered_user_and_ships_only_the_packages() -> None:
    assert re.findall(r"^USER (\S+)$", DOCKERFILE, re.M) == ["10001:10001"]
    assert "useradd --system --uid 10001" in DOCKERFILE
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert [x for x in ignore if x.startswith("!")] == [
        "!pyproject.toml",
        "!README.md",
        "!shared/",
        "!services/",
    ]
    assert "*" in ignore
