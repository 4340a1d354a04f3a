"""Both sender kinds against real servers on 127.0.0.1: what arrives, and how failures are counted.

The engine runs in unlimited mode in count mode, so every test sends a fixed number of
batches and can assert each one was delivered or failed under the right error class.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop
from aiohttp import web

from fake_collector import FakeCollector
from wefperf.load import errors
from wefperf.load.engine import LoadEngine, make_senders
from wefperf.load.fast_sender import FastSenders
from wefperf.load.scheduler import Schedule
from wefperf.model import LoadSummary
from wefperf.payload import PayloadPool, build_pool, find_markers
from wefperf.payload.wire import request_head

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
    if kind == "fast":  # its connection opens before a batch counts as sent: none of them went out
        assert (summary.batches_sent, summary.events_sent, summary.events_unsent) == (0, 0, 6 * BATCH)
    else:  # aiohttp's pool opens connections inside the request: each counts as sent, then failed
        assert (summary.batches_sent, summary.events_unsent) == (6, 0)
    assert summary.error_ratio == 1.0 and summary.latency.count == 6  # each failure's latency runs to it


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
    assert 0.3 <= took < 10, took  # the 0.3 s timeout, not the server's 30 s (room for a busy machine)


def test_auto_picks_fast_for_http_and_aiohttp_for_https() -> None:
    pool = build_pool(run_id="auto", batch_size=1, event_type="4624")
    assert make_senders("auto", "http://127.0.0.1:1/x", pool, 1, 1).name == "fast"
    assert make_senders("auto", "https://127.0.0.1:1/x", pool, 1, 1).name == "aiohttp"
    with pytest.raises(ValueError):
        make_senders("fast", "https://127.0.0.1:1/x", pool, 1, 1)


# --------------------------------------------------------------------------- the fast sender's wire bytes


@dataclass
class WireServer:
    """Reads whole requests off the socket byte for byte and answers each; `read_chunk`
    and `pause_s` make it a slow reader, so the client's socket fills and it must wait."""

    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    read_chunk: int = 1 << 20
    pause_s: float = 0.0
    read_body: bool = True
    answer_early: bool = False
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
                if self.answer_early:
                    writer.write(OK)
                if not self.read_body:
                    await asyncio.sleep(30)
                body = b""
                while len(body) < length:
                    body += await reader.readexactly(min(self.read_chunk, length - len(body)))
                    if self.pause_s:
                        await asyncio.sleep(self.pause_s)
                self.requests.append((head, body))
                if not self.answer_early:
                    writer.write(OK)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@asynccontextmanager
async def wire_server(server: WireServer, rcvbuf: int = 0) -> AsyncIterator[str]:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    srv = await asyncio.start_server(server.handle, sock=sock)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{PATH}"
    finally:
        srv.close()


def _expected(pool: PayloadPool, url: str, batch: int) -> tuple[bytes, bytes]:
    body = pool.body(batch)
    return request_head(url.split("/")[2], PATH, len(body)), body


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("channels", [1, 3], ids=["whole", "sliced"])
def test_fast_wire_bytes_are_the_head_and_the_pool_body(loop: str, channels: int) -> None:
    """What reaches the socket is exactly request_head + pool.body(batch), whole or in slices."""
    pool = build_pool(run_id="wire", batch_size=40, variants=2, seed=3)

    async def scenario() -> None:
        server = WireServer()
        async with wire_server(server) as url:
            senders = FastSenders(url, pool, 5, max_write=3000)
            chans = [senders.channel() for _ in range(channels)]
            # One request at a time on the first channel: with idle channels beside it, it is sliced.
            statuses = [await chans[0].send(b) for b in (0, 1, 2, 4_294_967_295)]
            await senders.close()
        assert statuses == [200] * 4
        assert len(server.requests) == 4
        for (head, body), batch in zip(server.requests, (0, 1, 2, 4_294_967_295)):
            assert (head, body) == _expected(pool, url, batch)
            markers = find_markers(body.decode())
            assert [(m.run_id, m.batch, m.index) for m in markers] == [("wire", batch, i) for i in range(40)]

    LOOPS[loop](scenario())


@pytest.mark.parametrize("loop", LOOPS)
def test_sliced_request_waits_for_a_slow_reader(loop: str, pauses: list[int]) -> None:
    """A slow server fills the socket: the sender pauses between slices and still sends every byte."""
    # Bigger than the socket buffers loopback starts with (a few MB), so they do fill.
    pool = build_pool(run_id="slow", batch_size=3000, event_type="4624")

    async def scenario() -> None:
        server = WireServer(read_chunk=64 * 1024, pause_s=0.001)
        async with wire_server(server, rcvbuf=8192) as url:
            senders = FastSenders(url, pool, 10, max_write=256 * 1024)
            first, _idle = senders.channel(), senders.channel()
            assert [await first.send(b) for b in (7, 8)] == [200, 200]
            await senders.close()
        assert server.requests == [_expected(pool, url, 7), _expected(pool, url, 8)]

    LOOPS[loop](scenario())
    assert pauses, "the slow reader never filled the socket; the test did not test waiting"


@pytest.mark.parametrize("loop", LOOPS)
def test_server_that_stops_reading_mid_body_times_out(loop: str, pauses: list[int]) -> None:
    """Stuck between slices, the request still fails by its timeout instead of hanging."""
    pool = build_pool(run_id="stuck", batch_size=6000, event_type="4624")  # more than the socket buffers hold

    async def scenario() -> None:
        async with wire_server(WireServer(read_body=False), rcvbuf=8192) as url:
            senders = FastSenders(url, pool, 0.3, max_write=64 * 1024)
            first, _idle = senders.channel(), senders.channel()
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await first.send(0)
            assert time.monotonic() - started < 3
            await senders.close()

    LOOPS[loop](scenario())
    assert pauses, "the socket never filled; the test did not test a sender stuck between slices"


@pytest.mark.parametrize("loop", LOOPS)
def test_an_answer_before_the_body_was_written_fails_each_batch_on_its_own_connection(loop: str) -> None:
    """A server that answers 200 after the head, before the body: the reply comes while ~30 slices
    are still to write, so no batch is acknowledged, and each one's connection is closed."""
    pool = build_pool(run_id="early", batch_size=300, event_type="4624")  # ~490 kB: 30 slices of 16 kB

    async def scenario() -> None:
        server = WireServer(answer_early=True)
        async with wire_server(server) as url:
            senders = FastSenders(url, pool, 5, max_write=16 * 1024)
            first, _idle = senders.channel(), senders.channel()
            for b in range(3):
                with pytest.raises(errors.EarlyReply):
                    await first.send(b)
            await asyncio.sleep(0.05)
            await senders.close()
        assert server.requests == []  # no body was written whole
        assert server.connections == 3

    LOOPS[loop](scenario())
