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
import math
import time
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import pyarrow.compute  # noqa: F401  (loaded now, not in the first second of the load: record_bucketed uses it)

from ..measure.recorder import LATE_THRESHOLD_S, HostRecorder
from ..model import HostsFigures, LoadSummary
from ..payload.hosts import HostPayload, build_host_payload
from . import errors
from .arrivals import HostArrivals, build_arrivals
from .base import EngineBase
from .fast_sender import ReplyProtocol
from .scheduler import Schedule

# Connections opened at once before the load: a listen backlog is often 128 to 4,096.
CONNECT_AT_ONCE = 128
_REFILL = 64  # arrivals a host generates at a time once its prefilled ones run out
# A delivery due just before the window closes still goes if its timer fired a little after.
_TIMER_SLACK_S = 0.05


class SimulatedHost:
    __slots__ = ("index", "arrivals", "record", "proto", "delivering")

    def __init__(self, index: int, arrivals: HostArrivals, first_record: int) -> None:
        self.index = index
        self.arrivals = arrivals
        self.record = first_record  # the next EventRecordID
        self.proto: ReplyProtocol | None = None
        self.delivering = False  # has sent at least one delivery


@dataclass(slots=True)
class Delivery:
    """One delivery on its way: which events, when it was due, and when its bytes went out."""

    batch: int  # its number: the events' markers carry it
    events: int
    first: int  # its first event's place in the host's arrivals
    record: int  # its first EventRecordID
    intended: float  # clock time it fell due
    shape: int  # payload.shape(batch, events)
    due: "array[float]"  # the host's arrivals (due times): this delivery's are due[first:first + events]
    sent_at: float = 0.0  # clock time its first bytes were written to a connection; 0: never


