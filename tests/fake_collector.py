"""A small contract-shaped collector for the runner's tests: counts requests and events,
answers /health and /stats/throughput, and fails chosen batches on purpose."""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web

from threaded_app import ThreadedApp

_TYPE_RE = re.compile(rb'<Provider Name="([^"]*)"[^>]*/><EventID>(\d+)</EventID>')


def _label(provider: str, event_id: str, labels: str, n: int) -> str:
    """The type key a collector gives an event with a self-closing `<Provider Name=.../>`.

    "real": as logthing v0.5.0 does (provider from the element's text, empty here) -> `EventID 4624`;
    "attribute": from the Name attribute -> `Provider:4624`; "split": both, alternating per event.
    """
    if labels == "real" or (labels == "split" and n % 2):
        return f"EventID {event_id}"
    return f"{provider}:{event_id}"


@dataclass
class FakeCollector(ThreadedApp):
    """Runs an aiohttp server on 127.0.0.1 in a thread with its own loop."""

    fail_every: int = 0  # answer 500 to every Nth events request (1-based count)
    fail_status: int = 500
    delay_s: float = 0.0
    hang_every: int = 0  # never answer every Nth events request (1-based count) until the client gives up
    health_ok: bool = True
    labels: str = "real"  # how /stats/throughput labels event types, see _label
    stats_ok: bool = True
    count_delay_s: float = 0.0  # a lagging collector: /stats/throughput counts an event this long after its ack
    # A restart that keeps the port: every count starts again from 0 right after this /stats/throughput
    # read (1-based; 0 = never). `stats_reads` counts them.
    reset_after_stats_read: int = 0
    stats_reads: int = 0
    requests: int = 0
    ok_requests: int = 0
    events: Counter[str] = field(default_factory=Counter)
    port: int = 0
    ssl_context: "ssl.SSLContext | None" = None  # set: serve https
    # Per client connection (its address): how many events each of its acknowledged requests held.
    deliveries: dict[tuple[str, int], list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._init_server()
        self._lock = threading.Lock()

    async def settled_requests(self, quiet_s: float = 0.3, timeout_s: float = 5.0) -> int:
        """The request count once it has stopped moving: bytes a cancelled client wrote before
        its cancel may still be read by this thread afterwards, and are not a sender still running."""
        deadline = time.monotonic() + timeout_s
        seen = self.requests
        while time.monotonic() < deadline:
            await asyncio.sleep(quiet_s)
            if self.requests == seen:
                break
            seen = self.requests
        return seen

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _events(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.requests += 1
            n = self.requests
        if self.hang_every and n % self.hang_every == 0:
            # No answer until the client gives up (aiohttp does not cancel a handler on disconnect).
            deadline = time.monotonic() + 60
            while request.transport is not None and not request.transport.is_closing() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return web.Response(status=504, text="hung")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_every and n % self.fail_every == 0:
            return web.Response(status=self.fail_status, text="injected failure")
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        found = _TYPE_RE.findall(body)
        with self._lock:
            self.ok_requests += 1
            self.deliveries.setdefault(tuple(peer[:2]) if peer else ("?", 0), []).append(len(found))
        if self.count_delay_s:
            asyncio.get_running_loop().call_later(self.count_delay_s, self._count, found)
        else:
            self._count(found)
        return web.Response(text="OK")

    def _count(self, found: list[tuple[bytes, bytes]]) -> None:
        with self._lock:
            for n, (provider, event_id) in enumerate(found):
                self.events[_label(provider.decode(), event_id.decode(), self.labels, n)] += 1

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK") if self.health_ok else web.Response(status=503)

    async def _stats(self, request: web.Request) -> web.Response:
        if not self.stats_ok:
            return web.Response(status=404, text="no stats here")
        with self._lock:
            rows = [
                {"event_type": k, "total_events": v, "last_minute": v, "last_five_minutes": v,
                 "average_per_second_last_minute": v / 60}
                for k, v in self.events.items()
            ]
            self.stats_reads += 1
            if self.stats_reads == self.reset_after_stats_read:
                self.events.clear()
        rows.sort(key=lambda r: r["last_minute"], reverse=True)
        return web.json_response(rows)

    def connections_now(self) -> int:
        """Client connections the server holds open right now."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/wsman/events", self._events)
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats/throughput", self._stats)
