"""Centre totals from several monitors' parts equal those of one monitor seeing all."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from shared.core.centre import merge, part
from shared.core.engine import Engine
from shared.events import AgentSkillsChanged, AgentStateChanged, parse_event
from shared.timefmt import parse_ts

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "contract-v2" / "trace-42.jsonl"
AT = parse_ts("2026-11-11T20:00:00.000Z")


def test_parts_of_two_monitors_merge_to_the_centre_of_one() -> None:
    import orjson

    events = [parse_event(orjson.loads(line)) for line in TRACE.read_bytes().splitlines()]
    whole = Engine()
    whole.add_many(events)
    everything = whole.compute(AT)
    expected = whole.centre(everything)

    # two monitors: billing on one, the other queues on the other; both read every agent
    halves = []
    for mine in ({"billing"}, {"sales", "support"}):
        engine = Engine()
        engine.add_many(
            e
            for e in events
            if isinstance(e, AgentStateChanged | AgentSkillsChanged) or e.queue_id in mine
        )
        stats = [s for q, s in engine.compute(AT).items() if q in mine]
        halves.append(part(AT, stats, engine.agents.values()))
    merged = merge(halves)

    assert merged.queues == expected.queues == 3
    assert merged.totals.agents == expected.totals.agents  # each agent once
    assert expected.totals.agents is not None and expected.totals.agents.staffed > 0
    for w in expected.windows:
        assert asdict(merged.windows[w]) == asdict(expected.windows[w])
    assert asdict(merged.totals.window) == asdict(expected.totals.window)
    assert (merged.totals.waiting, merged.totals.callbacks_pending) == (
        expected.totals.waiting,
        expected.totals.callbacks_pending,
    )
    assert sorted(merged.by_site) == sorted(expected.by_site)
    for site, b in expected.by_site.items():
        assert asdict(merged.by_site[site].window) == asdict(b.window)
        assert merged.by_site[site].agents == b.agents
