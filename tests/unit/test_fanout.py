"""The board's fan-out: a slow client is dropped, the others keep every message."""

from __future__ import annotations

import orjson

from services.api.fanout import Fanout


def snap(queue_id: str, as_of: str, rate: float) -> dict[str, object]:
    return {"queue_id": queue_id, "as_of": as_of, "windows": {"300": {"answer_rate_live": rate}}}


async def test_a_slow_client_is_dropped_and_the_others_get_everything() -> None:
    fanout = Fanout(client_queue=2)
    slow, fast = fanout.connect(), fanout.connect()
    for i in range(3):
        fanout.broadcast({"type": "alert", "n": i})
        got = await fast.outbox.get()  # the fast one drains as it goes
        assert orjson.loads(got) == {"type": "alert", "n": i}
    assert slow.dropped.is_set() and not fast.dropped.is_set()
    assert slow.outbox.qsize() == 2  # it kept what fitted, then was cut off


async def test_ticks_are_grouped_and_history_kept_for_reconnects() -> None:
    fanout = Fanout()
    client = fanout.connect()
    fanout.on_snapshots(
        [snap("b", "2026-11-11T20:00:02.000Z", 0.8), snap("a", "2026-11-11T20:00:02.000Z", 0.9)]
    )
    fanout.on_snapshots([snap("a", "2026-11-11T20:00:00.000Z", 0.1)])  # older: not the latest
    first = orjson.loads(await client.outbox.get())
    assert (first["type"], first["as_of"], [q["queue_id"] for q in first["queues"]]) == (
        "tick",
        "2026-11-11T20:00:02.000Z",
        ["b", "a"],
    )
    assert client.outbox.empty()  # the stale one was not sent on
    welcome = fanout.welcome([], [], 2.0)
    assert [q["queue_id"] for q in welcome["queues"]] == ["a", "b"]
    assert welcome["queues"][0]["as_of"] == "2026-11-11T20:00:02.000Z"
    assert welcome["history"]["a"] == [("2026-11-11T20:00:02.000Z", 0.9)]
