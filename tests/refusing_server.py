"""A collector that answers every events request with 500 at once: a raw asyncio protocol with
httptools, fast enough to fail more than 100,000 batches in a few seconds. /health answers 200
and /stats/throughput an empty array, so a run starts and reads its stats as usual."""

from __future__ import annotations

import asyncio
import socket
import threading

import httptools

_FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 8\r\nConnection: keep-alive\r\n\r\nrefused\n"
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nOK"
_STATS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n[]"


class _Proto(asyncio.Protocol):
    def __init__(self, owner: "RefusingServer") -> None:
        self.owner = owner
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        if self.url.startswith(b"/health"):
            self.transport.write(_OK)  # type: ignore[attr-defined]
        elif self.url.startswith(b"/stats"):
            self.transport.write(_STATS)  # type: ignore[attr-defined]
        else:
            self.owner.refused += 1
            self.transport.write(_FAIL)  # type: ignore[attr-defined]


class RefusingServer:
    def __init__(self) -> None:
        self.refused = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(self._loop.create_server(lambda: _Proto(self), sock=self._sock))
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    def start(self) -> "RefusingServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
