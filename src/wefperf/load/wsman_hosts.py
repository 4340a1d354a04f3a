"""Simulated hosts speaking WEF push mode (`--protocol wsman`), on top of HostsEngine's schedule.

Before the clock starts every host opens its own session (with its own client certificate over
TLS) and Enumerates at the subscription manager URL; it keeps the first subscription. Each
delivery then goes to NotifyTo as one or more Events envelopes (cut at MaxEnvelopeSize), one at a
time, each waiting for its Ack (closed loop per host, as Windows does); the Ack's RelatesTo must be
the envelope's MessageID. A host idle for the subscription's Heartbeats interval sends a Heartbeat.

Retries: Windows retries a failed delivery after the subscription's ConnectionRetry interval (60 s
by default, `Total` times), then falls back to re-enumerating. Here a failed envelope (non-2xx,
transport error, wrong Ack, an Ack before the envelope was written whole) is tried again at most
`MAX_RETRIES` times after min(ConnectionRetry, `RETRY_CAP_S`), so a run always ends; each retry
resends the same events (same markers), so a collector that stored the first attempt shows
duplicates in the S3 check.

Each envelope counts on its own (module `_transmit`): a delivery whose later envelope failed keeps
its earlier envelopes acknowledged, and a host that could not enumerate or connect sent nothing.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import aiohttp

from ..model import LoadSummary, WsmanFigures
from ..payload.hosts import HostPayload
from ..wsman import envelope, ns
from ..wsman.parse import EnvelopeError, Subscription, ack_relates_to, subscriptions
from ..wsman.payload import WsmanPayload
from . import errors
from .aiohttp_sender import body_written
from .arrivals import HostArrivals
from .hosts import Delivery, HostsEngine, SimulatedHost

MAX_RETRIES = 2
RETRY_CAP_S = 1.0
_HEADERS = {"Content-Type": ns.CONTENT_TYPE, "User-Agent": "wefperf (WS-Management push)"}


class _State:
    __slots__ = ("session", "sub", "lock", "last", "session_id")

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.sub: Subscription | None = None
        self.lock = asyncio.Lock()
        self.last = 0.0  # clock of the last message this host sent
        self.session_id = f"uuid:{str(uuid.uuid4()).upper()}"


class _Written:
    """Called by the session's trace when an attempt at one envelope has written its request head:
    the envelope's events count sent then, once, however many attempts it takes."""

    __slots__ = ("engine", "host", "delivery", "events", "sent_at")

    def __init__(self, engine: "WsmanHostsEngine", host: SimulatedHost, delivery: Delivery, events: int) -> None:
        self.engine, self.host, self.delivery, self.events = engine, host, delivery, events
        self.sent_at = 0.0

    def __call__(self) -> None:
        if not self.sent_at:
            self.sent_at = self.engine._written(self.host, self.delivery, self.events)
            self.delivery.sent_at = self.delivery.sent_at or self.sent_at


