"""When each batch is due. The load shape alone decides: a slow server never moves the plan."""

from __future__ import annotations

from dataclasses import dataclass

from .shapes import RateCurve, Stage


@dataclass(frozen=True)
class Schedule:
    """The plan for one run, independent of how the server behaves."""

    curve: RateCurve | None  # the target rate over time; None = unlimited
    batch_size: int
    total_batches: int | None  # count mode
    duration_s: float | None  # duration mode (a constant rate's window, or the stages' total)
    timeout_s: float
    total_events: int | None = None  # count mode: the plan's events (its last batch may be short)

    @classmethod
    def for_run(
        cls, *, target_eps: float, batch_size: int, total_events: int, duration_s: float, timeout_s: float,
        stages: list[Stage] | None = None,
    ) -> "Schedule":
        if stages:
            shaped = RateCurve.from_stages(stages)
            length = shaped.duration_s or 0.0
            return cls(shaped, batch_size, None, length, max(timeout_s, length))
        window = duration_s if duration_s > 0 else None
        curve = RateCurve.constant(target_eps, window) if target_eps > 0 else None
        if window is not None:
            return cls(curve, batch_size, None, window, max(timeout_s, window))
        return cls(curve, batch_size, -(-total_events // batch_size), None, timeout_s, total_events)

    @property
    def unlimited(self) -> bool:
        return self.curve is None

    @property
    def interval_s(self) -> float:
        """Seconds between batches at a constant rate; 0 when unlimited. (Shaped plans vary.)"""
        if self.curve is None:
            return 0.0
        return self.batch_size / self.curve.peak_eps

    def planned_s(self) -> float | None:
        """How long the plan takes to make its events due: the window its rate is measured over.

        N batches at a constant rate span N intervals (the last batch's events are due until
        the window ends), not the N - 1 between their first events. None without a rate or end.
        """
        if self.duration_s is not None:
            return self.duration_s
        if self.curve is None or self.total_batches is None:
            return None
        events = self.total_events if self.total_events is not None else self.total_batches * self.batch_size
        return self.curve.time_at(events)

    def intended(self, batch: int) -> float | None:
        """Seconds after the start when `batch` is due; None when the plan has no such batch."""
        assert self.curve is not None
        return self.curve.time_at(batch * self.batch_size)

    def segment_batches(self, batches: int, segment: tuple[int, int] = (0, 1)) -> int:
        """Of the plan's batches 0..batches-1, how many are segment i's (numbers b with b % N == i)."""
        index, count = segment
        return max(-(-(batches - index) // count), 0)

    def planned_batches(self) -> int | None:
        """Every batch of a finite plan (count mode, or a shape that ends); None when open-ended."""
        if self.total_batches is not None:
            return self.total_batches
        if self.curve is None:
            return None
        planned = self.curve.total_events
        return None if planned == float("inf") else -(-int(round(planned)) // self.batch_size)

    def due_by(self, elapsed: float) -> int:
        """Batches of the plan due within `elapsed` seconds of the start (intended time at or before)."""
        if self.curve is None or elapsed < 0:
            return 0
        if self.duration_s is not None:
            elapsed = min(elapsed, self.duration_s)
        events = self.curve.events_by(elapsed)
        due = int(events // self.batch_size) + 1
        # Batch k exists when its first event lies inside the plan.
        planned = self.curve.total_events
        if planned != float("inf"):
            due = min(due, -(-int(round(planned)) // self.batch_size))
        if self.total_batches is not None:
            due = min(due, self.total_batches)
        return due


class Scheduler:
    """Hands out batch numbers in order, each with its intended send time.

    Senders claim the next batch when they are free; with all of them busy a batch
    waits, and the wait counts in its latency (measured from the intended time).

    A segment i/N claims only the batch numbers b with b % N == i, each at the time the
    whole plan gives it: N segments together send the one-process plan exactly.
    """

    def __init__(self, schedule: Schedule, start: float, segment: tuple[int, int] = (0, 1)) -> None:
        self.schedule = schedule
        self.start = start
        self.segment = segment
        self._next = 0
        self._abandoned = 0
        self.stopped = False
        self.timed_out = False
        self._deadline = start + schedule.timeout_s
        self._end = start + schedule.duration_s if schedule.duration_s else None
        # Read once per request by claim(), so kept in the instance, not looked up through the schedule.
        self._total, self._curve, self._batch_size = schedule.total_batches, schedule.curve, schedule.batch_size

    def claim(self, now: float) -> tuple[int, float] | None:
        """The next batch and its intended time, or None when the run is over."""
        if self.stopped or now >= self._deadline:
            self.still_due(now)  # counts a timeout
            return None
        end = self._end
        if end is not None and now >= end:
            return None  # the window is over: what is still due was not sent, and says so
        index, count = self.segment
        k = self._next * count + index  # the batch number in the whole plan
        if self._total is not None and k >= self._total:
            return None
        curve = self._curve
        if curve is not None:
            offset = curve.time_at(k * self._batch_size)  # Schedule.intended(k)
            if offset is None:
                return None  # the shape's events are all planned
            intended = self.start + offset
        else:
            intended = now
        if end is not None and intended >= end:
            return None
        self._next += 1
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
        """This segment's batches the plan had due by `until` (intended time at or before it); 0 when unlimited."""
        return self.schedule.segment_batches(self.schedule.due_by(until - self.start), self.segment)

    def due_when_stopped(self, stopped_at: float, grace_s: float) -> int:
        """Batches the plan had due when a stop came, as the run is judged on them.

        A batch due less than `grace_s` before the stop and not sent is not held against the
        run: its sender woke with the stop (an --abort-on-fail check and a batch fall due on the
        same second boundary), and it was not late yet. One that did go out counts.
        """
        taken = self._next - self._abandoned
        return max(self.due_batches(stopped_at - grace_s), min(self.due_batches(stopped_at), taken))

    def due_not_claimed(self, now: float) -> int:
        """Batches whose time had come by `now` (within the plan) but that no sender took."""
        return max(self.due_batches(now) - (self._next - self._abandoned), 0)

    @property
    def end_time(self) -> float | None:
        return self._end
