"""The sender pool: each sender claims the next due batch, waits for its time, sends, records.

Waiting is on the shared pacer (pacer.py), never a spin. At unlimited rate there is nothing to
wait for, and the fast sender chains: the reply's callback records it and sends the next batch
(`LoadEngine._chain`), so the sender's task wakes only when a chain ends.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Callable, Protocol

from ..measure.recorder import LATE_THRESHOLD_S, Recorder
from ..model import LoadSummary
from ..payload import PayloadPool
from . import errors
from .base import EngineBase
from .scheduler import Schedule, Scheduler

__all__ = ["LoadEngine", "make_senders"]

# After a connection-level failure in unlimited mode, pause so a dead server is not hammered.
_FAILURE_PAUSE_S = 0.01


class Channel(Protocol):
    # True: `send` may chain further batches on its connection through `after` (fast_sender.py).
    chains: bool

    # False while the channel has no open connection: `connect` first, so a batch whose connection
    # cannot open is counted failed and never sent (no byte of it went out).
    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def send(self, batch: int, after: Callable[[int], int | None] | None = None) -> int: ...


class Senders(Protocol):
    name: str

    async def open(self) -> None: ...
    def channel(self) -> Channel: ...
    async def close(self) -> None: ...


def make_senders(
    kind: str, url: str, pool: PayloadPool, timeout_s: float, concurrency: int,
    tls_verify: ssl.SSLContext | bool = True,
) -> Senders:
    """`auto` picks the raw fast path for http:// and aiohttp for https://."""
    if kind == "auto":
        kind = "fast" if url.startswith("http://") else "aiohttp"
    if kind == "fast":
        from .fast_sender import FastSenders

        return FastSenders(url, pool, timeout_s)
    from .aiohttp_sender import AiohttpSenders

    return AiohttpSenders(url, pool, timeout_s, concurrency, tls_verify)


class _InFlight:
    """A worker's request in flight: what its reply or failure is recorded against."""

    __slots__ = ("batch", "events", "intended", "sent")

    def __init__(self) -> None:
        self.batch = self.events = 0
        self.intended = self.sent = 0.0


