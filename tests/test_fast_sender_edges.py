"""The fast sender against servers that close, garble or break the HTTP they answer with."""

from __future__ import annotations

import asyncio

import httptools
import pytest

from wefperf.load import errors
from wefperf.load.engine import make_senders
from wefperf.payload import build_pool


class _Scripted(asyncio.Protocol):
    """Reads each request whole (httptools), then writes the reply the test chose for it."""

    def __init__(self, replies: list[bytes], log: list[str]) -> None:
        self.replies, self.log = replies, log
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.log.append("connect")

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.log.append("request")
        reply = self.replies.pop(0) if self.replies else b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
        self.transport.write(reply)  # type: ignore[attr-defined]
        if b"Connection: close" in reply:
            self.transport.close()


async def _serve(replies: list[bytes]) -> tuple[asyncio.AbstractServer, str, list[str]]:
    log: list[str] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Scripted(replies, log), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/wsman/events", log


async def _channel(url: str):
    senders = make_senders("fast", url, build_pool(run_id="edge1", batch_size=5, event_type="4624"), 5.0, 1)
    await senders.open()
    return senders, senders.channel()


async def test_connection_close_is_honoured_and_the_next_request_reconnects() -> None:
    server, url, log = await _serve([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"])
    senders, channel = await _channel(url)
    try:
        assert await channel.send(0) == 200
        assert await channel.send(1) == 200
    finally:
        await senders.close()
        server.close()
        await server.wait_closed()
    assert log == ["connect", "request", "connect", "request"]


@pytest.mark.parametrize("reply", [
    b"HELLO WORLD\r\n\r\n",  # not an HTTP status line
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbroken\r\n",  # a chunk size that is not hex
])
async def test_a_reply_the_parser_refuses_is_a_protocol_error_and_the_next_request_recovers(reply: bytes) -> None:
    server, url, log = await _serve([reply])
    senders, channel = await _channel(url)
    try:
        with pytest.raises(Exception) as failed:
            await channel.send(0)
        assert errors.classify(failed.value) == errors.PROTOCOL
        assert await channel.send(1) == 200  # a fresh connection after the broken one
    finally:
        await senders.close()
        server.close()
        await server.wait_closed()
    assert log.count("connect") == 2
