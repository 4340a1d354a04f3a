"""When each batch is due. The target rate alone decides: a slow server never moves the plan."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """The plan for one run, independent of how the server behaves."""

    interval_s: float  # between intended send times; 0 = unlimited
    total_batches: int | None  # count mode
    duration_s: float | None  # duration mode
    timeout_s: float

    @classmethod
    def for_run(
        cls, *, target_eps: float, batch_size: int, total_events: int, duration_s: float, timeout_s: float
    ) -> "Schedule":
        interval = batch_size / target_eps if target_eps > 0 else 0.0
        if duration_s > 0:
            return cls(interval, None, duration_s, max(timeout_s, duration_s))
        batches = -(-total_events // batch_size)
        return cls(interval, batches, None, timeout_s)


class Scheduler:
    """Hands out batch numbers in order, each with its intended send time.

    Senders claim the next batch when they are free; with all of them busy a batch
    waits, and the wait counts in its latency (measured from the intended time).
    """

    def __init__(self, schedule: Schedule, start: float) -> None:
        self.schedule = schedule
        self.start = start
        self._next = 0
        self._abandoned = 0
        self.stopped = False
        self.timed_out = False
        self._deadline = start + schedule.timeout_s
        self._end = start + schedule.duration_s if schedule.duration_s else None

    def claim(self, now: float) -> tuple[int, float] | None:
        """The next batch and its intended time, or None when the run is over."""
        if not self.still_due(now):
            return None
        if self._end is not None and now >= self._end:
            return None  # the window is over: what is still due was not sent, and says so
        k = self._next
        if self.schedule.total_batches is not None and k >= self.schedule.total_batches:
            return None
        if self.schedule.interval_s > 0:
            intended = self.start + k * self.schedule.interval_s
        else:
            intended = now
        if self._end is not None and intended >= self._end:
            return None
        self._next = k + 1
        return k, intended

    def still_due(self, now: float) -> bool:
        """May a batch go out now? False once stopped or past the timeout (which ends the run)."""
        if self.stopped:
            return False
        if now >= self._deadline:
            self.timed_out = self.schedule.total_batches is not None
            self.stopped = True
            return False
        return True

    def stop(self) -> None:
        self.stopped = True

    def unclaim(self) -> None:
        """A claimed batch that was not sent after all (the run ended while it waited)."""
        self._abandoned += 1

    def due_batches(self, until: float) -> int:
        """Batches the plan had due by `until` (intended time at or before it); 0 when unlimited."""
        if self.schedule.interval_s <= 0:
            return 0
        until = min(until, self._end) if self._end is not None else until
        if until < self.start:
            return 0
        due = int((until - self.start) / self.schedule.interval_s) + 1
        if self._end is not None:
            due = min(due, int(-(-(self._end - self.start) // self.schedule.interval_s)))
        if self.schedule.total_batches is not None:
            due = min(due, self.schedule.total_batches)
        return due

    def due_not_claimed(self, now: float) -> int:
        """Batches whose time had come by `now` (within the plan) but that no sender took."""
        return max(self.due_batches(now) - (self._next - self._abandoned), 0)

    @property
    def end_time(self) -> float | None:
        return self._end
