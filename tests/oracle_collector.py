"""The oracle: a contract-shaped collector on 127.0.0.1 that writes down every request it gets.

Each events request (a batch POST on /wsman/events, or a WS-Management Events envelope) is kept as
a `RequestRecord`: when its headers were parsed, when its body had fully arrived, when the reply
was handed to the transport, its size in events and bytes, and the status answered. Those
records are the ground truth wefperf's reported figures are held to (tests/test_oracle.py).

Events are counted with the reference collector's own parsing (`collector.parse.parse_batch`, and
`wsman.parse` for the envelopes, as `collector/wsman_routes.py` does): that is the collector side
of the contract, not the load generator's code, so the oracle does not grade wefperf with itself.

What the tests control:
- `reply_delay_s`: every events request is answered this long after its body arrived, so it is a
  lower bound of each request's latency (wefperf measures from the *intended* send time, earlier).
- `fail_every` / `fail_mode`: every Nth events request (1-based, in arrival order) is answered
  500, or hung: never answered until the client closes the connection.
- `count_lag_s`: /stats/throughput counts an accepted request's events only this long after its
  reply, like a collector whose counters trail its acknowledgements (issue 19 item 3).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web

from threaded_app import ThreadedApp
from wefperf.collector.parse import parse_batch
from wefperf.wsman import envelope, ns
from wefperf.wsman.parse import decode, request

HUNG = 0  # `RequestRecord.status` of a request that was never answered (the client gave up first)
_HANG_POLL_S = 0.02
_HANG_MAX_S = 120.0  # a hung request is released at the latest after this long (or at stop())
_BATCH_HEAD = b"<Envelope><Body><Events>\n"
_BATCH_TAIL = b"</Events></Body></Envelope>\n"


@dataclass(frozen=True)
class RequestRecord:
    """One events request as the oracle saw it; times are `time.monotonic()` in this process.

    `headers_s`: the handler started (request line and headers parsed; the closest aiohttp shows
    to the first byte). `arrival_s`: the whole body had been read. `reply_s`: the reply was handed
    to the transport (a hung request: when the oracle saw the client close the connection).
    """

    seq: int  # 1-based place in arrival order among events requests (what fail_every counts)
    kind: str  # "batch" (POST /wsman/events) or "wsman" (an Events envelope)
    headers_s: float
    arrival_s: float
    reply_s: float
    events: int
    body_bytes: int
    status: int  # HUNG (0) when no reply was sent
    labels: tuple[tuple[str, int], ...] = ()  # /stats/throughput type key -> events, as counted

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def server_time_s(self) -> float:
        """Reply minus arrival: what the oracle itself added to this request's latency."""
        return self.reply_s - self.arrival_s


