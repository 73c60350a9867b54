"""`TimeIndex`: the keys of a table with the times of their entries, so that forgetting
what is at or before a time visits what is forgotten, not the whole table. Pure."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Run(Generic[K]):
    """Keys set one after another, and the earliest time of their entries (or earlier)."""

    __slots__ = ("earliest", "keys")

    def __init__(self, keys: list[K], earliest: float = math.inf) -> None:
        self.keys = keys
        self.earliest = earliest


class TimeIndex(Generic[K]):
    """The keys of a table in the order their entries were set, in runs: the one being
    filled (`open`, which a writer may append to directly, lowering its `earliest` to
    the time of what it adds) and one per `forget` before. A key is added each time its
    entry is set, and may stay listed after its entry went or moved to another time:
    `forget` reads the entry's time from the table, and every entry is listed in a run
    whose earliest time is at or before its own."""

    def __init__(self) -> None:
        self.runs: list[Run[K]] = []
        self.open: Run[K] = Run([])

    def add(self, keys: list[K], earliest: float) -> None:
        """Keys just set, whose entries' times are `earliest` or later."""
        self.open.keys += keys
        self.open.earliest = min(self.open.earliest, earliest)

    def forget(self, table: dict[K, V], cutoff: float, when: Callable[[V], float]) -> None:
        """Delete from `table` every entry whose time (`when`) is at or before `cutoff`,
        as `{k: v for k, v in table.items() if when(v) > cutoff}` would keep the others,
        reading only the runs that hold a time at or before `cutoff`."""
        if self.open.keys:
            self.runs.append(self.open)
            self.open = Run([])
        runs: list[Run[K]] = []
        for run in self.runs:
            if run.earliest > cutoff:
                runs.append(run)
                continue
            kept: list[K] = []
            earliest = math.inf
            for key in run.keys:
                entry = table.get(key)
                if entry is None:
                    continue  # forgotten already
                ts = when(entry)
                if ts <= cutoff:
                    del table[key]
                else:
                    kept.append(key)
                    earliest = min(earliest, ts)
            if kept:
                runs.append(Run(kept, earliest))
        self.runs = runs
