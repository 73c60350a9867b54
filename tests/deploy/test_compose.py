"""deploy/compose: the file validates with docker-compose and holds the cluster's layout."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from services.api.settings import ApiSettings
from services.dispatcher.settings import DispatcherSettings
from services.ingest.settings import IngestSettings
from services.monitor.settings import MonitorSettings
from services.notify.service import NotifySettings
from services.simulator.live import SimulatorSettings
from tests.deploy.conftest import COMPOSE, ROOT, SERVICES, Doc, load_yaml, run, tool

SETTINGS = (
    ApiSettings,
    DispatcherSettings,
    IngestSettings,
    MonitorSettings,
    NotifySettings,
    SimulatorSettings,
)
KNOWN = {f"FLOORWATCH_{name.upper()}" for cls in SETTINGS for name in cls.model_fields}


def mounts(service: Doc) -> list[tuple[str, str]]:
    """(source, target) of each volume, from the short (compose 1) or long (compose 2) form."""
    out = []
    for volume in service["volumes"]:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            out.append((source, target))
        else:
            out.append((volume["source"], volume["target"]))
    return out


def compose_config(env_file: Path, *extra: str) -> tuple[int, str, str]:
    done = run(
        tool("docker-compose"),
        "--env-file",
        str(env_file),
        "-f",
        str(COMPOSE / "compose.yaml"),
        "config",
        *extra,
        cwd=COMPOSE,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Doc:
    """`docker-compose config` of the file with the example .env, as data."""
    env = tmp_path_factory.mktemp("compose") / ".env"
    shutil.copy(COMPOSE / ".env.example", env)
    code, out, err = compose_config(env)
    assert code == 0, err
    (doc,) = load_yaml(out)
    return doc  # type: ignore[return-value]


def test_the_compose_file_validates(tmp_path: Path) -> None:
    shutil.copy(COMPOSE / ".env.example", tmp_path / ".env")
    code, _, err = compose_config(tmp_path / ".env", "--quiet")
    assert (code, err.strip()) == (0, "")


def test_a_missing_secret_stops_the_start_with_its_name(tmp_path: Path) -> None:
    lines = (COMPOSE / ".env.example").read_text().splitlines()
    (tmp_path / ".env").write_text(
        "\n".join(x for x in lines if not x.startswith("FLOORWATCH_API_TOKENS=")) + "\n"
    )
    code, _, err = compose_config(tmp_path / ".env", "--quiet")
    assert code == 1
    assert "set FLOORWATCH_API_TOKENS in .env" in err


def test_every_service_runs_in_several_instances(config: Doc) -> None:
    services = config["services"]
    replicas = {name: services[name]["deploy"]["replicas"] for name in SERVICES}
    assert replicas == {"ingest": 2, "monitor": 3, "api": 2, "dispatcher": 2, "notify": 2}
    for name in (*SERVICES, "simulator"):
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert (ROOT / "services" / name / "__main__.py").is_file()
        assert services[name]["read_only"] is True


def test_kafka_is_three_kraft_brokers_with_two_copies_acknowledged(
    config: Doc,
) -> None:
    services = config["services"]
    brokers = sorted(name for name in services if re.fullmatch(r"kafka-\d", name))
    assert brokers == ["kafka-1", "kafka-2", "kafka-3"]
    voters = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    for i, name in enumerate(brokers, start=1):
        env = services[name]["environment"]
        assert env["KAFKA_NODE_ID"] == str(i)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
    script = (COMPOSE / "kafka" / "create-topics.sh").read_text()
    assert "--replication-factor 3" in script
    assert "--config min.insync.replicas=2" in script
    assert "for name in events agents metrics alerts actions commands dlq; do" in script


def test_floorwatch_settings_are_real_and_producers_idempotent(
    config: Doc,
) -> None:
    services = config["services"]
    for name in (*SERVICES, "simulator"):
        env = services[name]["environment"]
        unknown = {k for k in env if k.startswith("FLOORWATCH_")} - KNOWN
        assert unknown == set(), f"{name}: {unknown}"
        assert env["FLOORWATCH_KAFKA_IDEMPOTENCE"] == "true"
        assert env["FLOORWATCH_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert env["FLOORWATCH_REDIS_URL"] == "redis://redis:6379/0"
    assert services["ingest"]["environment"]["FLOORWATCH_INGEST_TOKENS"] == (
        "sim:replace-me-ingest-secret"
    )


def test_redis_keeps_an_append_only_file(config: Doc) -> None:
    redis = config["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert mounts(redis) == [("redis-data", "/data")]


def test_the_proxy_fronts_ingest_and_api_with_its_config_mounted(
    config: Doc,
) -> None:
    proxy = config["services"]["proxy"]
    assert mounts(proxy) == [(str(COMPOSE / "proxy" / "nginx.conf"), "/etc/nginx/nginx.conf")]
    conf = (COMPOSE / "proxy" / "nginx.conf").read_text()
    upstreams = re.findall(r"server (\w+):8080 resolve", conf)
    assert upstreams == ["ingest", "api"]
    assert re.findall(r"listen (\d+);", conf) == ["8001", "8000"]
    assert conf.count("{") == conf.count("}")


def test_prometheus_scrapes_every_instance_of_every_service(
    config: Doc,
) -> None:
    (prom,) = load_yaml((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    assert set(jobs) == {*SERVICES, "kafka"}
    for name in SERVICES:
        assert jobs[name]["dns_sd_configs"] == [{"names": [name], "type": "A", "port": 8080}]
    assert "kafka-exporter" in config["services"]
