"""Chained requests (fast_sender.py): at unlimited rate a reply's callback writes the next batch.

Against real servers on 127.0.0.1, with one sender so the batches reach the server in order:
every batch arrives once with its own markers, a failure in the middle of a chain is counted
against the batch that failed, and the sender's task did not wake once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from fake_collector import FakeCollector
from wefperf.load import errors
from wefperf.load.engine import LoadEngine, make_senders
from wefperf.load.fast_sender import FastChannel
from wefperf.load.scheduler import Schedule
from wefperf.model import LoadSummary
from wefperf.payload import build_pool, find_markers

BATCH = 5
PATH = "/wsman/events"


async def run_unlimited(url: str, batches: int, *, timeout_s: float = 5.0) -> LoadSummary:
    pool = build_pool(run_id="chaintest", batch_size=BATCH, event_type="4624", total_events=batches * BATCH)
    senders = make_senders("fast", url, pool, timeout_s, 1)
    schedule = Schedule.for_run(target_eps=0, batch_size=BATCH, total_events=batches * BATCH, duration_s=0,
                                timeout_s=30)
    engine = LoadEngine(pool=pool, senders=senders, schedule=schedule, concurrency=1, drain_timeout_s=2)
    return await asyncio.wait_for(engine.run(), 20)


@contextlib.asynccontextmanager
async def recording_server(bodies: list[bytes]) -> AsyncIterator[str]:
    """A server on 127.0.0.1 that keeps every request body it is sent; yields its events URL."""

    async def events(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(text="OK")

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post(PATH, events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}{PATH}"
    finally:
        await runner.cleanup()


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch numbers the sender's task passed to FastChannel.send (a chain sends more than that)."""
    seen: list[int] = []
    original = FastChannel.send

    async def counting(self: FastChannel, batch: int, after: Callable[[int], int | None] | None = None) -> int:
        seen.append(batch)
        return await original(self, batch, after)

    monkeypatch.setattr(FastChannel, "send", counting)
    return seen


async def test_a_chain_sends_every_batch_once_with_its_markers_and_few_task_wakeups(sends: list[int]) -> None:
    bodies: list[bytes] = []
    async with recording_server(bodies) as url:
        summary = await run_unlimited(url, 50)
    assert (summary.batches_sent, summary.batches_ok, summary.batches_failed) == (50, 50, 0)
    assert summary.latency.count == summary.service.count == 50
    batches = []
    for body in bodies:
        markers = find_markers(body.decode())
        assert [m.index for m in markers] == list(range(BATCH))
        assert {m.run_id for m in markers} == {"chaintest"}
        assert len({m.batch for m in markers}) == 1
        batches.append(markers[0].batch)
    assert batches == list(range(50))  # one sender: in order, each once
    assert sends == [0]  # the first request's reply wrote all the others


async def test_a_failure_in_a_chain_is_counted_against_the_batch_that_failed(sends: list[int]) -> None:
    c = FakeCollector(fail_every=4, fail_status=503).start()  # the 4th, 8th, ... request fails
    try:
        summary = await run_unlimited(c.url + PATH, 20)
    finally:
        c.stop()
    assert (summary.batches_ok, summary.batches_failed) == (15, 5)
    assert summary.failed_ranges == [(3, 3), (7, 7), (11, 11), (15, 15), (19, 19)]
    assert summary.errors[errors.http_status(503)].batches == 5
    # A non-2xx ends the chain: the task takes it, then starts the next chain.
    assert sends == [0, 4, 8, 12, 16]


async def test_a_silent_reply_in_a_chain_times_out_that_batch_alone(sends: list[int]) -> None:
    answered = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            if answered == 3:
                answered += 1
                await asyncio.sleep(30)  # the 4th request is never answered on this connection
            answered += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        summary = await run_unlimited(f"http://127.0.0.1:{port}{PATH}", 6, timeout_s=0.5)
    finally:
        server.close()
    assert (summary.batches_ok, summary.batches_failed) == (5, 1)
    assert summary.failed_ranges == [(3, 3)]
    assert summary.errors[errors.TIMEOUT].batches == 1
    assert sends == [0, 4]  # the timeout ended the first chain; a new connection carried the rest


async def test_a_large_request_goes_out_unjoined_and_arrives_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    """From WRITELINES_MIN bytes the parts go to writelines (no joined copy); the server must still get
    exactly the joined body, the task's first request and the chained ones alike."""
    from wefperf.load import fast_sender

    big = 60  # events: a 4624 batch of 60 is about 100 KB
    pool = build_pool(run_id="bigtest", batch_size=big, event_type="4624", total_events=big * 6)
    unjoined: list[int] = []
    original = fast_sender._buffers

    def counting(token: bytes, parts: tuple[bytes, ...], length: int) -> bytes | list[bytes]:
        out = original(token, parts, length)
        unjoined.append(isinstance(out, list))
        return out

    monkeypatch.setattr(fast_sender, "_buffers", counting)
    bodies: list[bytes] = []
    async with recording_server(bodies) as url:
        senders = make_senders("fast", url, pool, 5.0, 1)
        assert pool.variant(0).request_length >= fast_sender.WRITELINES_MIN  # framed for the fast sender
        schedule = Schedule.for_run(target_eps=0, batch_size=big, total_events=big * 6, duration_s=0, timeout_s=30)
        engine = LoadEngine(pool=pool, senders=senders, schedule=schedule, concurrency=1, drain_timeout_s=2)
        summary = await asyncio.wait_for(engine.run(), 20)
    assert summary.batches_ok == 6
    assert unjoined == [True] * 6  # every request, the first and the chained five, went unjoined
    assert bodies == [pool.body(b) for b in range(6)]