class HostsEngine(EngineBase):
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
        on_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        freeze_gc: bool = False,
        window_secs: int = 0,
        host_indices: list[int] | None = None,
        segment: tuple[int, int] = (0, 1),
        start_at: float | None = None,
        second_histograms: bool = False,
    ) -> None:
        super().__init__(clock=clock, drain_timeout_s=drain_timeout_s, on_error=on_error,
                         freeze_gc=freeze_gc, window_secs=window_secs, segment=segment, start_at=start_at,
                         second_histograms=second_histograms)
        parts = urlsplit(url)
        if parts.scheme not in self.schemes:
            raise ValueError(f"simulated hosts speak {' or '.join(self.schemes)} only")
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        payload.frame(parts.netloc, parts.path or "/")
        self.payload = payload
        # A segment i/N runs the hosts h % N == i (`host_indices`, one per arrival stream), and numbers
        # its deliveries i, i+N, i+2N...: markers stay unique across segments.
        indices = list(range(len(arrivals))) if host_indices is None else host_indices
        self.hosts = [SimulatedHost(h, a, payload.record_bases[h]) for h, a in zip(indices, arrivals)]
        self.max_items, self.max_latency_s = max_items, max_latency_s
        # Duration mode: the plan's events are due before plan_end_s; each is delivered by
        # max_latency_s after it at the latest, so the window closes then. Count mode: the timeout.
        self.plan_end_s = plan_end_s
        self.close_s = plan_end_s + max_latency_s if plan_end_s is not None else timeout_s
        self.request_timeout_s = request_timeout_s
        self.recorder: HostRecorder | None = None
        self.start = 0.0
        # Per delivery, in batch-number order: its events (the S3 accounting numbers events by these).
        self.sizes: array[int] = array("I")
        # Deliveries acknowledged in part (WS-Man: envelopes Acked before a later one failed): place
        # in `sizes` -> events Acked. Those events are expected in S3 though the delivery failed.
        self.partial: dict[int, int] = {}
        self.acked_shapes = payload.new_shape_counts()
        self.full_deliveries = self.timed_deliveries = self.hosts_delivering = 0
        self.connections = self.connect_failures = 0
        self._connect_errors: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> LoadSummary:
        """Connect every host, then the load. Cancelling it cancels every host."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._connect_all()
            await self._wait_for_start()
            self.start = self.clock() if self.start_at is None else self.start_at
            self.recorder = HostRecorder(self.start, self.window_secs, second_histograms=self.second_histograms)
            # A duration run lasts its duration: hosts whose plan ran out of events (sparse arrivals
            # can leave a host, or the whole fleet, with none) stay connected and idle, heartbeating
            # over wsman, until the plan's end or a stop.
            plan_end = None if self.plan_end_s is None else self.start + self.plan_end_s
            await self._run_workers([self._host(h) for h in self.hosts], plan_end)
        finally:
            await self._close_all()
        return self._summary(self.clock())

    async def _host(self, h: SimulatedHost) -> None:
        arrivals, clock, start = h.arrivals, self.clock, self.start
        due = arrivals.due
        first_cycle = True
        while not self.stopping:
            m, wait = self._limits(h)  # each cycle: a wsman host's subscription may change at a refresh
            close = self.close_s
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
            if not await self._wait_until(start + trigger):
                return  # stop() ended the wait
            # The pacer may wake a host up to a timer tick before its trigger: what falls due by
            # the trigger is part of this delivery (a full one stays full).
            now = max(clock() - start, trigger)
            if self.stopping or (now >= close and now - trigger > _TIMER_SLACK_S):
                return  # a host still busy when the window closed keeps what it holds (reported)
            events = bisect_right(due, now, pos, min(pos + m, held)) - pos
            await self._deliver(h, events, start + trigger, m)

    def _limits(self, h: SimulatedHost) -> tuple[int, float]:
        """(max items, max latency) host `h` delivers by: the run's (wsman_hosts.py: its subscription's)."""
        return self.max_items, self.max_latency_s

    async def _deliver(self, h: SimulatedHost, events: int, intended: float, max_items: int) -> None:
        arrivals = h.arrivals
        first = arrivals.pos
        arrivals.pos = first + events
        record, h.record = h.record, h.record + events
        index, count = self.segment
        batch = len(self.sizes) * count + index
        self.sizes.append(events)
        shape = self.payload.shape(batch, events)
        if events == max_items:
            self.full_deliveries += 1
        else:
            self.timed_deliveries += 1
        await self._transmit(h, Delivery(batch, events, first, record, intended, shape, arrivals.due))

    async def _transmit(self, h: SimulatedHost, d: Delivery) -> None:
        """Send one delivery and count it: sent once written, then acknowledged or failed."""
        rec = self.recorder
        assert rec is not None
        data = self._request(h, d.batch, d.events, d.record)
        try:
            status = await self._send(h, data, d)
        except asyncio.CancelledError:
            self._failed(d, d.events, "interrupted", "cancelled while in flight", self.clock(),
                         unsent=self._unsent(d), report=False)
            raise
        except Exception as exc:  # every transport failure is counted; the host goes on with new events
            self._failed(d, d.events, errors.classify(exc), errors.describe(exc), self.clock(), unsent=self._unsent(d))
            return
        done = self.clock()
        if 200 <= status < 300:
            rec.ok(d.events, d.intended, d.sent_at, done)
            rec.event_latencies(done - self.start, h.arrivals.due[d.first : d.first + d.events])
            self.acked_shapes[d.shape] += 1
        else:
            self._failed(d, d.events, errors.http_status(status), f"HTTP {status}", done)

    @staticmethod
    def _unsent(d: Delivery) -> tuple[int, int]:
        return (0, 0) if d.sent_at else (1, d.events)

    def _written(self, h: SimulatedHost, d: Delivery, events: int) -> float:
        """`events` of `d` are being written to an open connection now: count them sent, and
        their host as delivering. Returns the time."""
        rec = self.recorder
        assert rec is not None
        now = self.clock()
        rec.sent(events, d.intended, now)
        if not h.delivering:
            h.delivering = True
            self.hosts_delivering += 1
        return now

    def _failed(self, d: Delivery, events: int, cls: str, detail: str, done: float, *,
                unsent: tuple[int, int] = (0, 0), report: bool = True) -> None:
        """The last `events` of `d` failed; `unsent`: (batches, events) of them never written.

        Their latency runs until the failure, for the delivery and for each event (no coordinated
        omission).
        """
        rec = self.recorder
        assert rec is not None
        at = d.first + d.events - events
        rec.event_latencies(done - self.start, d.due[at : at + events])
        first_of_class = rec.failed(d.batch, events, cls, detail, done, d.intended)
        if unsent != (0, 0):
            rec.unsent(*unsent)
        if first_of_class and report and self.on_error:
            why = detail if cls.startswith("http_") else f"{cls}: {detail}"
            self.on_error(f"Delivery {d.batch} failed: {why}")

    def _request(self, h: SimulatedHost, batch: int, events: int, record: int) -> bytes:
        """What goes on the wire for one delivery (wsman_hosts.py makes envelopes instead)."""
        return self.payload.request(batch, events, h.index, record)

    # -- connections ---------------------------------------------------------------------------

    async def _connect(self) -> ReplyProtocol:
        assert self._loop is not None
        _, proto = await asyncio.wait_for(
            self._loop.create_connection(ReplyProtocol, *self._address), self.request_timeout_s
        )
        self.connections += 1
        return proto

    # What `_open_host` does, for the message when some hosts could not.
    open_verb = "connect"

    async def _open_host(self, h: SimulatedHost) -> None:
        """Before the clock: what one host sets up (here its connection)."""
        h.proto = await self._connect()

    async def _connect_all(self) -> None:
        """Every host opens its connection before the clock starts, a bounded number at a time."""

        async def one(h: SimulatedHost) -> None:
            try:
                await self._open_host(h)
            except Exception as exc:  # counted; the host tries again at its first delivery
                self.connect_failures += 1
                self._connect_errors[errors.classify(exc)] += 1

        for first in range(0, len(self.hosts), CONNECT_AT_ONCE):
            if self.stopping:
                return
            await asyncio.gather(*(one(h) for h in self.hosts[first : first + CONNECT_AT_ONCE]))
        if self.connect_failures and self.on_error:
            classes = ", ".join(f"{name} x{n}" for name, n in self._connect_errors.most_common())
            self.on_error(f"{self.connect_failures:,} of {len(self.hosts):,} hosts could not {self.open_verb} before"
                          f" the load ({classes}); each tries again at its first delivery")

    async def _send(self, h: SimulatedHost, data: bytes, d: Delivery) -> int:
        """Write one delivery on the host's connection (opened again if it was closed); its reply status."""
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
        d.sent_at = self._written(h, d, d.events)
        transport.write(data)
        try:
            status = await waiter
        except BaseException:
            self._drop(h)
            raise
        finally:
            timer.cancel()
        if not proto.keep_alive or proto.early:  # an early reply leaves the request unfinished
            self._drop(h)
        return status

    def _expire(self, proto: ReplyProtocol) -> None:
        proto._fail(TimeoutError(f"no response within {self.request_timeout_s:g} s"))

    @staticmethod
    def _drop(h: SimulatedHost) -> None:
        if h.proto is not None and h.proto.transport is not None:
            h.proto.transport.close()
        h.proto = None

    async def _close_all(self) -> None:
        for h in self.hosts:
            self._drop(h)
        await asyncio.sleep(0)

    # -- what the run did ------------------------------------------------------------------------

    def remaining_s(self, now: float, rate_eps: float) -> float | None:
        """Of the load window (the plan's length); the hosts' last deliveries after it are drain."""
        return max(self.start + self.plan_end_s - now, 0.0) if self.plan_end_s is not None else None

    def _window(self, rec: HostRecorder, end: float, timed_out: bool) -> float:
        """The load window, in seconds from the start: the rates are over it; the hosts' last
        deliveries after it are drain.

        Stopped: until the stop. Duration mode: the plan's length (events fall due until then; a
        host may hold its last ones up to max-latency after it, which is drain, not load). Count
        mode: until the plan's last event fell due, or later by as much as the hosts fell behind.
        """
        start = self.start
        elapsed = end - start
        stopped = self._stop_window_end(start, end)
        if stopped is not None:
            return stopped - start
        if self.plan_end_s is not None:
            return min(elapsed, self.plan_end_s)
        if timed_out:
            return min(elapsed, self.close_s)
        last_due = max((h.arrivals.due[-1] for h in self.hosts if h.arrivals.due), default=0.0)
        behind = rec.last_sent - start - self.max_latency_s
        return min(elapsed, max(last_due, behind))

    def _owed(self, t: float) -> int:
        """Events a host that never waited for a reply would have delivered by `t` (seconds after
        the start): every event that had waited max-latency, and every full delivery's worth.

        An ideal host holds fewer than max_items events, none older than max-latency, so this
        never holds more against a run than it owed (it may owe up to max_items - 1 more per host).
        """
        m, wait = self.max_items, self.max_latency_s
        return sum(max(h.arrivals.due_by(t - wait), h.arrivals.due_by(t) - (m - 1)) for h in self.hosts)

    def _never_delivered(self, rec: HostRecorder, until: float, end: float) -> None:
        """Events due by `until` and never sent count in the event latency until `end` (seconds)."""
        for h in self.hosts:
            a = h.arrivals
            last = bisect_right(a.due, until, a.pos) if a.pos < len(a.due) else a.pos
            if last > a.pos:
                rec.event_latencies(end, a.due[a.pos:last])

    def _summary(self, end: float) -> LoadSummary:
        rec = self.recorder
        if rec is None:  # stopped or cancelled while connecting: nothing was sent
            self.start = end
            rec = self.recorder = HostRecorder(end)
        start = self.start
        stopped_early = self.stopped_early
        unfinished = any(not h.arrivals.exhausted or h.arrivals.pos < len(h.arrivals.due) for h in self.hosts)
        timed_out = self.plan_end_s is None and not stopped_early and unfinished
        window = self._window(rec, end, timed_out)
        # Duration mode: every event of the plan was due (unless the run was stopped early); count
        # mode, unless stopped or timed out, too.
        until = window
        if not stopped_early:
            until = self.plan_end_s if self.plan_end_s is not None else (window if timed_out else math.inf)
        events_due = sum(h.arrivals.due_by(until) for h in self.hosts)
        figures = HostsFigures(
            hosts=len(self.hosts), max_items=self.max_items, max_latency_s=self.max_latency_s,
            events_due=events_due, events_held=max(events_due - rec.events_sent - rec.events_unsent, 0),
            full_deliveries=self.full_deliveries, timed_deliveries=self.timed_deliveries,
            hosts_delivering=self.hosts_delivering, connections=self.connections,
            connect_failures=self.connect_failures,
        )
        owed = events_due
        if stopped_early:
            # A host holds an event up to max-latency (or until it holds max_items) before it owes
            # a delivery: the run is judged on what it owed by the stop, less the late grace.
            owed = max(self._owed(window - LATE_THRESHOLD_S), rec.events_sent + rec.events_unsent)
            self._never_delivered(rec, window - self.max_latency_s - LATE_THRESHOLD_S, window)
        else:
            # Held when the hosts' last chance passed: latency until then (no coordinated omission).
            self._never_delivered(rec, until, min(end - start, self.close_s))
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
