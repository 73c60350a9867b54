"""deploy/k8s: `kubectl kustomize` renders it offline, and what it renders is complete."""

from __future__ import annotations

import pytest

from services.monitor.settings import MonitorSettings
from shared.kafka import TOPICS
from tests.deploy.conftest import K8S, SERVICES, Doc, load_yaml, run, tool
from tests.deploy.test_compose import KNOWN

Manifest = Doc


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], Manifest]:
    done = run(tool("kubectl"), "kustomize", str(K8S))
    assert done.returncode == 0, done.stderr
    docs = load_yaml(done.stdout)
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}  # type: ignore[index]


def test_kustomize_renders_every_object(rendered: dict[tuple[str, str], Manifest]) -> None:
    expected = {("Namespace", "floorwatch"), ("ConfigMap", "floorwatch"), ("Job", "create-topics")}
    for name in SERVICES:
        expected |= {("Deployment", name), ("Service", name), ("PodDisruptionBudget", name)}
    expected |= {("HorizontalPodAutoscaler", "ingest"), ("HorizontalPodAutoscaler", "api")}
    expected |= {("ScaledObject", "monitor"), ("PrometheusRule", "floorwatch")}
    expected |= {
        ("NetworkPolicy", name)
        for name in (
            "default-deny",
            "ingest-and-api-from-anywhere",
            "scrape-from-monitoring",
            "dns-kafka-redis",
            "https-out",
        )
    }
    assert set(rendered) == expected
    for (kind, _), doc in rendered.items():
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == "floorwatch"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "floorwatch"


@pytest.mark.parametrize(
    ("name", "replicas", "cpu", "memory"),
    [
        ("ingest", 2, "500m", "256Mi"),
        ("monitor", 3, "500m", "384Mi"),
        ("api", 2, "250m", "256Mi"),
        ("dispatcher", 2, "100m", "192Mi"),
        ("notify", 2, "100m", "160Mi"),
    ],
)
def test_each_deployment_runs_its_service_safely(
    rendered: dict[tuple[str, str], Manifest], name: str, replicas: int, cpu: str, memory: str
) -> None:
    spec = rendered[("Deployment", name)]["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == replicas
    assert container["command"] == ["python", "-m", f"services.{name}"]
    assert container["image"] == "registry.example.com/floorwatch:latest"
    assert container["resources"]["requests"] == {"cpu": cpu, "memory": memory}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert (pod["securityContext"]["runAsNonRoot"], pod["securityContext"]["runAsUser"]) == (
        True,
        10001,
    )
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"] == labels
    pdb = rendered[("PodDisruptionBudget", name)]["spec"]
    assert pdb["selector"]["matchLabels"] == labels
    assert rendered[("Service", name)]["spec"]["selector"] == labels


def test_secrets_come_from_the_secret_and_settings_are_real(
    rendered: dict[tuple[str, str], Manifest],
) -> None:
    (example,) = load_yaml((K8S / "secret.example.yaml").read_text())
    refs = set()
    for name in SERVICES:
        (container,) = rendered[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
        for var in container.get("env", []):
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == example["metadata"]["name"] == "floorwatch-tokens"
            refs.add((var["name"], ref["key"]))
    assert refs == {
        ("FLOORWATCH_INGEST_TOKENS", "ingest-tokens"),
        ("FLOORWATCH_TWILIO_AUTH_TOKEN", "twilio-auth-token"),
        ("FLOORWATCH_CONNECT_SHARED_SECRET", "connect-shared-secret"),
        ("FLOORWATCH_API_TOKENS", "api-tokens"),
        ("FLOORWATCH_DISPATCH_SECRET", "dispatch-secret"),
    }
    assert {key for _, key in refs} == set(example["stringData"])
    assert {var for var, _ in refs} <= KNOWN
    data = rendered[("ConfigMap", "floorwatch")]["data"]
    assert {k for k in data if k.startswith("FLOORWATCH_")} <= KNOWN
    assert not any("TOKEN" in k or "SECRET" in k for k in data)
    assert data["FLOORWATCH_KAFKA_IDEMPOTENCE"] == "true"


def test_autoscaling_on_cpu_and_on_the_monitors_lag(
    rendered: dict[tuple[str, str], Manifest],
) -> None:
    for name in ("ingest", "api"):
        spec = rendered[("HorizontalPodAutoscaler", name)]["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        (metric,) = spec["metrics"]
        assert (metric["resource"]["name"], metric["resource"]["target"]["averageUtilization"]) == (
            "cpu",
            70,
        )
    scaled = rendered[("ScaledObject", "monitor")]["spec"]
    (trigger,) = scaled["triggers"]
    settings = MonitorSettings()
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == settings.monitor_group_id
    assert trigger["metadata"]["topic"] == settings.topic("events")
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (3, 6)
    # no more monitors than partitions of the events topic
    data = rendered[("ConfigMap", "floorwatch")]["data"]
    assert int(data["FLOORWATCH_TOPIC_PARTITIONS"]) == scaled["maxReplicaCount"]


def test_topics_are_created_with_three_replicas(rendered: dict[tuple[str, str], Manifest]) -> None:
    (container,) = rendered[("Job", "create-topics")]["spec"]["template"]["spec"]["containers"]
    script = container["command"][-1]
    assert f"for name in {' '.join(TOPICS)}; do" in script
    assert "--replication-factor 3" in script
    assert "--config min.insync.replicas=2" in script


def test_network_policies_deny_by_default(rendered: dict[tuple[str, str], Manifest]) -> None:
    deny = rendered[("NetworkPolicy", "default-deny")]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    out = rendered[("NetworkPolicy", "https-out")]["spec"]
    assert out["podSelector"]["matchExpressions"][0]["values"] == ["dispatcher", "notify"]
    assert out["egress"] == [{"ports": [{"port": 443, "protocol": "TCP"}]}]
