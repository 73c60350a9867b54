"""The provisioned Grafana dashboard: it loads, and reads only series and fields that exist."""

from __future__ import annotations

import json

from shared.core.monitor import Monitor
from shared.events import parse_event
from tests.conftest import T0, iso
from tests.deploy.conftest import (
    COMPOSE,
    EXPORTER_SERIES,
    Doc,
    exported_series,
    load_yaml,
    series_in,
)

DASHBOARD = COMPOSE / "grafana" / "dashboards" / "floorwatch.json"


def panels() -> list[Doc]:
    doc = json.loads(DASHBOARD.read_text())
    return [p for p in doc["panels"] if p["type"] != "row"]


def test_the_dashboard_loads_with_the_panels_an_operator_needs() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert (doc["uid"], doc["title"], doc["refresh"]) == ("floorwatch", "floorwatch", "10s")
    titles = [p["title"] for p in panels()]
    assert titles[:3] == [
        "Answer rate (30 s, primary window) by queue",
        "Surge tier by queue",
        "Arrivals against expected, per queue (now)",
    ]
    assert "Instances up" in titles
    assert "Monitor lag (records behind the log end)" in titles
    assert "Consumer group lag" in titles
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])


def test_every_query_reads_series_that_exist() -> None:
    ours = exported_series()
    read: set[str] = set()
    for panel in panels():
        for target in panel["targets"]:
            if "expr" in target:
                read |= series_in(target["expr"])
    assert read - ours - EXPORTER_SERIES == set()
    # the answer rate, the tiers, ingest, ticks, commands, pushes, board clients, lag
    assert {
        "floorwatch_queue_answer_rate",
        "floorwatch_queue_surge_tier",
        "floorwatch_ingest_events_total",
        "floorwatch_monitor_tick_seconds_bucket",
        "floorwatch_dispatcher_commands_total",
        "floorwatch_notify_deliveries_total",
        "floorwatch_api_board_clients",
        "floorwatch_monitor_lag",
    } <= read


def test_every_datasource_a_panel_names_is_provisioned() -> None:
    (provisioned,) = load_yaml(
        (COMPOSE / "grafana" / "provisioning" / "datasources" / "floorwatch.yaml").read_text()
    )
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    for panel in panels():
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert uids[source["uid"]] == source["type"]


def test_arrivals_against_expected_reads_fields_of_the_snapshot() -> None:
    (panel,) = [p for p in panels() if p["title"].startswith("Arrivals against expected")]
    (target,) = panel["targets"]
    assert (target["url"], target["root_selector"]) == ("http://proxy:8000/v1/queues", "queues")
    fields = {c["selector"] for c in target["columns"]}
    assert fields == {
        "queue_id",
        "surge.arrivals",
        "surge.expected",
        "surge.ratio",
        "surge.window_s",
        "surge.basis",
        "surge.tier",
    }
    # a real tick of the monitor's core, one call queued: the snapshot the API serves
    monitor = Monitor()
    queued = {"event_id": "e1", "type": "call.queued", "ts": iso(0), "call_id": "c1"}
    monitor.engine.add(parse_event({**queued, "queue_id": "sales"}))
    queues = monitor.tick(T0.timestamp() + 1).queues_json()["queues"]
    assert isinstance(queues, list)
    (snapshot,) = queues
    for selector in fields:
        value: object = snapshot
        for part in selector.split("."):
            assert isinstance(value, dict) and part in value, selector
            value = value[part]
    assert (snapshot["queue_id"], snapshot["surge"]["tier"]) == ("sales", 0)
