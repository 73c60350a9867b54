"""`epoch`: the same float as `datetime.timestamp()`, whatever the zone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from shared.events import parse_event
from shared.timefmt import epoch


def test_epoch_of_hand_worked_times() -> None:
    # 2026-11-11 20:00 UTC: 56 years of 365 days and 14 leap days to 2026-01-01, then 314
    # days to 11 November, then 20 hours
    assert epoch(datetime(2026, 11, 11, 20, 0, tzinfo=UTC)) == (20_454 + 314) * 86_400 + 72_000
    # the same instant written at +05:30, with a microsecond
    at = datetime(2026, 11, 12, 1, 30, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert epoch(at) == 1_794_427_200.000001
    # before 1970, and a zone whose offset changes with the date (asked each time)
    assert epoch(datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)) == -0.5
    paris = ZoneInfo("Europe/Paris")
    assert epoch(datetime(2026, 7, 1, 12, 0, tzinfo=paris)) == 1_782_900_000.0  # +02:00
    assert epoch(datetime(2026, 1, 1, 12, 0, tzinfo=paris)) == 1_767_265_200.0  # +01:00


def test_epoch_equals_timestamp_for_parsed_and_built_times() -> None:
    rng = random.Random(7)
    offsets = ["Z", "+00:00", "+05:30", "-08:00", "+14:00", "-00:30"]
    for _ in range(5_000):
        at = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(
            seconds=rng.uniform(0, 2e9), microseconds=rng.randrange(1_000_000)
        )
        text = at.strftime("%Y-%m-%dT%H:%M:%S.%f") + rng.choice(offsets)
        event = parse_event(
            {"event_id": "e1", "type": "call.queued", "ts": text, "call_id": "c", "queue_id": "q"}
        )
        assert epoch(event.ts) == event.ts.timestamp(), text
        built = at.astimezone(timezone(timedelta(minutes=rng.randrange(-720, 841))))
        assert epoch(built) == built.timestamp()
