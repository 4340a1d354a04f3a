"""The sender pool: each sender claims the next due batch, waits for its time, sends, records."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from ..metrics import LATE_THRESHOLD_S, LoadSummary, Recorder
from ..payload import PayloadPool
from . import errors
from .scheduler import Schedule, Scheduler

# The seed's cadence: a progress line every 100 batches (100,000 events at 1,000 per batch);
# small batches report every 100,000 events instead of flooding the log.
PROGRESS_EVERY_BATCHES = 100
PROGRESS_EVERY_EVENTS = 100_000
# The loop's timers are only good to about a millisecond (libuv counts whole ms), so a
# sender sleeps until this much before its batch is due, then yields to the loop until it is.
_EARLY_S = 0.0015
# After a connection-level failure in unlimited mode, pause so a dead server is not hammered.
_FAILURE_PAUSE_S = 0.01


class Channel(Protocol):
    async def send(self, batch: int) -> int: ...


class Senders(Protocol):
    name: str

    async def open(self) -> None: ...
    def channel(self) -> Channel: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class ProgressInfo:
    """Rates are averages since the load started, the same measure the summary uses at the end."""

    events_sent: int
    batches_sent: int
    elapsed_s: float
    rate_eps: float  # events sent per second
    remaining_s: float | None
    events_acked: int = 0
    acked_rate_eps: float = 0.0  # events acknowledged (2xx) per second


def make_senders(
    kind: str, url: str, pool: PayloadPool, timeout_s: float, concurrency: int, tls_verify: bool = True
) -> Senders:
    """`auto` picks the raw fast path for http:// and aiohttp for https://."""
    if kind == "auto":
        kind = "fast" if url.startswith("http://") else "aiohttp"
    if kind == "fast":
        from .fast_sender import FastSenders

        return FastSenders(url, pool, timeout_s)
    from .aiohttp_sender import AiohttpSenders

    return AiohttpSenders(url, pool, timeout_s, concurrency, tls_verify)


async def wait_for_start(start_at: float | None, clock: Callable[[], float], stopped: asyncio.Event) -> None:
    """Sleep until the shared plan start (`clock` time), unless a stop comes first."""
    if start_at is None or start_at <= clock():
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopped.wait(), start_at - clock())
    while clock() < start_at and not stopped.is_set():  # the loop's timers are good to ~1 ms
        await asyncio.sleep(0)


