"""Simulated hosts speaking WEF push mode (`--protocol wsman`), on top of HostsEngine's schedule.

Before the clock starts every host opens its own session (with its own client certificate over
TLS) and Enumerates at the subscription manager URL; it keeps the first subscription. An Enumerate
that fails is tried again after growing waits (`backoff.ENUMERATE`), unless the answer cannot
change (a 4xx, an envelope that is not an EnumerateResponse, a TLS refusal); a host still without
a subscription then has given up, and its deliveries fail unsent (`no_subscription`). When no
host subscribed, the load does not start: `unavailable` says why in one line. Each
delivery then goes to NotifyTo as one or more Events envelopes (cut at MaxEnvelopeSize), one at a
time, each waiting for its Ack (closed loop per host, as Windows does); the Ack's RelatesTo must be
the envelope's MessageID. A host idle for the subscription's Heartbeats interval sends a Heartbeat.

Retries follow the subscription's ConnectionRetry, as Windows': a failed envelope (non-2xx,
transport error, wrong Ack, an Ack before the envelope was written whole) is tried again `Total`
times, one interval apart (jittered), while the load window is open. After the last one the
subscription has expired (DSP0226's ConnectionRetry): the host's later deliveries fail unsent, and
when no host holds a subscription any more the run stops there, saying why. Each retry resends the
same events (same markers), so a collector that stored the first attempt shows duplicates in the
S3 check.

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

from ..model import BatchingObeyed, LoadSummary, SubscriptionAsked, WsmanFigures
from ..payload.hosts import HostPayload, host_seed
from ..wording import plural
from ..wsman import envelope, ns
from ..wsman.backoff import ENUMERATE, Backoff, connection_retry
from ..wsman.parse import EnvelopeError, Subscription, ack_relates_to, bookmark_record, subscriptions
from ..wsman.payload import WsmanPayload
from . import errors
from .aiohttp_sender import body_written
from .arrivals import HostArrivals
from .hosts import CONNECT_AT_ONCE, Delivery, HostsEngine, SimulatedHost

_HEADERS = {"Content-Type": ns.CONTENT_TYPE, "User-Agent": "wefperf (WS-Management push)"}


# A refresh falls 10 % early or late at most, so hosts that refreshed together drift apart.
REFRESH_JITTER = 0.1


class _State:
    __slots__ = ("session", "sub", "lock", "last", "session_id", "gave_up", "acked_record", "batching")

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.sub: Subscription | None = None
        self.lock = asyncio.Lock()
        self.last = 0.0  # clock of the last message this host sent
        self.session_id = f"uuid:{str(uuid.uuid4()).upper()}"
        self.gave_up = ""  # why the host holds no subscription: it never got one, or it expired
        self.acked_record = 0  # the EventRecordID of the last event an Ack covered; 0: none yet
        self.batching: BatchingObeyed | None = None  # what the host obeys (hosts=1); None: the run's own


class EnumerateRefused(Exception):
    """The subscription manager answered an Enumerate with an HTTP status other than 200."""

    def __init__(self, status: int) -> None:
        super().__init__(f"Enumerate answered HTTP {status}")
        self.status = status


def _enumerate_failure(exc: Exception) -> tuple[str, bool]:
    """(error class, whether trying again could help) for an Enumerate that failed."""
    if isinstance(exc, EnumerateRefused):
        return errors.http_status(exc.status), exc.status >= 500 or exc.status in (408, 429)
    if isinstance(exc, EnvelopeError):  # an answer that is not a usable EnumerateResponse
        return errors.PROTOCOL, False
    cls = errors.classify(exc)
    return cls, cls != errors.TLS


class _Written:
    """Called by the session's trace when an attempt at one envelope has written its request head:
    the envelope's events count sent then, once, however many attempts it takes."""

    __slots__ = ("engine", "host", "delivery", "events", "sent_at", "exhausted")

    def __init__(self, engine: "WsmanHostsEngine", host: SimulatedHost, delivery: Delivery, events: int) -> None:
        self.engine, self.host, self.delivery, self.events = engine, host, delivery, events
        self.sent_at = 0.0
        self.exhausted = False  # failed after every retry the subscription's ConnectionRetry allows

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
        freeze_gc: bool = False, window_secs: int = 0, enumerate_backoff: Backoff = ENUMERATE,
        host_indices: list[int] | None = None,
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
        self.enumerate_backoff = enumerate_backoff
        self.rng = random.Random()
        # By the host's number in the whole fleet: a segment runs every N-th host.
        self.states = {h.index: _State() for h in self.hosts}
        self.machines = [n.decode() for n in payload.names]
        self.enumerated = self.envelopes = self.retries = self.wrong_acks = 0
        self.heartbeats = self.heartbeats_acked = 0
        self.live = 0  # hosts holding a subscription
        self.enumerate_tries = 0
        self._enumerate_errors: Counter[str] = Counter()  # every failed Enumerate, by class
        self._enumerate_sample: dict[str, str] = {}
        self._expired: Counter[str] = Counter()  # subscriptions expired, by the class of the last failure
        self.first_sub: Subscription | None = None
        # Why the load could not start (no host subscribed), in one line; None when it could.
        self.unavailable: str | None = None
        self._opening: asyncio.Semaphore | None = None
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

    async def _open_host(self, h: SimulatedHost) -> None:
        """A session of its own (its certificate), then an Enumerate, tried again as `_subscribe` says."""
        st = self.states[h.index]
        st.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1, ssl=self.ssl_for(h.index)),
            timeout=aiohttp.ClientTimeout(total=self.request_timeout_s), trace_configs=[self._trace],
        )
        await self._subscribe(h.index)

    async def _connect_all(self) -> None:
        """Every host subscribes before the clock, CONNECT_AT_ONCE Enumerates in flight at a time
        (hosts waiting to try again hold none). No host subscribed: the load does not start."""
        self._opening = asyncio.Semaphore(CONNECT_AT_ONCE)
        began = self.clock()
        await asyncio.gather(*(self._open_host(h) for h in self.hosts))
        if self.stopping:
            return
        failed = self.connect_failures
        if not self.live:
            self.unavailable = self._nobody_subscribed(self.clock() - began)
            self.stop(interrupted=False, aborted=self.unavailable)
            return
        if failed and self.on_error:
            classes = ", ".join(f"{name} x{n}" for name, n in self._connect_errors.most_common())
            self.on_error(f"{failed:,} of {len(self.hosts):,} hosts could not subscribe before the load"
                          f" ({classes}); their deliveries fail unsent ({errors.NO_SUBSCRIPTION})")
        # Before the clock: the pieces each subscription's ContentFormat needs (RenderedText's RenderingInfo)
        for content_format in {s.sub.content_format for s in self.states.values() if s.sub is not None}:
            self.wsman.prepare(content_format)
        self._fleet_limits()
        self._say_overrides()
        self._beat = asyncio.ensure_future(self._heartbeats())
        if self.refresh_s > 0:
            self._refresher = asyncio.ensure_future(self._refreshes())

    def _nobody_subscribed(self, took_s: float) -> str:
        """The one line that says why the load could not start."""
        classes = ", ".join(f"{name} x{n}" for name, n in self._enumerate_errors.most_common())
        first = self._enumerate_errors.most_common(1)[0][0] if self._enumerate_errors else ""
        sample = self._enumerate_sample.get(first, "")
        hint = ""
        if first in ("http_404", "http_405"):
            hint = " (is it a WS-Management collector's subscription manager URL?)"
        return (f"no host could subscribe at {self.url}: {plural(self.enumerate_tries, 'Enumerate')} by"
                f" {plural(len(self.hosts), 'host')} over {took_s:.1f} s all failed ({classes}; e.g. {sample});"
                f" nothing was sent{hint}")

    async def _subscribe(self, host: int) -> None:
        """Enumerate until the host holds a subscription, after the growing waits of
        `enumerate_backoff`; an answer that cannot change (see `_enumerate_failure`) ends it at once."""
        st, backoff = self.states[host], self.enumerate_backoff
        assert self._opening is not None
        why, cls = "", "stopped"
        for attempt in range(backoff.retries + 1):
            if attempt and not await self._wait_until(self.clock() + backoff.delay_s(attempt - 1, self.rng)):
                break  # stopped
            try:
                async with self._opening:
                    self.enumerate_tries += 1
                    sub = await self._enumerate(host)
            except Exception as exc:
                cls, again = _enumerate_failure(exc)
                self._enumerate_errors[cls] += 1
                self._enumerate_sample.setdefault(
                    cls, str(exc) if isinstance(exc, EnumerateRefused) else errors.describe(exc))
                why = f"{cls} after {plural(attempt + 1, 'Enumerate')}: {errors.describe(exc)}"
                if not again:
                    break
                continue
            self._subscribed(host, sub)
            return
        st.gave_up = why or "stopped before it could subscribe"
        self.connect_failures += 1
        self._connect_errors[cls] += 1

    def _subscribed(self, host: int, sub: Subscription) -> None:
        """Its first subscription, before the clock."""
        self._answered()
        self._hold(host, sub)
        self.states[host].last = self.clock()  # idle from now on: the first heartbeat is one interval away
        self.first_sub = self.first_sub or sub

    def _hold(self, host: int, sub: Subscription) -> None:
        """The host holds `sub` from an Enumerate's answer (its first, or a refresh's) and batches by it."""
        st = self.states[host]
        if st.sub is None:  # it had none (never subscribed, or its subscription expired): one more host live
            self.live += 1
        st.sub, st.gave_up = sub, ""
        self._obey(host)

    def _answered(self) -> None:
        """An Enumerate was answered with a subscription, on a connection of its own."""
        self.enumerated += 1
        self.connections += 1

    def _expired_subscription(self, st: _State, cls: str) -> None:
        """The host's delivery failed after the subscription's last ConnectionRetry: the subscription
        has expired. When no host holds one any more, the run stops: nothing can be delivered."""
        assert st.sub is not None
        st.gave_up = f"its subscription expired after {st.sub.retry_total} ConnectionRetry retries ({cls})"
        st.sub = None
        self.live -= 1
        self._expired[cls] += 1
        if not self.live and not self.stopping:
            classes = ", ".join(f"{name} x{n}" for name, n in self._expired.most_common())
            self.stop(interrupted=False, aborted=(
                f"no host holds a subscription: each one's delivery failed after its subscription's ConnectionRetry"
                f" retries ({classes}), so every subscription expired"))

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
                raise EnumerateRefused(resp.status)
        subs = subscriptions(answer)
        if not subs:
            raise EnvelopeError("the collector has no subscription for this host")
        end = envelope.encode(envelope.end_request(mid=envelope.message_id(), operation=operation))
        async with session.post(self.url, data=end, headers=_HEADERS) as resp:
            await resp.read()  # Microsoft's collector answers 204, OpenWEC and wefperf's an Ack: either will do
        return subs[0]

    # -- batching: the subscription decides --------------------------------------------------------

    def _limits(self, h: SimulatedHost) -> tuple[int, float]:
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

    async def _transmit(self, h: SimulatedHost, d: Delivery) -> None:
        """The delivery's envelopes one at a time, each counted on its own: sent once written,
        acknowledged by its Ack, or failed. The first failure ends the delivery: its events and
        those of the envelopes after it fail (these never sent), while the envelopes before it stay
        acknowledged and are expected in S3."""
        rec, st = self.recorder, self.states[h.index]
        assert rec is not None
        async with st.lock:
            if st.sub is None:  # it gave up subscribing, or its subscription expired: nothing goes out
                self._failed(d, d.events, errors.NO_SUBSCRIPTION, st.gave_up, self.clock(), unsent=(1, d.events))
                return
            try:
                assert st.session is not None
                pending = self.wsman.envelopes(
                    d.batch, d.events, h.index, d.record, to=st.sub.notify_to, machine=self.machines[h.index],
                    session=st.session_id, reference=st.sub.reference, max_envelope=st.sub.max_envelope,
                    content_format=st.sub.content_format,
                )
            except asyncio.CancelledError:
                self._failed(d, d.events, "interrupted", "cancelled while in flight", self.clock(),
                             unsent=(1, d.events), report=False)
                raise
            except Exception as exc:  # the envelopes could not be made: nothing of the delivery went out
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
                        if written.exhausted:
                            self._expired_subscription(st, errors.classify(exc))
                        break
                    if not 200 <= status < 300:
                        self._envelope_failed(d, written, rest, errors.http_status(status), f"HTTP {status}")
                        if written.exhausted:
                            self._expired_subscription(st, errors.http_status(status))
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
        """One envelope until its Ack, retried as the subscription's ConnectionRetry says (`_again`)."""
        assert st.session is not None and st.sub is not None
        backoff = connection_retry(st.sub.retry_total, st.sub.retry_s)
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
                if not await self._again(backoff, attempt, written):
                    return status
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, errors.WrongAck, errors.EarlyReply,
                    EnvelopeError):
                if not await self._again(backoff, attempt, written):
                    raise
            attempt += 1
            self.retries += 1

    async def _again(self, backoff: Backoff, attempt: int, written: _Written) -> bool:
        """Wait for the next try of a failed envelope; False when there is none: its retries are spent
        (`written.exhausted`: the subscription expires), the next one would fall after the load
        window closed, or the run is stopping."""
        if attempt >= backoff.retries:
            written.exhausted = True
            return False
        when = self.clock() + backoff.delay_s(attempt, self.rng)
        if self.stopping or when > self.start + self.close_s:
            return False
        return await self._wait_until(when)

    async def _heartbeats(self) -> None:
        """A host idle past its subscription's Heartbeats interval sends a Heartbeat (and waits for its Ack).
        The tick follows the shortest interval held now: a refresh may bring a subscription with another."""
        while not self.stopping:
            await asyncio.sleep(min([s.sub.heartbeat_s / 4 for s in self.states.values() if s.sub is not None] + [1.0]))
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
        """Every host enumerates again every refresh_s (one whose subscription expired may get one back), its first time at a random
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
            task = asyncio.ensure_future(self._refresh(host))  # a host without a subscription may get one back
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
        self._answered()  # counted now, as the collector counted it, even if the run stops before it is held
        kept = bookmark_record(sub.bookmark)
        if kept is not None and kept < acked:
            self.bookmarks_behind += 1
        self.wsman.prepare(sub.content_format)  # once per format; a no-op after the first
        async with st.lock:  # once the delivery in flight, if any, is done
            self._hold(host, sub)

    async def _close_all(self) -> None:
        """No new heartbeat or refresh; a refresh in flight gets drain_timeout_s to end with its End
        (cut off, the collector would hold an Enumerate without End, and the count would miss it)."""
        tasks = [t for t in (self._beat, self._refresher) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._refreshing:
            _, late = await asyncio.wait(set(self._refreshing), timeout=self.drain_timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
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
        sub = self.first_sub
        asked = Counter(SubscriptionAsked(s.sub.max_elements, s.sub.max_time_s, s.sub.max_envelope, s.sub.heartbeat_s, 0)
                        for s in self.states.values() if s.sub is not None)
        obeyed = Counter(s.batching for s in self.states.values() if s.batching is not None)
        return WsmanFigures(
            enumerations=self.enumerated, envelopes=self.envelopes, retries=self.retries,
            wrong_acks=self.wrong_acks, heartbeats=self.heartbeats, heartbeats_acked=self.heartbeats_acked,
            heartbeat_s=sub.heartbeat_s if sub else None, max_time_s=sub.max_time_s if sub else None,
            max_envelope=sub.max_envelope if sub else None, content_format=sub.content_format if sub else None,
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
