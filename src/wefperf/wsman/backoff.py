"""When a simulated Windows host tries again (docs/wsman.md, "Retries and backoff").

A failed delivery is retried as the subscription's `w:ConnectionRetry` says (Total retries, one
interval apart); before a host holds any subscription, its Enumerate is retried after waits that
grow, a bounded number of times. Every wait is jittered so a fleet does not retry in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """`retries` waits after a first try: first_s, first_s x factor, ... (at most cap_s), each
    drawn within +/- `jitter` of its base."""

    first_s: float
    factor: float
    cap_s: float
    retries: int
    jitter: float = 0.1

    def base_s(self, retry: int) -> float:
        """The wait before retry number `retry` (0-based), without jitter."""
        return min(self.first_s * self.factor ** retry, self.cap_s)

    def delay_s(self, retry: int, rng: random.Random) -> float:
        return self.base_s(retry) * rng.uniform(1 - self.jitter, 1 + self.jitter)

    @property
    def longest_s(self) -> float:
        """The most all the waits can add up to."""
        return sum(self.base_s(r) for r in range(self.retries)) * (1 + self.jitter)


# Before the first subscription: 5 Enumerates over about 15 s (waits of 1, 2, 4 and 8 s, +/- 20 %).
ENUMERATE = Backoff(first_s=1.0, factor=2.0, cap_s=8.0, retries=4, jitter=0.2)


def connection_retry(total: int, interval_s: float) -> Backoff:
    """A subscription's ConnectionRetry: `total` retries, `interval_s` apart (+/- 10 %)."""
    return Backoff(first_s=interval_s, factor=1.0, cap_s=interval_s, retries=total, jitter=0.1)