def rank_value(values: Iterable[float], percentile: float) -> float:
    """The value at `percentile` by nearest rank, with the rank HdrHistogram uses
    (max(1, round(p/100 × n))), so the oracle's quantile and wefperf's are of the same order statistic."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, int(percentile / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class OracleCollector(ThreadedApp):
    """Serves /wsman/events, WS-Man (Enumerate + subscription), /health and /stats/throughput."""

    reply_delay_s: float = 0.0
    fail_every: int = 0  # 0: never fail on purpose
    fail_mode: str = "500"  # "500" or "hang"
    count_lag_s: float = 0.0
    port: int = 0
    records: list[RequestRecord] = field(default_factory=list, repr=False)
    enumerates: int = 0
    ends: int = 0  # the End each host sends after its EnumerateResponse
    heartbeats: int = 0
    identifier: str = field(default_factory=lambda: str(uuid.uuid4()).upper())

    def __post_init__(self) -> None:
        if self.fail_mode not in ("500", "hang"):
            raise ValueError(f"fail_mode must be '500' or 'hang', not {self.fail_mode!r}")
        self._init_server()
        self._lock = threading.Lock()
        self._arrivals = 0  # events requests seen, in arrival order (the fail_every count)
        self._released = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._released = True  # hung handlers return, so the server's cleanup does not wait for them
        super().stop()

    # --- ground truth -----------------------------------------------------------------------------

    def snapshot(self) -> list[RequestRecord]:
        """Every events request so far, in arrival order (`records` is in reply order)."""
        with self._lock:
            return sorted(self.records, key=lambda r: r.seq)

    def accepted(self) -> list[RequestRecord]:
        return [r for r in self.snapshot() if r.accepted]

    def events_accepted(self) -> int:
        return sum(r.events for r in self.accepted())

    def events_refused(self) -> int:
        """Events of requests answered with an error or never answered."""
        return sum(r.events for r in self.snapshot() if not r.accepted)

    def arrival_rate(self, t0: float, t1: float) -> float:
        """Events per second whose body arrived in [t0, t1) (any status)."""
        if t1 <= t0:
            raise ValueError("empty window")
        return sum(r.events for r in self.snapshot() if t0 <= r.arrival_s < t1) / (t1 - t0)

    def server_times_ms(self) -> list[float]:
        """Reply minus arrival of every answered request, in ms."""
        return [r.server_time_s * 1000 for r in self.snapshot() if r.status != HUNG]

    def counted(self, now: float | None = None) -> int:
        """What /stats/throughput says at `now`: accepted events whose reply is count_lag_s old."""
        return sum(self._counted_labels(time.monotonic() if now is None else now).values())

    def _counted_labels(self, now: float) -> Counter[str]:
        totals: Counter[str] = Counter()
        for r in self.accepted():
            if r.reply_s + self.count_lag_s <= now:
                for label, n in r.labels:
                    totals[label] += n
        return totals

    # --- events requests --------------------------------------------------------------------------

    async def _answer(self, kind: str, headers_s: float, body: bytes, batch: bytes,
                      req: web.Request, ok: web.Response) -> web.Response:
        """Count, wait, fail or answer one events request, and record it."""
        arrival = time.monotonic()
        parsed = parse_batch(batch)
        with self._lock:
            self._arrivals += 1
            nth = self._arrivals
        failing = self.fail_every > 0 and nth % self.fail_every == 0
        if failing and self.fail_mode == "hang":
            await self._hang(req)
            status, reply = HUNG, web.Response(status=500, text="hung")
        else:
            if self.reply_delay_s:
                await asyncio.sleep(max(arrival + self.reply_delay_s - time.monotonic(), 0.0))
            status, reply = (500, web.Response(status=500, text="injected failure")) if failing else (ok.status, ok)
        record = RequestRecord(nth, kind, headers_s, arrival, time.monotonic(), parsed.events, len(body), status,
                               tuple(sorted(parsed.type_counts.items())))
        with self._lock:
            self.records.append(record)
        return reply

    async def _hang(self, req: web.Request) -> None:
        """Until the client closes the connection (its request timeout), stop(), or _HANG_MAX_S."""
        deadline = time.monotonic() + _HANG_MAX_S
        while not self._released and time.monotonic() < deadline:
            transport = req.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(_HANG_POLL_S)

    async def _batch(self, req: web.Request) -> web.Response:
        headers_s = time.monotonic()
        body = await req.read()
        return await self._answer("batch", headers_s, body, body, req, web.Response(text="OK"))

    async def _enumerate(self, req: web.Request) -> web.Response:
        msg = request(decode(await req.read()), with_events=False)
        if msg.action == ns.ACTION_END:
            with self._lock:
                self.ends += 1
            return _soap(envelope.ack(msg.message_id))
        with self._lock:
            self.enumerates += 1
        spec = envelope.SubscriptionSpec(self.identifier, "uuid:" + self.identifier,
                                         f"{self.url}{ns.SUBSCRIPTIONS_PATH}{self.identifier}")
        return _soap(envelope.enumerate_response(spec, relates_to=msg.message_id, machine=msg.machine_id))

    async def _subscription(self, req: web.Request) -> web.Response:
        headers_s = time.monotonic()
        body = await req.read()
        msg = request(decode(body), with_events=True)
        if msg.action == ns.ACTION_HEARTBEAT:
            with self._lock:
                self.heartbeats += 1
            return _soap(envelope.ack(msg.message_id))
        if msg.action != ns.ACTION_EVENTS:
            return web.Response(status=400, text=f"unexpected action {msg.action!r}")
        # The events sit in CDATA; counted as one batch body, the way the reference collector does.
        batch = b"".join([_BATCH_HEAD, "".join(msg.events).encode(), _BATCH_TAIL])
        return await self._answer("wsman", headers_s, body, batch, req, _soap(envelope.ack(msg.message_id)))

    # --- the rest of the contract -----------------------------------------------------------------

    async def _health(self, _req: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _stats(self, _req: web.Request) -> web.Response:
        totals = self._counted_labels(time.monotonic())
        rows = [{"event_type": k, "total_events": v, "last_minute": v, "last_five_minutes": v,
                 "average_per_second_last_minute": v / 60} for k, v in totals.most_common()]
        return web.json_response(rows)

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/wsman/events", self._batch)
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats/throughput", self._stats)
        app.router.add_post(ns.SUBSCRIPTIONS_PATH + "{ident}", self._subscription)
        app.router.add_post("/{tail:.*}", self._enumerate)


def _soap(text: str) -> web.Response:
    return web.Response(body=envelope.encode(text), headers={"Content-Type": ns.CONTENT_TYPE})
