"""Helpers of the deploy checks: the tools they run, the metric names the code exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose"
K8S = DEPLOY / "k8s"
# Any: parsed YAML and JSON, checked field by field by the tests
Doc = dict[str, Any]
SERVICES = ("ingest", "monitor", "api", "dispatcher", "notify")

_METRIC = re.compile(r"\b(Counter|Gauge|Histogram)\(\s*\"(floorwatch_[a-z0-9_]+)\"")
# what kafka-exporter (deploy/compose) exports and the rules and dashboard use
EXPORTER_SERIES = {
    "up",
    "kafka_brokers",
    "kafka_consumergroup_lag",
    "kafka_topic_partition_current_offset",
}


def tool(name: str) -> str:
    """The path of a command-line tool; a missing one fails the test (`.ci/run` installs it)."""
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed: .ci/run installs it from Debian"
    return path


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  # fixed tools on the repository's own files
        list(args), cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def load_yaml(text: str) -> list[object]:
    """Every document of a YAML stream, read by the Debian python3-yaml (`.ci/run`)."""
    python = tool("python3")
    script = "import json,sys,yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)"
    done = subprocess.run(  # noqa: S603  # the system python on our own text
        [python, "-c", script], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    docs: list[object] = json.loads(done.stdout)
    return docs


def exported_series() -> set[str]:
    """Every series name the services export: counters with `_total`, histograms with
    `_bucket`, `_count` and `_sum` (prometheus_client's naming)."""
    names: set[str] = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        for kind, name in _METRIC.findall(path.read_text()):
            if kind == "Counter":
                names |= {f"{name}_total", f"{name}_created"}
            elif kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            else:
                names.add(name)
    return names


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression reads (ours and the exporter's)."""
    ours = re.findall(r"\b(?:floorwatch|kafka)_[a-z0-9_]+", expr)
    return set(ours) | set(re.findall(r"\bup\b(?=\s*[{)])", expr))
