"""The incident tracker (contract 7): alerts, actions and snapshots in, incidents out. Pure.

A queue's first alert opens its incident; its surge and breach alerts, the dispatcher's
actions for it and its numbers tick by tick all land in that one record. The incident
closes once the queue has had no active alert, no open action and no callback pending
for `clear_after_s`; the next alert then opens a new one. Time comes in with each input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.messages.alerts import AlertChange, Numbers
from shared.messages.incidents import (
    ActionView,
    AlertView,
    Counts,
    Entry,
    Incident,
    Sample,
    Summary,
)
from shared.timefmt import parse_ts

MOVING = frozenset({"agent.reassign", "agent.activate"})  # commands that move an agent
NOT_CARRIED_OUT = frozenset({"proposed", "rejected", "expired"})
OPENING = frozenset({"raised", "escalated", "updated"})  # transitions of an active alert
NUMBERS_ONLY = frozenset({"updated"})  # the numbers now, every tick (not a transition)
# per queue: (clear_after_s, sl_target)
Targets = Callable[[str], tuple[float, float]]


def incident_id(queue_id: str, first_alert_id: str) -> str:
    """A URL- and header-safe id, the same however often the first alert is delivered."""
    digest = hashlib.sha256(f"{queue_id}\x00{first_alert_id}".encode()).hexdigest()
    return f"inc_{digest[:20]}"


def _pct(value: object) -> str:
    return f"{100 * value:.0f}%" if isinstance(value, int | float) else "n/a"


def alert_text(change: AlertChange) -> str:
    """What the timeline says of an alert transition."""
    n = change.numbers
    if change.transition == "acknowledged":
        return f"{change.kind} acknowledged by {change.by or 'someone'}"
    if change.kind == "surge":
        what = f"surge tier {change.tier}, {_pct(n.get('ratio'))} of expected"
    else:
        what = "answer rate below its alert line"
    return f"{change.transition}: {what}, answer rate {_pct(n.get('answer_rate_live'))}"


def action_text(action: ActionView) -> str:
    who = f" by {action.changed_by}" if action.changed_by else ""
    what = action.summary or ", ".join(str(c.get("type")) for c in action.commands) or "action"
    return f"{what}: {action.state}{who}"


def action_from_json(data: Mapping[str, Any]) -> ActionView:
    """An action as the dispatcher publishes it, read for the fields incidents need.

    Raises ValueError (or a pydantic ValidationError) when those fields are missing.
    """
    changed = data.get("changed_at", data.get("created_at"))
    created = data.get("created_at", changed)
    commands = data.get("commands", data.get("plan")) or []
    return ActionView.model_validate(
        {
            "action_id": data["action_id"],
            "state": data["state"],
            "created_at": created,
            "changed_at": changed,
            "changed_by": data.get("changed_by"),
            "summary": str(data.get("summary") or "")[:500],
            "commands": [c for c in commands if isinstance(c, dict)],
            "projected": data.get("projected") or {},
            "measured": data.get("measured") or data.get("measured_effect"),
        }
    )


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def sample_from_snapshot(snapshot: Mapping[str, Any]) -> tuple[Sample, Counts | None, Numbers]:
    """A queue snapshot (contract 7) as a chart point, its day counts and its numbers now."""
    windows = snapshot.get("windows") or {}
    primary = windows[min(windows, key=int)] if windows else {}
    surge = snapshot.get("surge") or {}
    agents = snapshot.get("agents") or {}
    rate = _num(primary.get("answer_rate_live"))
    sample = Sample(
        at=parse_ts(str(snapshot["as_of"])),
        answer_rate=rate,
        abandon_rate=_num(primary.get("abandon_rate")),
        arrivals=int(surge["arrivals"]) if _num(surge.get("arrivals")) is not None else None,
        expected=_num(surge.get("expected")),
        agents=int(agents["staffed"]) if _num(agents.get("staffed")) is not None else None,
        callbacks_pending=int(snapshot.get("callbacks_pending") or 0),
    )
    today = snapshot.get("today")
    counts = None
    if isinstance(today, dict):
        day = today.get("totals", today)
        counts = Counts(**{k: int(day.get(k) or 0) for k in Counts.model_fields})
    now: Numbers = {
        "ratio": _num(surge.get("ratio")),
        "expected": sample.expected,
        "arrivals": sample.arrivals,
        "answer_rate_live": rate,
        "abandon_rate": sample.abandon_rate,
    }
    return sample, counts, now


def summarise(incident: Incident) -> Summary:
    """The after-action figures, from the incident's own record."""
    end = incident.closed_at if incident.closed_at is not None else incident.updated_at
    base = incident.counts_at_open or Counts()
    during = {
        k: max(0, getattr(incident.counts, k) - getattr(base, k)) for k in Counts.model_fields
    }
    offered = during["offered"]
    first_action = min((a.created_at for a in incident.actions), default=None)
    moved = sum(
        1
        for a in incident.actions
        if a.state not in NOT_CARRIED_OUT
        for c in a.commands
        if c.get("type") in MOVING
    )
    return Summary(
        duration_s=round(end - incident.opened_at, 3),
        time_to_first_action_s=None
        if first_action is None
        else round(first_action - incident.opened_at, 3),
        time_to_recover_s=None
        if incident.recovered_at is None
        else round(incident.recovered_at - incident.opened_at, 3),
        answer_rate=round(during["answered_within_target"] / offered, 4) if offered else None,
        abandon_rate=round(during["abandoned"] / offered, 4) if offered else None,
        agents_moved=moved,
        callbacks_offered=during["callbacks"],
        callbacks_kept=during["callbacks_completed"],
        max_tier=max([incident.summary.max_tier, *(a.tier for a in incident.alerts)]),
    )


