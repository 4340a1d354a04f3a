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

Batching follows the subscription, as on Windows: a host delivers once it holds MaxElements events
(when the Subscribe gives it; never more than the payload's width, --max-items) or once its oldest
event is MaxTime old. --max-items / --max-latency-secs given by a flag or the environment override
it (one line says so). Every Enumerate is followed by End on the same connection (OpenWEC's
captures); every `refresh_s` (the GPO's Refresh) a host enumerates again on a new connection, its
first refresh at a random point of the first interval so the fleet does not refresh in step, and
takes the answer's subscription for its next deliveries. Its events go on from its own next record:
a refresh never sends an event again, so the run's accounting stays exact; an answer whose bookmark
is behind what the host had had Acked is counted (`bookmarks_behind`), where Windows would resend.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import aiohttp

from ..metrics import LoadSummary, WsmanFigures
from ..model import BatchingObeyed, SubscriptionAsked
from ..payload.hosts import HostPayload, host_seed
from ..wsman import envelope, ns
from ..wsman.parse import EnvelopeError, Subscription, ack_relates_to, bookmark_record, subscriptions
from ..wsman.payload import WsmanPayload
from . import errors
from .aiohttp_sender import body_written
from .arrivals import HostArrivals
from .hosts import Delivery, HostsEngine, _Host

MAX_RETRIES = 2
RETRY_CAP_S = 1.0
_HEADERS = {"Content-Type": ns.CONTENT_TYPE, "User-Agent": "wefperf (WS-Management push)"}


# A refresh falls 10 % early or late at most, so hosts that refreshed together drift apart.
REFRESH_JITTER = 0.1


class _State:
    __slots__ = ("session", "sub", "lock", "last", "session_id", "acked_record", "batching")

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.sub: Subscription | None = None
        self.lock = asyncio.Lock()
        self.last = 0.0  # clock of the last message this host sent
        self.session_id = f"uuid:{str(uuid.uuid4()).upper()}"
        self.acked_record = 0  # the EventRecordID of the last event an Ack covered; 0: none yet
        self.batching: BatchingObeyed | None = None  # what the host obeys (hosts=1); None: the run's own


class _Written:
    """Called by the session's trace when an attempt at one envelope has written its request head:
    the envelope's events count sent then, once, however many attempts it takes."""

    __slots__ = ("engine", "host", "delivery", "events", "sent_at")

    def __init__(self, engine: "WsmanHostsEngine", host: _Host, delivery: Delivery, events: int) -> None:
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
        refresh_s: float = 0.0, items_from_subscription: bool = False, latency_from_subscription: bool = False,
        on_line: Callable[[str], None] | None = None,
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
        # Batching: the payload's width (--max-items) bounds any delivery. `max_items` / `max_latency_s` hold
        # unless told to come from the subscription (the runner: when the user did not give the flag).
        self.width, self.latency_setting = max_items, max_latency_s
        self.items_given, self.latency_given = not items_from_subscription, not latency_from_subscription
        self.on_line = on_line
        self.refresh_s = refresh_s
        self.refreshes = self.refresh_failures = self.bookmarks_behind = 0
        self._refresher: asyncio.Task[None] | None = None
        self._refreshing: set[asyncio.Task[None]] = set()
        self._beat: asyncio.Task[None] | None = None
        self._trace = aiohttp.TraceConfig()
        self._trace.on_request_headers_sent.append(_on_head_written)

    # -- before the clock --------------------------------------------------------------------------

    open_verb = "enumerate"

    async def _open_host(self, h: _Host) -> None:
        """A session of its own (its certificate), then one Enumerate."""
        st = self.states[h.index]
        st.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, ssl=self.ssl_for(h.index)),
            timeout=aiohttp.ClientTimeout(total=self.request_timeout_s), trace_configs=[self._trace],
        )
        st.sub = await self._enumerate(h.index)
        self._obey(h.index)
        st.last = self.clock()  # idle from now on: the first heartbeat is one interval away
        self.enumerated += 1
        self.connections += 1

    async def _connect_all(self) -> None:
        await super()._connect_all()
        self._fleet_limits()
        self._say_overrides()
        if not self.stopping:
            self._beat = asyncio.ensure_future(self._heartbeats())
            if self.refresh_s > 0:
                self._refresher = asyncio.ensure_future(self._refreshes())

    async def _enumerate(self, host: int, session: aiohttp.ClientSession | None = None) -> Subscription:
        """Enumerate, then End on the same connection (the host's own session unless given one)."""
        st = self.states[host]
        session = session or st.session
        assert session is not None
        mid, operation = envelope.message_id(), envelope.message_id()
        body = envelope.encode(envelope.enumerate_request(
            to=self.url, machine=self.machines[host], mid=mid, session=st.session_id, operation=operation))
        async with session.post(self.url, data=body, headers=_HEADERS) as resp:
            answer = await resp.read()
            if resp.status != 200:
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status,
                                                  message=f"Enumerate answered HTTP {resp.status}")
        subs = subscriptions(answer)
        if not subs:
            raise EnvelopeError("the collector has no subscription for this host")
        end = envelope.encode(envelope.end_request(mid=envelope.message_id(), operation=operation))
        async with session.post(self.url, data=end, headers=_HEADERS) as resp:
            await resp.read()  # Microsoft's collector answers 204, OpenWEC and wefperf's an Ack: either will do
        return subs[0]

    # -- batching: the subscription decides --------------------------------------------------------

    def _limits(self, h: _Host) -> tuple[int, float]:
        b = self.states[h.index].batching
        return (b.max_items, b.max_latency_s) if b is not None else (self.width, self.latency_setting)

    def _obey(self, host: int) -> None:
        """The host's batching from its subscription, unless a flag was given; capped at the payload's width."""
        sub = self.states[host].sub
        if sub is None:
            return
        if self.items_given:
            items, items_from = self.width, "--max-items"
        elif sub.max_elements is None:
            items, items_from = self.width, "no MaxElements: --max-items (the payload's width)"
        elif sub.max_elements > self.width:
            items, items_from = self.width, f"MaxElements {sub.max_elements} capped at --max-items"
        else:
            items, items_from = sub.max_elements, "MaxElements"
        latency, latency_from = ((self.latency_setting, "--max-latency-secs") if self.latency_given
                                 else (sub.max_time_s, "MaxTime"))
        self.states[host].batching = BatchingObeyed(items, latency, items_from, latency_from, 1)
        if items > self.max_items or latency > self.max_latency_s:  # a later subscription asks more: the
            self.max_items = max(self.max_items, items)  # window stays open for it (`_fleet_limits` is exact)
            self._close_after(max(self.max_latency_s, latency))

    def _fleet_limits(self) -> None:
        """The largest limits over the hosts: the window closes the largest latency after the plan, and
        the run's figures name them."""
        limits = [self._limits(h) for h in self.hosts]
        if limits:
            self.max_items = max(m for m, _ in limits)
            self._close_after(max(w for _, w in limits))

    def _close_after(self, latency: float) -> None:
        """Hosts hold events up to `latency`: a duration run's window closes that long after the plan."""
        self.max_latency_s = latency
        if self.plan_end_s is not None:
            self.close_s = self.plan_end_s + latency

    def _say_overrides(self) -> None:
        """One line when a flag overrides what the subscriptions asked."""
        subs = [s.sub for s in self.states.values() if s.sub is not None]
        if not subs or self.on_line is None:
            return
        parts = []
        if self.items_given:
            asked = sorted({s.max_elements for s in subs}, key=lambda x: (x is None, x or 0))
            shown = ", ".join("none" if a is None else f"{a:,}" for a in asked)
            parts.append(f"--max-items {self.width:,} overrides the subscription's MaxElements ({shown})")
        if self.latency_given:
            shown = ", ".join(f"{t:g} s" for t in sorted({s.max_time_s for s in subs}))
            whose = "its" if parts else "the subscription's"
            parts.append(f"--max-latency-secs {self.latency_setting:g} overrides {whose} MaxTime ({shown})")
        if parts:
            self.on_line("; ".join(parts) + ": Windows would batch by the subscription")

    # -- the load ----------------------------------------------------------------------------------

    async def _transmit(self, h: _Host, d: Delivery) -> None:
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
                    self._obey(h.index)
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
                    st.acked_record = last
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

    # -- refresh ---------------------------------------------------------------------------------

    async def _refreshes(self) -> None:
        """Every host with a subscription enumerates again every refresh_s, its first time at a random
        point of the first interval (its own seeded stream), each later one REFRESH_JITTER early or late."""
        now = self.clock()
        rngs = {i: random.Random(host_seed(self.payload.seed, i) ^ 0x5EF4E5) for i in self.states}
        due = [(now + self.refresh_s * (1.0 - rngs[i].random()), i) for i in self.states]
        heapq.heapify(due)
        while not self.stopping and due:
            at, host = due[0]
            wait = at - self.clock()
            if wait > 0:
                await asyncio.sleep(min(wait, 1.0))  # wakes at least each second to see a stop
                continue
            heapq.heapreplace(due, (at + self.refresh_s * rngs[host].uniform(1 - REFRESH_JITTER, 1 + REFRESH_JITTER),
                                    host))
            if self.states[host].sub is not None:
                task = asyncio.ensure_future(self._refresh(host))
                self._refreshing.add(task)
                task.add_done_callback(self._refreshing.discard)

    async def _refresh(self, host: int) -> None:
        """Enumerate and End on a new connection of the host's own (its certificate), then take the answer's
        subscription once the delivery in flight, if any, is done."""
        st = self.states[host]
        acked = st.acked_record  # Acked before the Enumerate left: the collector's bookmark must cover it
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1, ssl=self.ssl_for(host)),
                timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
            ) as session:
                sub = await self._enumerate(host, session)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the host keeps its subscription, as Windows does, and tries at the next refresh
            self.refresh_failures += 1
            if self.refresh_failures == 1 and self.on_error:
                self.on_error(f"A refresh of {self.machines[host]} failed: {errors.describe(exc)}; the host keeps its"
                              " subscription (further failures are counted)")
            return
        self.refreshes += 1
        self.enumerated += 1
        self.connections += 1
        kept = bookmark_record(sub.bookmark)
        if kept is not None and kept < acked:
            self.bookmarks_behind += 1
        async with st.lock:
            st.sub = sub
            self._obey(host)

    async def _close_all(self) -> None:
        tasks = [t for t in (self._beat, self._refresher) if t is not None] + list(self._refreshing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for st in self.states.values():
            if st.session is not None:
                await st.session.close()
                st.session = None
        await asyncio.sleep(0)

    async def run(self) -> LoadSummary:
        load = await super().run()
        return replace(load, wsman=self.figures())

    def figures(self) -> WsmanFigures:
        """The protocol's counters, the subscription the first host that enumerated was given, and what
        every host's last subscription asked and what it obeyed (distinct sets, with host counts)."""
        sub = next((s.sub for s in self.states.values() if s.sub is not None), None)
        asked = Counter(SubscriptionAsked(s.sub.max_elements, s.sub.max_time_s, s.sub.max_envelope, s.sub.heartbeat_s, 0)
                        for s in self.states.values() if s.sub is not None)
        obeyed = Counter(s.batching for s in self.states.values() if s.batching is not None)
        return WsmanFigures(
            enumerations=self.enumerated, envelopes=self.envelopes, retries=self.retries,
            wrong_acks=self.wrong_acks, heartbeats=self.heartbeats, heartbeats_acked=self.heartbeats_acked,
            heartbeat_s=sub.heartbeat_s if sub else None, max_time_s=sub.max_time_s if sub else None,
            max_envelope=sub.max_envelope if sub else None,
            refreshes=self.refreshes, refresh_failures=self.refresh_failures, bookmarks_behind=self.bookmarks_behind,
            subscriptions=tuple(replace(a, hosts=n) for a, n in asked.most_common()),
            batching=tuple(replace(b, hosts=n) for b, n in obeyed.most_common()),
        )


async def _on_head_written(_session: aiohttp.ClientSession, ctx: SimpleNamespace,
                           _params: aiohttp.TraceRequestHeadersSentParams) -> None:
    """The trace hook: an Events envelope's request head is written on an open connection."""
    written = ctx.trace_request_ctx
    if isinstance(written, _Written):
        written()
