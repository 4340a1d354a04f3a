"""The collector's HTTP routes (aiohttp): the contract's surface plus `/stats/collector`."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .parse import is_events_batch, parse_batch
from .sink import Sink
from .stats import ThroughputStats
from .upload import Uploader

# Bodies up to this size are walked on the event loop (well under a millisecond); larger ones in a thread.
PARSE_INLINE_BYTES = 256 * 1024


class Collector:
    """Counts and stores what arrives; the routes below are thin wrappers around `ingest`."""

    def __init__(self, stats: ThroughputStats, sink: Sink, uploader: Uploader, bucket: str) -> None:
        self.stats = stats
        self.sink = sink
        self.uploader = uploader
        self.bucket = bucket
        self.requests = 0
        self.rejected = 0
        self.malformed_bodies = 0

    async def ingest(self, body: bytes, source_host: str) -> bool:
        """Count and buffer an events batch; False when the body is not one (answer 400).

        A large body is walked in a worker thread: the walk is many short steps, so the GIL's
        switch interval (5 ms) bounds how long one request can keep the event loop from others.
        """
        if not is_events_batch(body):
            self.rejected += 1
            return False
        self.requests += 1
        if len(body) > PARSE_INLINE_BYTES:
            parsed = await asyncio.to_thread(parse_batch, body)
        else:
            parsed = parse_batch(body)
        self.stats.add(parsed.type_counts)
        self.malformed_bodies += parsed.stopped
        self.sink.add(parsed.by_event_id, body, source_host)
        return True

    def summary(self) -> dict[str, Any]:
        up = self.uploader.counters
        return {
            "bucket": self.bucket,
            "requests": self.requests,
            "rejected_requests": self.rejected,
            "received_events": self.stats.total(),
            # v0.5.0 labels every event it walks (no EventID is EventID 0), so never `unknown`;
            # the key stays for the shutdown summary line.
            "unknown_events": 0,
            "malformed_bodies": self.malformed_bodies,
            "buffered_events": self.sink.buffered_events,
            "pending_upload_files": self.uploader.pending_files,
            "pending_upload_events": self.uploader.pending_events,
            "pending_upload_bytes": self.uploader.pending_bytes,
            "uploaded_files": up.uploaded_files,
            "uploaded_events": up.uploaded_events,
            "uploaded_bytes": up.uploaded_bytes,
            "upload_retries": up.upload_retries,
            "last_upload_error": up.last_error,
            "dropped_files": up.dropped_files,
            "dropped_events": up.dropped_events,
            "unexpected_upload_errors": up.unexpected_errors,
            "build_failures": self.sink.build_failures,
        }


COLLECTOR = web.AppKey("collector", Collector)


def _client_host(request: web.Request, forwarded: bool) -> str:
    if forwarded and (xff := request.headers.get("X-Forwarded-For")):
        return xff.split(",")[0].strip()
    return request.remote or ""


async def health(request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def throughput(request: web.Request) -> web.Response:
    return web.json_response(request.app[COLLECTOR].stats.snapshot())


async def collector_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[COLLECTOR].summary())


async def wsman_events(request: web.Request) -> web.Response:
    body = await request.read()
    if not await request.app[COLLECTOR].ingest(body, _client_host(request, forwarded=False)):
        return web.Response(status=400, text="Bad Request: not an events batch")
    return web.Response(text="OK")


async def wsman(request: web.Request) -> web.Response:
    body = await request.read()
    if not await request.app[COLLECTOR].ingest(body, _client_host(request, forwarded=True)):
        return web.Response(status=400, text="Bad Request: unknown WS-Management message")
    return web.Response(text="Events received")


def make_app(collector: Collector, *, max_body_bytes: int, middlewares: tuple[Any, ...] = ()) -> web.Application:
    """`client_max_size` makes aiohttp answer 413 for a larger body; `middlewares`: e.g. --max-eps (admission.py)."""
    app = web.Application(client_max_size=max_body_bytes, middlewares=list(middlewares))
    app[COLLECTOR] = collector
    app.router.add_get("/health", health)
    app.router.add_get("/stats/throughput", throughput)
    app.router.add_get("/stats/collector", collector_stats)
    app.router.add_get("/stats/target", collector_stats)  # its name before 0.2
    app.router.add_post("/wsman/events", wsman_events)
    app.router.add_post("/wsman", wsman)
    return app