class WsmanHostsEngine(HostsEngine):
    """HostsEngine's hosts and schedule; the wire is WS-Management Events with Acks."""

    name = "hosts-wsman"
    schemes = ("http", "https")

    def __init__(
        self, *, payload: HostPayload, arrivals: list[HostArrivals], url: str, max_items: int,
        max_latency_s: float, plan_end_s: float | None, timeout_s: float, request_timeout_s: float,
        ssl_for: Callable[[int], ssl.SSLContext | bool] = lambda _h: True,
        drain_timeout_s: float = 10.0,
        on_error: Callable[[str], None] | None = None, clock: Callable[[], float] = time.perf_counter,
        freeze_gc: bool = False, window_secs: int = 0, retry_cap_s: float = RETRY_CAP_S,
        max_retries: int = MAX_RETRIES, host_indices: list[int] | None = None,
        segment: tuple[int, int] = (0, 1), start_at: float | None = None, second_histograms: bool = False,
    ) -> None:
        super().__init__(
            payload=payload, arrivals=arrivals, url=url, max_items=max_items, max_latency_s=max_latency_s,
            plan_end_s=plan_end_s, timeout_s=timeout_s, request_timeout_s=request_timeout_s,
            drain_timeout_s=drain_timeout_s, on_error=on_error, clock=clock,
            freeze_gc=freeze_gc, window_secs=window_secs, host_indices=host_indices, segment=segment,
            start_at=start_at, second_histograms=second_histograms,
        )
        self.url = url
        self.wsman = WsmanPayload(payload)
        self.ssl_for = ssl_for
        self.retry_cap_s, self.max_retries = retry_cap_s, max_retries
        # By the host's number in the whole fleet: a segment runs every N-th host.
        self.states = {h.index: _State() for h in self.hosts}
        self.machines = [n.decode() for n in payload.names]
        self.enumerated = self.envelopes = self.retries = self.wrong_acks = 0
        self.heartbeats = self.heartbeats_acked = 0
        self._beat: asyncio.Task[None] | None = None
        self._trace = aiohttp.TraceConfig()
        self._trace.on_request_headers_sent.append(_on_head_written)

    # -- before the clock --------------------------------------------------------------------------

    open_verb = "enumerate"

    async def _open_host(self, h: SimulatedHost) -> None:
        """A session of its own (its certificate), then one Enumerate."""
        st = self.states[h.index]
        st.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, ssl=self.ssl_for(h.index)),
            timeout=aiohttp.ClientTimeout(total=self.request_timeout_s), trace_configs=[self._trace],
        )
        st.sub = await self._enumerate(h.index)
        st.last = self.clock()  # idle from now on: the first heartbeat is one interval away
        self.enumerated += 1
        self.connections += 1

    async def _connect_all(self) -> None:
        await super()._connect_all()
        if not self.stopping:
            self._beat = asyncio.ensure_future(self._heartbeats())

    async def _enumerate(self, host: int) -> Subscription:
        st = self.states[host]
        assert st.session is not None
        mid = envelope.message_id()
        body = envelope.encode(envelope.enumerate_request(
            to=self.url, machine=self.machines[host], mid=mid, session=st.session_id))
        async with st.session.post(self.url, data=body, headers=_HEADERS) as resp:
            answer = await resp.read()
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status,
                                                  message=f"Enumerate answered HTTP {resp.status}")
        subs = subscriptions(answer)
        if not subs:
            raise EnvelopeError("the collector has no subscription for this host")
        return subs[0]

    # -- the load ----------------------------------------------------------------------------------

    async def _transmit(self, h: SimulatedHost, d: Delivery) -> None:
        """The delivery's envelopes one at a time, each counted on its own: sent once written,
        acknowledged by its Ack, or failed. The first failure ends the delivery: its events and
        those of the envelopes after it fail (these never sent), while the envelopes before it stay
        acknowledged and are expected in S3."""
        rec, st = self.recorder, self.states[h.index]
        assert rec is not None
        async with st.lock:
            try:
                if st.sub is None:  # enumeration failed before the load: try once more now
                    st.sub = await self._enumerate(h.index)
                    self.enumerated += 1
                assert st.session is not None
                pending = self.wsman.envelopes(
                    d.batch, d.events, h.index, d.record, to=st.sub.notify_to, machine=self.machines[h.index],
                    session=st.session_id, reference=st.sub.reference, max_envelope=st.sub.max_envelope,
                )
            except asyncio.CancelledError:
                self._failed(d, d.events, "interrupted", "cancelled while in flight", self.clock(),
                             unsent=(1, d.events), report=False)
                raise
            except Exception as exc:  # no subscription: nothing of the delivery went out
                self._failed(d, d.events, errors.classify(exc), errors.describe(exc), self.clock(),
                             unsent=(1, d.events))
                return
            view, done_events, prev = memoryview(pending.data), 0, d.record - 1
            try:
                for (a, b), mid, last in zip(pending.cuts, pending.message_ids, pending.records, strict=True):
                    events, prev = last - prev, last
                    written = _Written(self, h, d, events)
                    rest = d.events - done_events  # this envelope's events and those of the ones after it
                    try:
                        status = await self._post(st, st.sub.notify_to, view[a:b], mid, written)
                    except asyncio.CancelledError:
                        self._envelope_failed(d, written, rest, "interrupted", "cancelled while in flight",
                                              report=False)
                        raise
                    except Exception as exc:
                        self._envelope_failed(d, written, rest, errors.classify(exc), errors.describe(exc))
                        break
                    if not 200 <= status < 300:
                        self._envelope_failed(d, written, rest, errors.http_status(status), f"HTTP {status}")
                        break
                    done = self.clock()
                    rec.ok(events, d.intended, written.sent_at, done)
                    start = d.first + done_events
                    rec.event_latencies(done - self.start, h.arrivals.due[start : start + events])
                    done_events += events
            finally:  # a cancel too keeps what was Acked before it
                self._acked(d, done_events)

    def _acked(self, d: Delivery, events: int) -> None:
        """The delivery's first `events` were Acked: the server's per-type expectation and, when
        a later envelope failed, the S3 accounting's (see `partial`)."""
        if events:
            # The Acked events are the delivery's first ones: the same types as a delivery of that many.
            self.acked_shapes[self.payload.shape(d.batch, events)] += 1
            if events < d.events:
                index, count = self.segment
                self.partial[(d.batch - index) // count] = events

    def _envelope_failed(self, d: Delivery, written: _Written, rest: int, cls: str, detail: str,
                         report: bool = True) -> None:
        """One envelope failed: it and the rest of its delivery count failed; what was never written
        (the rest, and the envelope itself if no attempt got a connection) counts unsent."""
        unsent = (0, rest - written.events) if written.sent_at else (1, rest)
        self._failed(d, rest, cls, detail, self.clock(), unsent=unsent, report=report)

    async def _post(self, st: _State, url: str, body: Any, mid: str, written: _Written) -> int:
        """One envelope until its Ack, with the bounded retries of the module docstring."""
        assert st.session is not None and st.sub is not None
        attempt = 0
        while True:
            try:
                st.last = self.clock()
                self.envelopes += 1
                tracker = aiohttp.UploadTracker()
                async with st.session.post(url, data=body, headers=_HEADERS, trace_request_ctx=written,
                                           upload_tracker=tracker) as resp:
                    whole = body_written(tracker)
                    answer = await resp.read()
                    status = resp.status
                if 200 <= status < 300:
                    if not whole:  # an Ack for bytes the collector had not received yet
                        raise errors.EarlyReply(f"HTTP {status} before the envelope's last byte was written")
                    action, relates = ack_relates_to(answer)
                    if action != ns.ACTION_ACK or relates != mid:
                        self.wrong_acks += 1
                        raise errors.WrongAck(f"expected an Ack relating to {mid}, got {action or 'no Action'}"
                                              f" relating to {relates or 'nothing'}")
                    return status
                if attempt >= self.max_retries or self.stopping:
                    return status
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, errors.WrongAck, errors.EarlyReply,
                    EnvelopeError):
                if attempt >= self.max_retries or self.stopping:
                    raise
            attempt += 1
            self.retries += 1
            await asyncio.sleep(min(st.sub.retry_s, self.retry_cap_s))

    async def _heartbeats(self) -> None:
        """A host idle past its subscription's Heartbeats interval sends a Heartbeat (and waits for its Ack)."""
        tick = min([s.sub.heartbeat_s / 4 for s in self.states.values() if s.sub is not None] + [1.0])
        while not self.stopping:
            await asyncio.sleep(tick)
            now = self.clock()
            due = [i for i, s in self.states.items()
                   if s.sub is not None and not s.lock.locked() and now - s.last >= s.sub.heartbeat_s]
            if due:
                await asyncio.gather(*(self._heartbeat(i) for i in due), return_exceptions=True)

    async def _heartbeat(self, host: int) -> None:
        st = self.states[host]
        async with st.lock:
            assert st.sub is not None and st.session is not None
            mid = envelope.message_id()
            body = envelope.encode(envelope.heartbeat(
                to=st.sub.notify_to, machine=self.machines[host], mid=mid, session=st.session_id,
                reference=st.sub.reference))
            self.heartbeats += 1
            st.last = self.clock()
            try:
                async with st.session.post(st.sub.notify_to, data=body, headers=_HEADERS) as resp:
                    answer = await resp.read()
                    ok = resp.status == 200 and ack_relates_to(answer) == (ns.ACTION_ACK, mid)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                if self.on_error:
                    self.on_error(f"Heartbeat of {self.machines[host]} failed: {errors.describe(exc)}")
                return
            if ok:
                self.heartbeats_acked += 1
            elif self.on_error:
                self.on_error(f"Heartbeat of {self.machines[host]} was not acknowledged")

    async def _close_all(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            await asyncio.gather(self._beat, return_exceptions=True)
        for st in self.states.values():
            if st.session is not None:
                await st.session.close()
                st.session = None
        await asyncio.sleep(0)

    async def run(self) -> LoadSummary:
        load = await super().run()
        return replace(load, wsman=self.figures())

    def figures(self) -> WsmanFigures:
        """The protocol's counters, and the subscription the first host that enumerated was given."""
        sub = next((s.sub for s in self.states.values() if s.sub is not None), None)
        return WsmanFigures(
            enumerations=self.enumerated, envelopes=self.envelopes, retries=self.retries,
            wrong_acks=self.wrong_acks, heartbeats=self.heartbeats, heartbeats_acked=self.heartbeats_acked,
            heartbeat_s=sub.heartbeat_s if sub else None, max_time_s=sub.max_time_s if sub else None,
            max_envelope=sub.max_envelope if sub else None,
        )


async def _on_head_written(_session: aiohttp.ClientSession, ctx: SimpleNamespace,
                           _params: aiohttp.TraceRequestHeadersSentParams) -> None:
    """The trace hook: an Events envelope's request head is written on an open connection."""
    written = ctx.trace_request_ctx
    if isinstance(written, _Written):
        written()
