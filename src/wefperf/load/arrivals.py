"""When each simulated host's events become due: a Poisson process per host, seeded.

The plan's rate (constant, or the staged `RateCurve`) is spread evenly over the hosts. Host h
draws unit exponential gaps from its own seeded stream and maps their running sum through
the plan's integral (time rescaling), so each host's arrivals are a Poisson process of
rate `rate(t) / hosts`, ramps included, and the same seed gives the same arrivals.

Arrivals are generated before the clock starts, as far ahead as a memory budget allows
(the whole plan of the built-in profiles); a host that runs through them generates the
next few in one tight loop when it needs them.
"""

from __future__ import annotations

import math
import random
from array import array
from bisect import bisect_right

from ..payload.hosts import host_seed
from .shapes import RateCurve

# Arrivals generated before the clock, over all hosts (8 bytes each).
PREFILL_BUDGET = 4_000_000
_COMPACT_AT = 4096  # drop consumed arrivals once this many have piled up at the front


class HostArrivals:
    """One host's due times, in seconds after the start, ascending."""

    __slots__ = ("rng", "phase", "due", "pos", "dropped", "exhausted", "_s", "_left", "_curve", "_hosts", "_end",
                 "_step")

    def __init__(
        self, seed: int, index: int, curve: RateCurve, hosts: int, *,
        end_s: float | None, quota: int | None, constant_eps: float | None,
    ) -> None:
        self.rng = random.Random(host_seed(seed, index))
        # Where the host stands in its delivery cycle when the run starts, as a share of
        # max-latency: a fleet that has been running has its hosts' cycles spread evenly.
        self.phase = self.rng.random()
        self.due: array[float] = array("d")
        self.pos = 0  # the first arrival not yet delivered (index into `due`)
        self.dropped = 0  # arrivals removed from the front of `due`
        self.exhausted = quota == 0  # no arrivals left in the plan beyond `due`
        self._s = 0.0  # the host's cumulative unit intensity so far
        self._left = -1 if quota is None else quota
        self._curve, self._hosts = curve, hosts
        self._end = math.inf if end_s is None else end_s
        # A constant rate maps intensity to time by one multiplication.
        self._step = hosts / constant_eps if constant_eps else 0.0

    def fill(self, n: int) -> None:
        """Generate up to `n` more arrivals (fewer when the plan ends)."""
        if self.exhausted:
            return
        if self.pos >= _COMPACT_AT:
            del self.due[: self.pos]
            self.dropped += self.pos
            self.pos = 0
        due, expo, s, end, left = self.due, self.rng.expovariate, self._s, self._end, self._left
        step, hosts, time_at = self._step, self._hosts, self._curve.time_at
        for _ in range(n):
            s += expo(1.0)
            t = s * step if step else time_at(s * hosts)
            if t is None or t >= end:
                self.exhausted = True
                break
            due.append(t)
            left -= 1
            if left == 0:
                self.exhausted = True
                break
        self._s, self._left = s, left

    def ahead(self) -> int:
        """Arrivals generated but not yet delivered."""
        return len(self.due) - self.pos

    def due_by(self, t: float) -> int:
        """Arrivals of the plan due at or before `t` (generates more when needed)."""
        while not self.exhausted and (not self.due or self.due[-1] <= t):
            self.fill(256)
        return self.dropped + bisect_right(self.due, t)

    def delivered(self) -> int:
        return self.dropped + self.pos


def quotas(total_events: int, hosts: int) -> list[int]:
    """Count mode: the plan's events split over the hosts, as evenly as whole numbers allow."""
    share, extra = divmod(total_events, hosts)
    return [share + (1 if h < extra else 0) for h in range(hosts)]


def build_arrivals(
    *, seed: int, hosts: int, curve: RateCurve, max_items: int, end_s: float | None,
    total_events: int | None, constant_eps: float | None, budget: int = PREFILL_BUDGET,
    segment: tuple[int, int] = (0, 1),
) -> list[HostArrivals]:
    """Every host's arrival stream, prefilled before the clock starts.

    Duration mode (`end_s`): arrivals until the plan ends. Count mode (`total_events`): each
    host has its share of the events, at its share of the rate. A segment i/N gets the streams
    of hosts h % N == i only, each the same as in the whole fleet's plan.
    """
    shares = quotas(total_events, hosts) if total_events is not None else [None] * hosts
    planned = total_events if total_events is not None else curve.total_events
    expected = planned / hosts if math.isfinite(planned) else 0.0
    # The plan's events with room for Poisson's spread, and always max_items ahead.
    ahead = int(expected + 4 * math.sqrt(expected) + 8) + max_items
    index, count = segment
    mine = range(index, hosts, count)
    per_host = max(max_items + 8, min(ahead, budget // max(len(mine), 1)))
    streams = []
    for h in mine:
        stream = HostArrivals(seed, h, curve, hosts, end_s=end_s, quota=shares[h], constant_eps=constant_eps)
        stream.fill(per_host)
        streams.append(stream)
    return streams