class LoadEngine:
    """Runs the load phase. `stop()` ends scheduling; in-flight requests drain for a bounded time."""

    def __init__(
        self,
        *,
        pool: PayloadPool,
        senders: Senders,
        schedule: Schedule,
        concurrency: int,
        drain_timeout_s: float = 10.0,
        progress: Callable[[ProgressInfo], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        freeze_gc: bool = False,
        window_secs: int = 0,
        segment: tuple[int, int] = (0, 1),
        start_at: float | None = None,
        second_histograms: bool = False,
    ) -> None:
        self.pool, self.senders, self.schedule = pool, senders, schedule
        # A segment i/N sends batches b % N == i; `start_at` (this clock) is the plan's shared start.
        self.segment, self.start_at = segment, start_at
        self.second_histograms = second_histograms
        self.concurrency = concurrency
        self.drain_timeout_s = drain_timeout_s
        self.progress, self.on_error, self.clock = progress, on_error, clock
        # gc.freeze() changes the whole process: only the CLI, which owns the process, asks for it.
        self.freeze_gc = freeze_gc
        self.window_secs = window_secs  # > 0: the recorder keeps a sliding window for --abort-on-fail
        self.scheduler: Scheduler | None = None
        self.recorder: Recorder | None = None
        self._sleeping: set[asyncio.Task[None]] = set()
        # Sleeping senders that stop() woke by cancelling them: their cancellation is ours, not a caller's.
        self._released: set[asyncio.Task[None]] = set()
        self._interrupted = False
        self._aborted: str | None = None
        self._stopped_at: float | None = None
        self._stopped = asyncio.Event()

    def stop(self, interrupted: bool = True, aborted: str | None = None) -> None:
        """Stop handing out batches; senders waiting for their slot give it up at once.

        `interrupted`: the user asked (Ctrl-C, a host program); `aborted`: a threshold broke.
        """
        self._interrupted = self._interrupted or interrupted
        if aborted is not None and self._aborted is None:
            self._aborted = aborted
        if self._stopped_at is None:
            self._stopped_at = self.clock()
        if self.scheduler is not None:
            self.scheduler.stop()
        for task in list(self._sleeping):
            self._released.add(task)
            task.cancel()
        self._stopped.set()

    async def run(self) -> LoadSummary:
        """The load phase. Cancelling it (a second Ctrl-C, a host program) cancels every sender."""
        await self.senders.open()
        try:
            await wait_for_start(self.start_at, self.clock, self._stopped)
            start = self.clock() if self.start_at is None else self.start_at
            self.scheduler = Scheduler(self.schedule, start, self.segment)
            self.recorder = Recorder(start, self.window_secs, second_histograms=self.second_histograms)
            if self._stopped.is_set():
                self.scheduler.stop()
            if self.freeze_gc:
                # Everything built so far (pool, modules, sessions) lives for the whole run: keep the
                # cyclic GC from rescanning it while the senders allocate a future per request.
                gc.freeze()
            try:
                async with asyncio.TaskGroup() as group:
                    workers = [group.create_task(self._worker()) for _ in range(self.concurrency)]
                    guard = group.create_task(self._drain_guard(workers))
                    await asyncio.wait(workers)
                    guard.cancel()
            except* Exception as failures:  # a sender's bug: the first one, as itself
                raise failures.exceptions[0] from None
            finally:
                if self.freeze_gc:
                    gc.unfreeze()
        finally:
            await self.senders.close()
        end = self.clock()
        sched = self.scheduler
        # The load window: until the stop request, the timeout, the planned duration, or the last reply.
        window_end = end
        if (self._interrupted or self._aborted) and self._stopped_at is not None:
            window_end = min(end, self._stopped_at)
        elif sched.timed_out:
            window_end = min(end, sched.start + self.schedule.timeout_s)
        elif sched.end_time is not None:
            window_end = min(end, sched.end_time)
        due = None
        if not self.schedule.unlimited:
            batches = (sched.due_when_stopped(window_end, LATE_THRESHOLD_S) if self._interrupted or self._aborted
                       else sched.due_batches(window_end))
            due = min(batches * self.pool.batch_size, self._planned_events())
        return self.recorder.summary(
            end,
            timed_out=sched.timed_out,
            interrupted=self._interrupted,
            due_not_sent=0 if (self._interrupted or self._aborted) else sched.due_not_claimed(end),
            window_s=window_end - sched.start,
            due_events=due,
            aborted=self._aborted,
        )

    def _planned_events(self) -> int:
        """This segment's events of a count-mode plan (the last batch may be short); unbounded in duration mode."""
        total = self.schedule.total_batches
        if total is None:
            return 2**63
        mine = self.schedule.segment_batches(total, self.segment)
        short = self.pool.batch_size - self.pool.events_in(total - 1)
        index, count = self.segment
        return mine * self.pool.batch_size - (short if (total - 1) % count == index else 0)

    async def _drain_guard(self, workers: list[asyncio.Task[None]]) -> None:
        """After a stop, give in-flight requests `drain_timeout_s` to finish, then cancel them."""
        await self._stopped.wait()
        _, pending = await asyncio.wait(workers, timeout=self.drain_timeout_s)
        for task in pending:
            task.cancel()

    async def _worker(self) -> None:
        sched, rec, pool, clock = self.scheduler, self.recorder, self.pool, self.clock
        assert sched is not None and rec is not None
        channel = self.senders.channel()
        me = asyncio.current_task()
        assert me is not None
        unlimited = self.schedule.unlimited
        every = max(PROGRESS_EVERY_BATCHES, -(-PROGRESS_EVERY_EVENTS // pool.batch_size))
        progress = self.progress
        while True:
            now = clock()
            claim = sched.claim(now)
            if claim is None:
                return
            batch, intended = claim
            delay = intended - now
            if delay > 0:
                self._sleeping.add(me)
                try:
                    if delay > _EARLY_S:
                        await asyncio.sleep(delay - _EARLY_S)
                    while clock() < intended:
                        await asyncio.sleep(0)
                except asyncio.CancelledError:
                    if me in self._released and me.cancelling() == 1:
                        me.uncancel()  # stop() gave this slot up; any other cancel goes on up
                        sched.unclaim()
                        return
                    raise
                finally:
                    self._sleeping.discard(me)
                if not sched.still_due(clock()):
                    sched.unclaim()
                    return
            events = pool.events_in(batch)
            if unlimited:
                sent = intended = now
            else:
                sent = clock()
            rec.sent(events, intended, sent)
            if progress is not None and rec.batches_sent % every == 0:
                self._report_progress(sent)
            try:
                status = await channel.send(batch)
            except asyncio.CancelledError:
                rec.failed(batch, events, "interrupted", "cancelled while in flight", clock())
                raise
            except Exception as exc:  # every transport failure is counted, the run goes on
                cls = errors.classify(exc)
                if rec.failed(batch, events, cls, errors.describe(exc), clock()) and self.on_error:
                    self.on_error(f"Batch {batch} failed: {cls}: {errors.describe(exc)}")
                if unlimited and cls in (errors.CONNECTION_REFUSED, errors.CONNECTION_RESET, errors.TIMEOUT):
                    await asyncio.sleep(_FAILURE_PAUSE_S)
                continue
            done = clock()
            if 200 <= status < 300:
                rec.ok(events, intended, sent, done)
            else:
                cls = errors.http_status(status)
                if rec.failed(batch, events, cls, f"HTTP {status}", done) and self.on_error:
                    self.on_error(f"Batch {batch} failed: HTTP {status}")

    def _report_progress(self, now: float) -> None:
        rec, sched = self.recorder, self.scheduler
        assert rec is not None and sched is not None and self.progress is not None
        elapsed = max(now - sched.start, 1e-9)
        rate = rec.events_sent / elapsed
        remaining: float | None
        if sched.end_time is not None:
            remaining = max(sched.end_time - now, 0.0)
        elif self.schedule.total_batches is not None and rate > 0:
            left = max(self.schedule.total_batches * self.pool.batch_size - rec.events_sent, 0)
            remaining = left / rate
        else:
            remaining = None
        self.progress(ProgressInfo(rec.events_sent, rec.batches_sent, elapsed, rate, remaining,
                                   rec.events_ok, rec.events_ok / elapsed))
