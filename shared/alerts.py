"""Alert records as readers see them (`GET /v1/alerts`), built from alert transitions."""

from __future__ import annotations

from typing import Any


def apply_change(record: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any]:
    """The alert record after one transition (`raised` ... `cleared`, `acknowledged`)."""
    # Any: alert records are JSON documents
    transition = change["transition"]
    if record is None:
        record = {
            "alert_id": change["alert_id"],
            "kind": change.get("kind"),
            "queue_id": change.get("queue_id"),
            "state": "active",
            "tier": 0,
            "raised_at": change["at"],
            "acknowledged_by": None,
            "acknowledged_at": None,
            "cleared_at": None,
            "history": [],
        }
    record = {**record, "updated_at": change["at"]}
    if transition == "acknowledged":
        record["acknowledged_by"] = change["by"]
        record["acknowledged_at"] = change["at"]
    else:
        record["tier"] = change.get("tier", record["tier"])
        record["numbers"] = change.get("numbers")
        if transition == "cleared":
            record["state"] = "cleared"
            record["cleared_at"] = change["at"]
    entry = {"transition": transition, "at": change["at"]}
    if "tier" in change:
        entry["tier"] = change["tier"]
    if "by" in change:
        entry["by"] = change["by"]
    record["history"] = [*record["history"], entry]
    return record