class LoadEngine(EngineBase):
    """Runs the load phase. `stop()` ends scheduling; in-flight requests drain for a bounded time."""

    def __init__(
        self,
        *,
        pool: PayloadPool,
        senders: Senders,
        schedule: Schedule,
        concurrency: int,
        drain_timeout_s: float = 10.0,
        on_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        freeze_gc: bool = False,
        window_secs: int = 0,
        segment: tuple[int, int] = (0, 1),
        start_at: float | None = None,
        second_histograms: bool = False,
    ) -> None:
        # A segment i/N sends batches b % N == i, each at the time the whole plan gives it.
        super().__init__(clock=clock, drain_timeout_s=drain_timeout_s, on_error=on_error,
                         freeze_gc=freeze_gc, window_secs=window_secs, segment=segment, start_at=start_at,
                         second_histograms=second_histograms)
        self.pool, self.senders, self.schedule = pool, senders, schedule
        self.concurrency = concurrency
        self.scheduler: Scheduler | None = None
        self.recorder: Recorder | None = None

    def _on_stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()

    async def run(self) -> LoadSummary:
        """The load phase. Cancelling it (a second Ctrl-C, a host program) cancels every sender."""
        await self.senders.open()
        try:
            await self._wait_for_start()
            start = self.clock() if self.start_at is None else self.start_at
            self.scheduler = Scheduler(self.schedule, start, self.segment)
            self.recorder = Recorder(start, self.window_secs, second_histograms=self.second_histograms)
            if self.stopping:
                self.scheduler.stop()
            planned = None if self.schedule.unlimited else self.schedule.planned_s()
            await self._run_workers([self._worker() for _ in range(self.concurrency)],
                                    None if planned is None else start + planned)
        finally:
            await self.senders.close()
        return self._summary(self.clock())

    def _window_end(self, sched: Scheduler, rec: Recorder, end: float) -> float:
        """Where the load window ends; every headline rate is over it, and what follows is drain.

        Stopped: at the stop. Timed out: at the timeout. Duration mode: at the planned end.
        Count mode: at the plan's end, or at the last send when the run fell behind it.
        Unlimited count mode: at the last reply (there is no plan to end it sooner).
        """
        stopped = self._stop_window_end(sched.start, end)
        if stopped is not None:
            return stopped
        if sched.timed_out:
            return min(end, sched.start + self.schedule.timeout_s)
        if sched.end_time is not None:
            return min(end, sched.end_time)
        planned = self.schedule.planned_s()
        if planned is not None:
            return min(end, max(sched.start + planned, rec.last_sent))
        return end

    def _summary(self, end: float) -> LoadSummary:
        sched, rec = self.scheduler, self.recorder
        assert sched is not None and rec is not None
        window_end = self._window_end(sched, rec, end)
        due = None
        if not self.schedule.unlimited:
            batches = (sched.due_when_stopped(window_end, LATE_THRESHOLD_S) if self.stopped_early
                       else sched.due_batches(window_end))
            due = min(batches * self.pool.batch_size, self._planned_events())
            # Due and never sent: their latency runs until the window's end (no coordinated omission).
            index, count = self.segment
            rec.never_sent([sched.start + (self.schedule.intended(j * count + index) or 0.0)
                            for j in range(rec.batches_sent, batches)], window_end)
        return rec.summary(
            end,
            timed_out=sched.timed_out,
            interrupted=self._interrupted,
            due_not_sent=0 if self.stopped_early else sched.due_not_claimed(end),
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

    def _chain(self, cur: _InFlight) -> Callable[[int], int | None]:
        """At unlimited rate: called in a clean 2xx reply's callback, it records that reply and
        claims, counts and returns the next batch for the same connection (None: the run is over,
        and the worker records the last reply itself)."""
        sched, rec, pool, clock = self.scheduler, self.recorder, self.pool, self.clock
        assert sched is not None and rec is not None

        def after(status: int) -> int | None:
            now = clock()
            claim = sched.claim(now)
            if claim is None:
                return None
            rec.ok(cur.events, cur.intended, cur.sent, now)
            batch = cur.batch = claim[0]
            events = cur.events = pool.events_in(batch)
            cur.intended = cur.sent = now
            rec.sent(events, now, now)
            return batch

        return after

    async def _worker(self) -> None:
        sched, rec, pool, clock = self.scheduler, self.recorder, self.pool, self.clock
        assert sched is not None and rec is not None
        channel = self.senders.channel()
        unlimited = self.schedule.unlimited
        # The request in flight; a chain (unlimited rate, fast sender) moves it on from the reply's callback.
        cur = _InFlight()
        after = self._chain(cur) if unlimited and channel.chains else None
        while True:
            now = clock()
            claim = sched.claim(now)
            if claim is None:
                return
            batch, intended = claim
            if intended > now:
                if not await self._wait_until(intended) or not sched.still_due(clock()):
                    sched.unclaim()  # stop() gave this slot up, or the run ended while it waited
                    return
            events = pool.events_in(batch)
            if not channel.connected and not await self._connected(channel, batch, events, intended):
                continue
            if unlimited:
                sent = intended = now
            else:
                sent = clock()
            rec.sent(events, intended, sent)
            cur.batch, cur.events, cur.intended, cur.sent = batch, events, intended, sent
            try:
                status = await channel.send(batch, after)
            except asyncio.CancelledError:
                rec.failed(cur.batch, cur.events, "interrupted", "cancelled while in flight", clock(), cur.intended)
                raise
            except Exception as exc:  # every transport failure is counted, the run goes on
                await self._transport_failed(cur.batch, cur.events, cur.intended, exc, unsent=False)
                continue
            done = clock()
            if 200 <= status < 300:
                rec.ok(cur.events, cur.intended, cur.sent, done)
            else:
                cls = errors.http_status(status)
                if rec.failed(cur.batch, cur.events, cls, f"HTTP {status}", done, cur.intended) and self.on_error:
                    self.on_error(f"Batch {cur.batch} failed: HTTP {status}")

    async def _connected(self, channel: Channel, batch: int, events: int, intended: float) -> bool:
        """Open the channel's connection before the batch counts as sent; False: it could not, and
        the batch failed unsent (its latency runs until the failure, as any failure's does)."""
        rec = self.recorder
        assert rec is not None
        try:
            await channel.connect()
        except asyncio.CancelledError:
            rec.failed(batch, events, "interrupted", "cancelled while connecting", self.clock(), intended)
            rec.unsent(1, events)
            raise
        except Exception as exc:
            await self._transport_failed(batch, events, intended, exc, unsent=True)
            return False
        return True

    async def _transport_failed(self, batch: int, events: int, intended: float, exc: Exception, *,
                                unsent: bool) -> None:
        """Count a batch that failed below HTTP; `unsent`: its connection never opened, so no byte went
        out. At unlimited rate a connection-level failure pauses the sender: a dead server is not hammered."""
        rec = self.recorder
        assert rec is not None
        cls, detail = errors.classify(exc), errors.describe(exc)
        if rec.failed(batch, events, cls, detail, self.clock(), intended) and self.on_error:
            self.on_error(f"Batch {batch} failed{' before it was sent' if unsent else ''}: {cls}: {detail}")
        if unsent:
            rec.unsent(1, events)
        if self.schedule.unlimited and (unsent or cls in (errors.CONNECTION_REFUSED, errors.CONNECTION_RESET,
                                                          errors.TIMEOUT)):
            await asyncio.sleep(_FAILURE_PAUSE_S)

    def remaining_s(self, now: float, rate_eps: float) -> float | None:
        sched, rec = self.scheduler, self.recorder
        assert sched is not None and rec is not None
        if sched.end_time is not None:
            return max(sched.end_time - now, 0.0)
        if self.schedule.total_batches is not None and rate_eps > 0:
            return max(self.schedule.total_batches * self.pool.batch_size - rec.events_sent, 0) / rate_eps
        return None
