"""`wefperf collector --max-eps N`: a collector that takes at most N events a second.

A virtual-time token bucket. One admission clock says when the collector is next free; a
request's `n` events reserve the next `n / N` seconds of it, and the reply waits until the
end of that slot. Requests are served in arrival order, like a single worker processing N
events a second: below N the wait is the batch's own share (`n / N`), above N a queue builds
and every reply waits its turn, so the latency a client measures grows with the overload.

The events are counted on arrival (the stats move at once); only the reply waits. Without
the flag none of this is on the request path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .stats import ThroughputStats

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Admission:
    """The admission clock; `clock` is injectable for tests."""

    def __init__(self, max_eps: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not max_eps > 0:
            raise ValueError("max_eps must be more than 0")
        self.max_eps = max_eps
        self._clock = clock
        self._free_at = 0.0  # when the clock is next free (its value in `clock`'s time)

    def reserve(self, events: int) -> float:
        """Reserve `events` on the clock; the seconds from now until their slot ends."""
        now = self._clock()
        start = max(now, self._free_at)
        self._free_at = start + events / self.max_eps
        return self._free_at - now

    @property
    def backlog_s(self) -> float:
        """How far the clock runs ahead of now: the wait a request arriving now adds to its own."""
        return max(self._free_at - self._clock(), 0.0)


def admission_middleware(admission: Admission, stats: ThroughputStats) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An aiohttp middleware: after a POST's handler has counted its events, wait for their slot.

    The events of a request are what the stats counted since the last request this middleware
    saw. A handler counts its batch synchronously after its last await, and the middleware
    resumes as soon as the handler returns, so no other request's count falls in between;
    were one ever to, only which reply waits would shift, never how many events are admitted.
    """
    seen = stats.total()

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal seen
        response = await handler(request)
        if request.method != "POST":
            return response
        total = stats.total()
        events, seen = total - seen, total
        if events > 0:
            await asyncio.sleep(admission.reserve(events))
        return response

    return admit
