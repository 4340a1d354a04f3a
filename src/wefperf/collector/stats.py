"""Per-event-type counters behind `/stats/throughput`: totals plus 1- and 5-minute windows.

One ring of per-second buckets per type: adding is O(1) per request and memory does not
grow with uptime, whatever the traffic.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

WINDOW_SECS = 300
MINUTE = 60


class _TypeCounter:
    __slots__ = ("total", "counts", "stamps")

    def __init__(self) -> None:
        self.total = 0
        self.counts = [0] * WINDOW_SECS
        self.stamps = [-1] * WINDOW_SECS

    def add(self, n: int, second: int) -> None:
        slot = second % WINDOW_SECS
        if self.stamps[slot] != second:
            self.stamps[slot] = second
            self.counts[slot] = 0
        self.counts[slot] += n
        self.total += n

    def since(self, second: int, span: int) -> int:
        oldest = second - span + 1
        return sum(c for c, s in zip(self.counts, self.stamps) if oldest <= s <= second)


class ThroughputStats:
    """Events received per type key, never reset; `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._types: dict[str, _TypeCounter] = {}

    def add(self, counts: Mapping[str, int]) -> None:
        second = int(self._clock())
        for key, n in counts.items():
            counter = self._types.get(key)
            if counter is None:
                counter = self._types[key] = _TypeCounter()
            counter.add(n, second)

    def total(self) -> int:
        return sum(c.total for c in self._types.values())

    def totals(self) -> dict[str, int]:
        """Events received per type key since start: what /metrics exports."""
        return {key: c.total for key, c in self._types.items()}

    def snapshot(self) -> list[dict[str, Any]]:
        """The JSON rows of docs/contract.md, sorted by `last_minute` descending (then by name, for stability)."""
        second = int(self._clock())
        rows: list[dict[str, Any]] = []
        for key, counter in self._types.items():
            last_minute = counter.since(second, MINUTE)
            rows.append(
                {
                    "event_type": key,
                    "total_events": counter.total,
                    "last_minute": last_minute,
                    "last_five_minutes": counter.since(second, WINDOW_SECS),
                    "average_per_second_last_minute": round(last_minute / MINUTE, 3),
                }
            )
        rows.sort(key=lambda r: (-r["last_minute"], r["event_type"]))
        return rows
