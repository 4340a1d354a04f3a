"""One timer for every sender waiting for its due time, so the event loop sleeps in between.

A sender that waits for its batch's time asks the pacer for a future; the pacer keeps the
waiters in a heap by due time and arms one loop timer, for the earliest. When it fires, every
waiter due within the timer's resolution is released at once (in due order), and the timer is
armed again for the next. Nothing spins: between due times the loop blocks in the kernel, so
a paced run costs CPU per request sent, not a core.

uvloop's timers count whole milliseconds (a timer fires up to half a millisecond early or
late), so a waiter due less than a millisecond after the timer fired goes now, not after one
more timer that could only round to the same instant: it may go up to RESOLUTION_S before its
time, never more. Lateness (a busy loop, a process off the CPU) still shows as schedule lag,
measured by the senders from the due time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from typing import Callable

# The loop's timer resolution: libuv (uvloop) keeps time in whole milliseconds.
RESOLUTION_S = 0.001


class Pacer:
    """Releases waiters at their due times (clock time) with one timer; stop() releases them all."""

    def __init__(self, clock: Callable[[], float], resolution_s: float = RESOLUTION_S) -> None:
        self.clock, self.resolution_s = clock, resolution_s
        self._heap: list[tuple[float, int, asyncio.Future[bool]]] = []
        self._order = itertools.count()  # ties keep the order the waiters came in
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False
        self.wakeups = 0  # timer firings, for tests and for the curious

    def wait(self, when: float) -> asyncio.Future[bool] | None:
        """None when `when` is already due (within the resolution): go now, no future needed.

        Otherwise a future that becomes True at `when`, or False when stop() comes first.
        Cancelling it (its task was cancelled) just drops the waiter.
        """
        if when - self.clock() <= self.resolution_s:
            return None
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        if self.stopped:
            waiter.set_result(False)
            return waiter
        heapq.heappush(self._heap, (when, next(self._order), waiter))
        if when < self._timer_at:
            self._arm(when)
        return waiter

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = when
        self._timer = self._loop.call_later(max(when - self.clock() - self.resolution_s / 2, 0.0), self.fire)

    def fire(self) -> int:
        """Release every waiter due by now plus the resolution; arm the timer for the next. Returns
        how many were released (the timer's callback; tests call it with a fake clock)."""
        self._timer, self._timer_at = None, math.inf
        self.wakeups += 1
        heap = self._heap
        limit = self.clock() + self.resolution_s
        released = 0
        while heap and heap[0][0] <= limit:
            waiter = heapq.heappop(heap)[2]
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(True)
                released += 1
        if heap:
            self._arm(heap[0][0])
        return released

    def stop(self) -> None:
        """Every waiter, now and later, is released with False (the run is over)."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        heap, self._heap = self._heap, []
        for _, _, waiter in sorted(heap):
            if not waiter.done():
                waiter.set_result(False)

    @property
    def waiting(self) -> int:
        """Waiters in the heap (cancelled ones included until their time comes)."""
        return len(self._heap)
