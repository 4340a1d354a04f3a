"""A 2xx that arrives before the whole request was written acknowledges events the server never saw.

The server below reads the request head and the first bytes of a large body, answers 200 at
once and stops reading; its socket's receive buffer is small, so the client's write pauses with
most of the body still unsent. That batch must count failed (`early_reply`), not acknowledged,
and its connection must be closed (the rest of its body can no longer be sent coherently).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop
from aiohttp import web

from wefperf.load import errors
from wefperf.load.engine import LoadEngine, make_senders
from wefperf.load.hosts import build_hosts
from wefperf.load.scheduler import Schedule
from wefperf.load.wsman_hosts import WsmanHostsEngine
from wefperf.model import LoadSummary
from wefperf.payload import build_pool
from wefperf.wsman import envelope, parse

# Far more than the small receive buffer and the client's send buffer hold together (~10 MB).
EVENTS = 6000
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
LOOPS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


class _AnswersAfterTheHead(asyncio.Protocol):
    """Once the request head is in, reads nothing for a while: the client's socket fills and its write
    pauses. Answers 200 then, still not reading; reading again later, it sees the client close."""

    def __init__(self, log: list[str], reply: Callable[[bytes], bytes]) -> None:
        self.log, self.reply, self.seen = log, reply, b""
        self.first = b""  # what came before the server stopped reading

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.log.append("connect")

    def data_received(self, data: bytes) -> None:
        if self.seen is None:
            return
        self.seen += data
        if b"\r\n\r\n" in self.seen:
            self.first, self.seen = self.seen, None  # type: ignore[assignment]
            self.transport.pause_reading()  # type: ignore[attr-defined]
            loop = asyncio.get_running_loop()
            loop.call_later(0.1, self._answer)
            loop.call_later(0.4, self.transport.resume_reading)  # type: ignore[attr-defined]

    def _answer(self) -> None:
        self.transport.write(self.reply(self.first))  # type: ignore[attr-defined]
        self.log.append("answered")

    def connection_lost(self, exc: Exception | None) -> None:
        self.log.append("closed")


@asynccontextmanager
async def early_server(log: list[str], reply: Callable[[bytes], bytes] = lambda _first: OK) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = await asyncio.get_running_loop().create_server(lambda: _AnswersAfterTheHead(log, reply), sock=sock)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/wsman/events"
    finally:
        server.close()


async def _one_batch(url: str, kind: str, concurrency: int) -> LoadSummary:
    pool = build_pool(run_id="earlyreply", batch_size=EVENTS, event_type="4624", total_events=EVENTS)
    senders = make_senders(kind, url, pool, 5.0, concurrency)
    schedule = Schedule.for_run(target_eps=0, batch_size=EVENTS, total_events=EVENTS, duration_s=0, timeout_s=30)
    engine = LoadEngine(pool=pool, senders=senders, schedule=schedule, concurrency=concurrency, drain_timeout_s=2)
    return await asyncio.wait_for(engine.run(), 20)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("concurrency", [1, 2], ids=["whole", "sliced"])
def test_fast_a_2xx_before_the_body_was_written_fails_the_batch(loop: str, concurrency: int,
                                                                  pauses: list[int]) -> None:
    """One write of the whole request (every channel busy) and sliced writes (a channel idle) alike."""
    log: list[str] = []

    load = _early_batch(loop, "fast", concurrency, log)
    assert pauses, "the client's write never paused; the test did not test a reply mid-body"
    assert (load.batches_sent, load.batches_ok, load.events_ok) == (1, 0, 0)
    assert (load.batches_failed, load.events_failed) == (1, EVENTS)
    assert list(load.errors) == [errors.EARLY_REPLY]
    assert load.failed_ranges == [(0, 0)]
    assert log == ["connect", "answered", "closed"], "the connection was not closed after the early reply"


def _early_batch(loop: str, sender: str, concurrency: int, log: list[str]) -> LoadSummary:
    """One batch against the early-answering server on `loop`, once the server saw its connection close
    (it notices within a few loop turns)."""
    result: list[LoadSummary] = []

    async def scenario() -> None:
        async with early_server(log) as url:
            load = await _one_batch(url, sender, concurrency)
            for _ in range(100):
                if "closed" in log:
                    break
                await asyncio.sleep(0.02)
            result.append(load)

    LOOPS[loop](scenario())
    return result[0]


@pytest.mark.parametrize("loop", LOOPS)
def test_aiohttp_a_2xx_before_the_body_was_written_fails_the_batch(loop: str) -> None:
    log: list[str] = []

    load = _early_batch(loop, "aiohttp", 1, log)
    assert (load.batches_sent, load.batches_ok, load.events_ok) == (1, 0, 0)
    assert (load.batches_failed, load.events_failed) == (1, EVENTS)
    assert list(load.errors) == [errors.EARLY_REPLY]
    assert log == ["connect", "answered", "closed"], "the connection was not closed after the early reply"


@pytest.mark.slow
async def test_wsman_an_ack_before_the_envelope_was_written_fails_it() -> None:
    """Simulated WS-Man hosts post with aiohttp too: an early 2xx is not the envelope's Ack."""

    def ack(first: bytes) -> bytes:
        """The envelope's own Ack: its MessageID is in the first bytes of the body."""
        head_end = first.index(b"\r\n\r\n") + 4
        text = first[head_end:].decode("utf-16-le", errors="ignore")
        mid = re.search(r"<a:MessageID>([^<]+)</a:MessageID>", text)
        assert mid is not None
        body = envelope.encode(envelope.ack(mid.group(1)))
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    log: list[str] = []
    async with early_server(log, ack) as notify_to:
        async def manager(req: web.Request) -> web.Response:
            msg = parse.request(parse.decode(await req.read()), with_events=False)
            spec = envelope.SubscriptionSpec("X", "uuid:V1", notify_to, max_envelope=64 << 20, retry_s=0.0)
            return web.Response(body=envelope.encode(envelope.enumerate_response(spec, relates_to=msg.message_id,
                                                                                 machine="x")))

        app = web.Application()
        app.router.add_post("/wsman/SubscriptionManager/WEC", manager)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/wsman/SubscriptionManager/WEC"
            # One host, 3,000 events a delivery: one envelope of about 9 MB.
            schedule = Schedule.for_run(target_eps=8000, batch_size=3000, total_events=0, duration_s=1, timeout_s=30)
            payload, arrivals = build_hosts(run_id="earlywsman", seed=2, hosts=1, max_items=3000, schedule=schedule,
                                            total_events=None, constant_eps=8000)
            engine = WsmanHostsEngine(payload=payload, arrivals=arrivals, url=url, max_items=3000, max_latency_s=0.5,
                                      plan_end_s=1, timeout_s=30, request_timeout_s=5, drain_timeout_s=5)
            load = await asyncio.wait_for(engine.run(), 60)
        finally:
            await runner.cleanup()
    assert load.batches_sent >= 1 and (load.batches_ok, load.events_ok) == (0, 0)
    assert list(load.errors) == [errors.EARLY_REPLY]
    assert log.count("answered") >= 6  # the envelope was tried 1 + ConnectionRetry's 5 times, each answered early