@dataclass
class Tracker:
    """The open incident of every queue; each method returns the incident it changed."""

    targets: Targets
    open: dict[str, Incident] = field(default_factory=dict)
    last: dict[str, tuple[Sample, Counts | None]] = field(default_factory=dict)
    sample_every_s: float = 10.0
    max_samples: int = 1000

    def on_alert(self, change: AlertChange) -> Incident | None:
        """An alert transition; the first `raised` or `escalated` of a calm queue opens one."""
        incident = self.open.get(change.queue_id)
        if incident is None:
            if change.transition not in OPENING:
                return None
            incident = self._opened(change)
        if change.transition in NUMBERS_ONLY and incident.alert(change.alert_id) is not None:
            return self._numbers(incident, change)
        text = alert_text(change)
        kind = "ack" if change.transition == "acknowledged" else "alert"
        if any(e.ref == change.alert_id and e.at == change.at and e.text == text
               for e in incident.timeline):  # fmt: skip
            return None  # delivered again
        view = incident.alert(change.alert_id)
        if change.transition == "acknowledged":
            if view is None or view.acked_by is not None:
                return None
            view = view.model_copy(update={"acked_by": change.by, "acked_at": change.at})
        elif view is None:
            view = AlertView(
                alert_id=change.alert_id, kind=change.kind, tier=change.tier,
                raised_at=change.at, numbers_then=change.numbers,
                numbers_now=_numbers_now(change),
            )  # fmt: skip
        else:
            view = view.model_copy(
                update={
                    "tier": change.tier,
                    "state": "cleared" if change.transition == "cleared" else "active",
                    "numbers_now": _numbers_now(change) or view.numbers_now,
                }
            )
        alerts = tuple(a for a in incident.alerts if a.alert_id != view.alert_id) + (view,)
        entry = Entry(at=change.at, kind=kind, text=text, ref=change.alert_id, by=change.by)
        return self._changed(incident, change.at, alerts=alerts, entry=entry)

    def _numbers(self, incident: Incident, change: AlertChange) -> Incident:
        """An `updated` change: the alert's numbers now, nothing for the timeline."""
        alerts = tuple(
            a.model_copy(update={"numbers_now": dict(change.numbers)})
            if a.alert_id == change.alert_id and a.state == "active"
            else a
            for a in incident.alerts
        )
        return self._changed(incident, change.at, alerts=alerts)

    def on_action(self, queue_id: str, action: ActionView) -> Incident | None:
        """A dispatcher action or a change of its state, for the queue's open incident."""
        incident = self.open.get(queue_id)
        if incident is None:
            return None
        known = incident.action(action.action_id)
        if known is not None and (known.state, known.measured) == (action.state, action.measured):
            return None  # nothing new
        actions = tuple(a for a in incident.actions if a.action_id != action.action_id)
        entry = None
        if known is None or known.state != action.state:
            text = action_text(action)
            entry = Entry(at=action.changed_at, kind="action", text=text,
                          ref=action.action_id, by=action.changed_by)  # fmt: skip
        return self._changed(incident, action.changed_at, actions=(*actions, action), entry=entry)

    def on_sample(
        self, queue_id: str, sample: Sample, counts: Counts | None, now_numbers: Numbers
    ) -> Incident | None:
        """A queue's snapshot: the chart, the numbers now, recovery, callbacks pending."""
        self.last[queue_id] = (sample, counts)
        incident = self.open.get(queue_id)
        if incident is None or sample.at < incident.opened_at:
            return None
        _, target = self.targets(queue_id)
        series = incident.series
        if not series or sample.at - series[-1].at >= self.sample_every_s:
            series = (*series, sample)
            if len(series) > self.max_samples:
                series = (*series[:-1:2], series[-1])
        update: dict[str, Any] = {"series": series, "sl_target": target}
        if counts is not None:
            update["counts"] = counts
        entry = None
        rate = sample.answer_rate
        if rate is not None and rate < target:
            update["recovered_at"] = None
        elif rate is not None and incident.recovered_at is None and _was_below(incident, target):
            update["recovered_at"] = sample.at
            entry = Entry(at=sample.at, kind="recovered",
                          text=f"answer rate back at target: {_pct(rate)}")  # fmt: skip
        update["alerts"] = tuple(
            a.model_copy(update={"numbers_now": now_numbers}) if a.state == "active" else a
            for a in incident.alerts
        )
        return self._changed(incident, sample.at, entry=entry, **update)

    def tick(self, now: float) -> list[Incident]:
        """Close the incidents calm for `clear_after_s` by `now`."""
        closed = []
        for queue_id, incident in list(self.open.items()):
            clear_after_s, _ = self.targets(queue_id)
            if incident.calm_since is None or now - incident.calm_since < clear_after_s:
                continue
            at = incident.calm_since + clear_after_s
            entry = Entry(at=at, kind="closed", text="calm: no alert, action or callback pending")
            done = incident.model_copy(
                update={"state": "closed", "closed_at": at, "updated_at": at,
                        "timeline": (*incident.timeline, entry)}
            )  # fmt: skip
            done = done.model_copy(update={"summary": summarise(done)})
            del self.open[queue_id]
            closed.append(done)
        return closed

    def _opened(self, change: AlertChange) -> Incident:
        sample, counts = self.last.get(change.queue_id, (None, None))
        _, target = self.targets(change.queue_id)
        return Incident(
            incident_id=incident_id(change.queue_id, change.alert_id),
            queue_id=change.queue_id, opened_at=change.at, updated_at=change.at,
            sl_target=target, series=(sample,) if sample is not None else (),
            counts_at_open=counts, counts=counts or Counts(),
        )  # fmt: skip

    def _changed(
        self, incident: Incident, at: float, entry: Entry | None = None, **update: Any
    ) -> Incident:
        """The incident with `update`, its calm clock and summary brought up to date."""
        if entry is not None:
            update["timeline"] = tuple(sorted((*incident.timeline, entry), key=lambda e: e.at))
        new = incident.model_copy(update={**update, "updated_at": max(at, incident.updated_at)})
        sample, _ = self.last.get(new.queue_id, (None, None))
        calm = (
            all(a.state == "cleared" for a in new.alerts)
            and not any(a.is_open for a in new.actions)
            and (sample is None or sample.callbacks_pending == 0)
        )
        calm_since = (new.calm_since if new.calm_since is not None else at) if calm else None
        new = new.model_copy(update={"calm_since": calm_since})
        new = new.model_copy(update={"summary": summarise(new)})
        self.open[new.queue_id] = new
        return new


def _numbers_now(change: AlertChange) -> Numbers:
    now = getattr(change, "numbers_now", None)  # the monitor's per-tick numbers, when sent
    return dict(now) if isinstance(now, dict) else dict(change.numbers)


def _was_below(incident: Incident, target: float) -> bool:
    rates = [s.answer_rate for s in incident.series if s.answer_rate is not None]
    then = [_num(a.numbers_then.get("answer_rate_live")) for a in incident.alerts]
    return any(r < target for r in rates) or any(r is not None and r < target for r in then)
