"""The alert rules: promtool accepts them, they fire on the series the services export."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.conftest import (
    COMPOSE,
    EXPORTER_SERIES,
    K8S,
    exported_series,
    load_yaml,
    run,
    series_in,
    tool,
)

RULES = COMPOSE / "prometheus" / "rules.yml"
ALERTS = {
    "FloorwatchNoTicks",
    "FloorwatchMonitorLag",
    "FloorwatchConsumerGroupLag",
    "FloorwatchDeadLettersGrowing",
    "FloorwatchPushesFailing",
    "FloorwatchPushesRetrying",
    "FloorwatchKafkaBrokerUnavailable",
    "FloorwatchInstanceDown",
    "FloorwatchIngestSlowAcks",
}


def rules() -> list[dict[str, object]]:
    (doc,) = load_yaml(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    done = run(tool("promtool"), "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 9 rules found" in done.stdout


def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    config = (COMPOSE / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "rules.yml").write_text(RULES.read_text())
    local = config.replace("/etc/prometheus/rules.yml", str(tmp_path / "rules.yml"))
    (tmp_path / "prometheus.yml").write_text(local)
    done = run(tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_read_only_series_that_exist() -> None:
    ours = exported_series()
    assert {rule["alert"] for rule in rules()} == ALERTS
    for rule in rules():
        read = series_in(str(rule["expr"]))
        assert read, rule["alert"]
        assert read <= ours | EXPORTER_SERIES, f"{rule['alert']}: {read - ours}"


def test_the_kubernetes_rules_are_the_same_rules() -> None:
    (doc,) = load_yaml((K8S / "prometheus-rules.yaml").read_text())
    (compose,) = load_yaml(RULES.read_text())
    assert doc["kind"] == "PrometheusRule"
    assert doc["spec"] == compose


# promtool's unit tests: series in, alerts out, minute by minute
FIRING = """
rule_files: [{rules}]
evaluation_interval: 10s
tests:
  - interval: 10s
    input_series:
      # ticks every 2 s for 3 minutes, then none
      - series: 'floorwatch_monitor_tick_seconds_count{{instance="m1"}}'
        values: '0+5x18 90x60'
      - series: 'floorwatch_notify_deliveries_total{{channel="slack",outcome="failed"}}'
        values: '0x30 1x30'
      - series: 'floorwatch_notify_deliveries_total{{channel="webhook",outcome="failed"}}'
        values: '0x60'
      - series: 'floorwatch_notify_deliveries_total{{channel="hook",outcome="retry"}}'
        values: '0+1x90'
      - series: 'floorwatch_notify_outbox{{instance="n1"}}'
        values: '3x90'
      - series: 'floorwatch_monitor_lag{{instance="m2"}}'
        values: '20000x60'
      - series: 'kafka_brokers'
        values: '3x10 2x50'
      - series: 'floorwatch_monitor_events_total{{outcome="dead_letter"}}'
        values: '0x30 2x30'
    alert_rule_test:
      - eval_time: 2m
        alertname: FloorwatchNoTicks
        exp_alerts: []
      - eval_time: 6m
        alertname: FloorwatchNoTicks
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations:
              summary: No monitor has ticked for 2 minutes; the wall board and alerts are stale.
      - eval_time: 6m
        alertname: FloorwatchPushesFailing
        exp_alerts:
          - exp_labels: {{severity: critical, channel: slack}}
            exp_annotations:
              summary: Pushes through slack failed after every attempt in the last 10 minutes.
      - eval_time: 5m
        alertname: FloorwatchPushesRetrying
        exp_alerts: []
      - eval_time: 12m
        alertname: FloorwatchPushesRetrying
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: 60 push attempts failed and are waiting for another try.
      - eval_time: 1m
        alertname: FloorwatchMonitorLag
        exp_alerts: []
      - eval_time: 3m
        alertname: FloorwatchMonitorLag
        exp_alerts:
          - exp_labels: {{severity: warning, instance: m2}}
            exp_annotations:
              summary: Monitor m2 is 20000 records behind the log end.
      - eval_time: 4m
        alertname: FloorwatchKafkaBrokerUnavailable
        exp_alerts:
          - exp_labels: {{severity: critical}}
            exp_annotations:
              summary: 2 of 3 Kafka brokers answer; one more lost stops acks=all writes.
      - eval_time: 6m
        alertname: FloorwatchDeadLettersGrowing
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations:
              summary: Records went to the DLQ in the last 10 minutes; read floorwatch.dlq for the reasons.
"""


def test_the_alerts_fire_on_the_series_that_mean_trouble(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(RULES.read_text())
    (tmp_path / "tests.yml").write_text(FIRING.format(rules="rules.yml"))
    done = run(tool("promtool"), "test", "rules", "tests.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
