"""Simulated Windows hosts: each holds its events and delivers them the way the forwarder does.

Every host has its own name, EventRecordID sequence and keep-alive connection (opened
before the clock starts, so a run holds one socket per host). Its events become due as a
Poisson process (`arrivals.py`). It sends a delivery once it holds `max_items` events, or
once its oldest held event has waited `max_latency_s`, and waits for the reply before the
next one (closed loop per host; the plan itself never waits). Events that pile up while a
reply is slow wait at the host, and that wait is part of their event latency.

A failed delivery (connect error, timeout, non-2xx) is counted by class and its events are
not sent again: Windows would retry them, but each attempt here is accounted for exactly
by its own markers, so a retry would be a new delivery with new sequence numbers.

Plain http:// only (a raw asyncio protocol per host); https:// is refused by the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit

import pyarrow  # noqa: F401  (imported now, not at the first second of the load: record_bucketed uses it)

from ..metrics import LATE_THRESHOLD_S, HostRecorder, HostsFigures, LoadSummary
from ..payload.hosts import HostPayload, build_host_payload
from . import errors
from .arrivals import HostArrivals, build_arrivals
from .engine import PROGRESS_EVERY_EVENTS, ProgressInfo, wait_for_start
from .fast_sender import _ReplyProtocol
from .scheduler import Schedule

# Connections opened at once before the load: a listen backlog is often 128 to 4,096.
CONNECT_AT_ONCE = 128
_REFILL = 64  # arrivals a host generates at a time once its prefilled ones run out
# A delivery due just before the window closes still goes if its timer fired a little after.
_TIMER_SLACK_S = 0.05


class _Host:
    __slots__ = ("index", "arrivals", "record", "proto", "delivering")

    def __init__(self, index: int, arrivals: HostArrivals, first_record: int) -> None:
        self.index = index
        self.arrivals = arrivals
        self.record = first_record  # the next EventRecordID
        self.proto: _ReplyProtocol | None = None
        self.delivering = False  # has sent at least one delivery


class HostsEngine:
    """Runs the load phase with simulated hosts; the same run()/stop()/recorder shape as LoadEngine."""

    name = "hosts"
    schemes: tuple[str, ...] = ("http",)  # the raw protocol below; wsman_hosts.py adds https

    def __init__(
        self,
        *,
        payload: HostPayload,
        arrivals: list[HostArrivals],
        url: str,
        max_items: int,
        max_latency_s: float,
        plan_end_s: float | None,
        timeout_s: float,
        request_timeout_s: float,
        drain_timeout_s: float = 10.0,
        progress: Callable[[ProgressInfo], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        freeze_gc: bool = False,
        window_secs: int = 0,
        host_indices: list[int] | None = None,
        segment: tuple[int, int] = (0, 1),
        start_at: float | None = None,
        second_histograms: bool = False,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in self.schemes:
            raise ValueError(f"simulated hosts speak {' or '.join(self.schemes)} only")
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        payload.frame(parts.netloc, parts.path or "/")
        self.payload = payload
        # A segment i/N runs the hosts h % N == i (`host_indices`, one per arrival stream), and numbers
        # its deliveries i, i+N, i+2N...: markers stay unique across segments.
        indices = list(range(len(arrivals))) if host_indices is None else host_indices
        self.hosts = [_Host(h, a, payload.record_bases[h]) for h, a in zip(indices, arrivals)]
        self.segment, self.start_at = segment, start_at
        self.second_histograms = second_histograms
        self.max_items, self.max_latency_s = max_items, max_latency_s
        # Duration mode: the plan's events are due before plan_end_s; each is delivered by
        # max_latency_s after it at the latest, so the window closes then. Count mode: the timeout.
        self.plan_end_s = plan_end_s
        self.close_s = plan_end_s + max_latency_s if plan_end_s is not None else timeout_s
        self.request_timeout_s, self.drain_timeout_s = request_timeout_s, drain_timeout_s
        self.progress, self.on_error, self.clock = progress, on_error, clock
        self.freeze_gc = freeze_gc
        self.window_secs = window_secs  # > 0: the recorder keeps a sliding window for --abort-on-fail
        self._aborted: str | None = None
        self.recorder: HostRecorder | None = None
        self.start = 0.0
        # Per delivery, in batch-number order: its events (the S3 accounting numbers events by these).
        self.sizes: array[int] = array("I")
        self.acked_shapes = payload.new_shape_counts()
        self.full_deliveries = self.timed_deliveries = self.hosts_delivering = 0
        self.connections = self.connect_failures = 0
        self._connect_errors: Counter[str] = Counter()
        self._next_progress = PROGRESS_EVERY_EVENTS
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sleeping: set[asyncio.Task[None]] = set()
        self._released: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._interrupted = False
        self._stopped_at: float | None = None
        self._stopped = asyncio.Event()

    # -- the run ------------------------------------------------------------------------------

    def stop(self, interrupted: bool = True, aborted: str | None = None) -> None:
        """No host starts another delivery; hosts waiting for their trigger give up at once.

        `interrupted`: the user asked; `aborted`: a threshold broke (--abort-on-fail).
        """
        self._interrupted = self._interrupted or interrupted
        if aborted is not None and self._aborted is None:
            self._aborted = aborted
        if self._stopped_at is None:
            self._stopped_at = self.clock()
        self._stopping = True
        for task in list(self._sleeping):
            self._released.add(task)
            task.cancel()
        self._stopped.set()

    async def run(self) -> LoadSummary:
        """Connect every host, then the load. Cancelling it cancels every host."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._connect_all()
            await wait_for_start(self.start_at, self.clock, self._stopped)
            self.start = self.clock() if self.start_at is None else self.start_at
            self.recorder = HostRecorder(self.start, self.window_secs, second_histograms=self.second_histograms)
            if self.freeze_gc:
                gc.freeze()
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(self._host(h)) for h in self.hosts]
                    guard = group.create_task(self._drain_guard(tasks))
                    if tasks:
                        await asyncio.wait(tasks)
                    await self._idle_until_plan_end()
                    guard.cancel()
            except* Exception as failures:  # a bug in a host's loop: the first one, as itself
                raise failures.exceptions[0] from None
            finally:
                if self.freeze_gc:
                    gc.unfreeze()
        finally:
            await self._close_all()
        return self._summary(self.clock())

    async def _idle_until_plan_end(self) -> None:
        """A duration run lasts its duration: hosts whose plan ran out of events (sparse arrivals
        can leave a host, or the whole fleet, with none) stay connected and idle, heartbeating
        over wsman, until the plan's end or a stop."""
        if self.plan_end_s is None or self._stopping:
            return
        left = self.start + self.plan_end_s - self.clock()
        if left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), left)

    async def _drain_guard(self, tasks: list[asyncio.Task[None]]) -> None:
        """After a stop, deliveries in flight get `drain_timeout_s` to finish, then are cancelled."""
        await self._stopped.wait()
        _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout_s)
        for task in pending:
            task.cancel()

    async def _host(self, h: _Host) -> None:
        arrivals, clock, start = h.arrivals, self.clock, self.start
        due = arrivals.due
        m, wait, close = self.max_items, self.max_latency_s, self.close_s
        me = asyncio.current_task()
        assert me is not None
        first_cycle = True
        while not self._stopping:
            if arrivals.ahead() < m and not arrivals.exhausted:
                arrivals.fill(max(m, _REFILL))
            pos, held = arrivals.pos, len(due)
            if pos >= held:
                return  # the plan has nothing more for this host
            # Deliver once the oldest event has waited max_latency_s, or max_items are held.
            trigger = due[pos] + wait
            if first_cycle:
                # Warm start: the host's cycle began before the run (with events that are not part
                # of the plan), so its first delivery falls at its phase if it holds events by then.
                first_cycle = False
                at = arrivals.phase * wait
                if due[pos] <= at:
                    trigger = at
            if held - pos >= m and due[pos + m - 1] < trigger:
                trigger = due[pos + m - 1]
            if trigger >= close:
                return
            now = clock() - start
            if trigger > now:
                self._sleeping.add(me)
                try:
                    while now < trigger:
                        await asyncio.sleep(trigger - now)
                        now = clock() - start
                except asyncio.CancelledError:
                    if me in self._released and me.cancelling() == 1:
                        me.uncancel()  # stop() ended the wait; any other cancel goes on up
                        return
                    raise
                finally:
                    self._sleeping.discard(me)
            if self._stopping or (now >= close and now - trigger > _TIMER_SLACK_S):
                return  # a host still busy when the window closed keeps what it holds (reported)
            events = bisect_right(due, now, pos, min(pos + m, held)) - pos
            await self._deliver(h, events, start + trigger)

    async def _deliver(self, h: _Host, events: int, intended: float) -> None:
        rec, arrivals = self.recorder, h.arrivals
        assert rec is not None
        first = arrivals.pos
        arrivals.pos = first + events
        record, h.record = h.record, h.record + events
        index, count = self.segment
        batch = len(self.sizes) * count + index
        self.sizes.append(events)
        shape = self.payload.shape(batch, events)
        if events == self.max_items:
            self.full_deliveries += 1
        else:
            self.timed_deliveries += 1
        if not h.delivering:
            h.delivering = True
            self.hosts_delivering += 1
        data = self._request(h, batch, events, record)
        sent = self.clock()
        rec.sent(events, intended, sent)
        if self.progress is not None and rec.events_sent >= self._next_progress:
            while self._next_progress <= rec.events_sent:
                self._next_progress += PROGRESS_EVERY_EVENTS
            self._report_progress(sent)
        try:
            status = await self._send(h, data)
        except asyncio.CancelledError:
            rec.failed(batch, events, "interrupted", "cancelled while in flight", self.clock())
            raise
        except Exception as exc:  # every transport failure is counted; the host goes on with new events
            cls = errors.classify(exc)
            if rec.failed(batch, events, cls, errors.describe(exc), self.clock()) and self.on_error:
                self.on_error(f"Delivery {batch} failed: {cls}: {errors.describe(exc)}")
            return
        done = self.clock()
        if 200 <= status < 300:
            rec.ok(events, intended, sent, done)
            rec.event_latencies(done - self.start, arrivals.due[first : first + events])
            self.acked_shapes[shape] += 1
        else:
            cls = errors.http_status(status)
            if rec.failed(batch, events, cls, f"HTTP {status}", done) and self.on_error:
                self.on_error(f"Delivery {batch} failed: HTTP {status}")

    def _request(self, h: _Host, batch: int, events: int, record: int) -> bytes:
        """What goes on the wire for one delivery (wsman_hosts.py makes envelopes instead)."""
        return self.payload.request(batch, events, h.index, record)

    # -- connections ---------------------------------------------------------------------------

    async def _connect(self) -> _ReplyProtocol:
        assert self._loop is not None
        _, proto = await asyncio.wait_for(
            self._loop.create_connection(_ReplyProtocol, *self._address), self.request_timeout_s
        )
        self.connections += 1
        return proto

    # What `_open_host` does, for the message when some hosts could not.
    open_verb = "connect"

    async def _open_host(self, h: _Host) -> None:
        """Before the clock: what one host sets up (here its connection)."""
        h.proto = await self._connect()

    async def _connect_all(self) -> None:
        """Every host opens its connection before the clock starts, a bounded number at a time."""

        async def one(h: _Host) -> None:
            try:
                await self._open_host(h)
            except Exception as exc:  # counted; the host tries again at its first delivery
                self.connect_failures += 1
                self._connect_errors[errors.classify(exc)] += 1

        for first in range(0, len(self.hosts), CONNECT_AT_ONCE):
            if self._stopping:
                return
            await asyncio.gather(*(one(h) for h in self.hosts[first : first + CONNECT_AT_ONCE]))
        if self.connect_failures and self.on_error:
            classes = ", ".join(f"{name} x{n}" for name, n in self._connect_errors.most_common())
            self.on_error(f"{self.connect_failures:,} of {len(self.hosts):,} hosts could not {self.open_verb} before"
                          f" the load ({classes}); each tries again at its first delivery")

    async def _send(self, h: _Host, data: bytes) -> int:
        loop = self._loop
        assert loop is not None
        proto = h.proto
        if proto is None or proto.closed:
            h.proto = None
            proto = h.proto = await self._connect()
        transport = proto.transport
        assert transport is not None
        waiter: asyncio.Future[int] = loop.create_future()
        proto.waiter = waiter
        timer = loop.call_later(self.request_timeout_s, self._expire, proto)
        transport.write(data)
        try:
            status = await waiter
        except BaseException:
            self._drop(h)
            raise
        finally:
            timer.cancel()
        if not proto.keep_alive:
            self._drop(h)
        return status

    def _expire(self, proto: _ReplyProtocol) -> None:
        proto._fail(TimeoutError(f"no response within {self.request_timeout_s:g} s"))

    @staticmethod
    def _drop(h: _Host) -> None:
        if h.proto is not None and h.proto.transport is not None:
            h.proto.transport.close()
        h.proto = None

    async def _close_all(self) -> None:
        for h in self.hosts:
            self._drop(h)
        await asyncio.sleep(0)

    # -- what the run did ------------------------------------------------------------------------

    def _report_progress(self, now: float) -> None:
        rec = self.recorder
        assert rec is not None and self.progress is not None
        elapsed = max(now - self.start, 1e-9)
        rate = rec.events_sent / elapsed
        remaining = max(self.start + self.close_s - now, 0.0) if self.plan_end_s is not None else None
        self.progress(ProgressInfo(rec.events_sent, rec.batches_sent, elapsed, rate, remaining,
                                   rec.events_ok, rec.events_ok / elapsed))

    def _summary(self, end: float) -> LoadSummary:
        rec = self.recorder
        if rec is None:  # stopped or cancelled while connecting: nothing was sent
            self.start = end
            rec = self.recorder = HostRecorder(end)
        start = self.start
        stopped_early = self._interrupted or self._aborted is not None
        if stopped_early and self._stopped_at is not None:
            window_end = max(min(end, self._stopped_at), start)
        else:
            window_end = min(end, start + self.close_s)
        window = window_end - start
        # Duration mode: every event of the plan was due (unless the run was stopped early).
        until = self.plan_end_s if self.plan_end_s is not None and not stopped_early else window
        events_due = sum(h.arrivals.due_by(until) for h in self.hosts)
        unfinished = any(not h.arrivals.exhausted or h.arrivals.pos < len(h.arrivals.due) for h in self.hosts)
        timed_out = self.plan_end_s is None and not stopped_early and unfinished
        figures = HostsFigures(
            hosts=len(self.hosts), max_items=self.max_items, max_latency_s=self.max_latency_s,
            events_due=events_due, events_held=max(events_due - rec.events_sent, 0),
            full_deliveries=self.full_deliveries, timed_deliveries=self.timed_deliveries,
            hosts_delivering=self.hosts_delivering, connections=self.connections,
            connect_failures=self.connect_failures,
        )
        owed = events_due
        if stopped_early:
            # A host holds an event up to max-latency before it owes a delivery: the run is judged
            # on what had waited that long by the stop (or went out sooner, on a full delivery).
            waited = window - self.max_latency_s - LATE_THRESHOLD_S
            owed = max(sum(h.arrivals.due_by(waited) for h in self.hosts), rec.events_sent)
        load = rec.summary(end, timed_out=timed_out, interrupted=self._interrupted, window_s=window,
                           due_events=owed, aborted=self._aborted)
        return replace(load, hosts=figures)

    def expected_types(self) -> Counter[int]:
        """Events per EventID that the acknowledged deliveries carried."""
        return self.payload.expected_types(self.acked_shapes)

    def delivery_sizes(self) -> "array[int]":
        """Events per delivery of this segment, in its own delivery order (batch = k * N + i)."""
        return self.sizes


def build_hosts(
    *, run_id: str, seed: int, hosts: int, max_items: int, schedule: Schedule, total_events: int | None,
    constant_eps: float | None, event_type: str = "", variants: int = 8, segment: tuple[int, int] = (0, 1),
) -> tuple[HostPayload, list[HostArrivals]]:
    """Everything built before the clock: the delivery pieces and the arrivals of the segment's hosts.

    The payload (names, record ids) is the whole fleet's, so host h is the same machine in every
    segment and in a one-process run; the arrivals are built only for hosts h % N == i.
    """
    started = time.perf_counter()
    payload = build_host_payload(run_id=run_id, hosts=hosts, max_items=max_items, event_type=event_type,
                                 variants=variants, seed=seed)
    assert schedule.curve is not None, "simulated hosts need a rate"
    arrivals = build_arrivals(seed=seed, hosts=hosts, curve=schedule.curve, max_items=max_items,
                              end_s=schedule.duration_s, total_events=None if schedule.duration_s else total_events,
                              constant_eps=constant_eps, segment=segment)
    payload.build_seconds = time.perf_counter() - started
    return payload, arrivals
