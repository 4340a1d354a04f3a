"""Both sender kinds against real servers on 127.0.0.1: what arrives, and how failures are counted.

The engine runs in unlimited mode in count mode, so every test sends a fixed number of
batches and can assert each one was delivered or failed under the right error class.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from fake_collector import FakeCollector

from wefperf.load import errors
from wefperf.load.engine import LoadEngine, make_senders
from wefperf.load.scheduler import Schedule
from wefperf.metrics import LoadSummary
from wefperf.payload import build_pool, find_markers

KINDS = ("fast", "aiohttp")
BATCH = 5
PATH = "/wsman/events"


async def send_batches(url: str, kind: str, batches: int, *, timeout_s: float = 5.0, concurrency: int = 4) -> LoadSummary:
    pool = build_pool(run_id="sendertest", batch_size=BATCH, event_type="4624", total_events=batches * BATCH)
    senders = make_senders(kind, url, pool, timeout_s, concurrency)
    assert senders.name == kind
    schedule = Schedule.for_run(target_eps=0, batch_size=BATCH, total_events=batches * BATCH, duration_s=0, timeout_s=30)
    engine = LoadEngine(pool=pool, senders=senders, schedule=schedule, concurrency=concurrency, drain_timeout_s=2)
    return await asyncio.wait_for(engine.run(), 20)


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    c = FakeCollector().start()
    yield c
    c.stop()


@asynccontextmanager
async def raw_server(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that misbehaves as `handle` says; yields the events URL."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}{PATH}"
    finally:
        server.close()
        # Do not wait_closed(): handlers that never return would hold it open.


@pytest.mark.parametrize("kind", KINDS)
async def test_every_batch_arrives_whole(kind: str, collector: FakeCollector) -> None:
    summary = await send_batches(collector.url + PATH, kind, 20)
    assert (summary.batches_ok, summary.batches_failed, summary.events_ok) == (20, 0, 20 * BATCH)
    assert collector.requests == 20
    assert sum(collector.events.values()) == 20 * BATCH
    assert summary.latency.count == summary.service.count == 20


@pytest.mark.parametrize("kind", KINDS)
async def test_bodies_carry_each_batch_once(kind: str) -> None:
    """Each body is a whole batch, marked with its own batch number, sent once."""
    bodies: list[bytes] = []

    async def events(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_post(PATH, events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        summary = await send_batches(f"http://127.0.0.1:{port}{PATH}", kind, 12)
    finally:
        await runner.cleanup()
    assert summary.batches_ok == 12
    batches = sorted({m.batch for body in bodies for m in find_markers(body.decode())})
    assert batches == list(range(12))
    for body in bodies:
        markers = find_markers(body.decode())
        assert [m.index for m in markers] == list(range(BATCH))
        assert len({m.batch for m in markers}) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_server_errors_are_counted_by_status(kind: str) -> None:
    c = FakeCollector(fail_every=2, fail_status=500).start()
    try:
        summary = await send_batches(c.url + PATH, kind, 20)
    finally:
        c.stop()
    assert (summary.batches_ok, summary.batches_failed) == (10, 10)
    assert summary.errors[errors.http_status(500)].batches == 10
    assert c.requests == 20


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_refused(kind: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        summary = await send_batches(f"http://127.0.0.1:{port}{PATH}", kind, 6, concurrency=2)
    assert (summary.batches_ok, summary.batches_failed) == (0, 6)
    assert summary.errors[errors.CONNECTION_REFUSED].batches == 6


@pytest.mark.parametrize("kind", KINDS)
async def test_server_closing_the_connection_is_a_reset(kind: str) -> None:
    async def close_after_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async with raw_server(close_after_head) as url:
        summary = await send_batches(url, kind, 6, concurrency=2)
    assert (summary.batches_ok, summary.batches_failed) == (0, 6)
    assert summary.errors[errors.CONNECTION_RESET].batches == 6


@pytest.mark.parametrize("kind", KINDS)
async def test_silent_server_times_out(kind: str) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 20)
        await asyncio.sleep(30)

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with raw_server(never_answer) as url:
        summary = await send_batches(url, kind, 2, timeout_s=0.3, concurrency=2)
    took = loop.time() - started
    assert (summary.batches_ok, summary.batches_failed) == (0, 2)
    assert summary.errors[errors.TIMEOUT].batches == 2
    assert 0.3 <= took < 3, took


def test_auto_picks_fast_for_http_and_aiohttp_for_https() -> None:
    pool = build_pool(run_id="auto", batch_size=1, event_type="4624")
    assert make_senders("auto", "http://127.0.0.1:1/x", pool, 1, 1).name == "fast"
    assert make_senders("auto", "https://127.0.0.1:1/x", pool, 1, 1).name == "aiohttp"
    with pytest.raises(ValueError):
        make_senders("fast", "https://127.0.0.1:1/x", pool, 1, 1)
