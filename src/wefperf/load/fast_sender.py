"""A raw asyncio protocol that writes pre-framed requests and parses replies with httptools.

Chosen for plain HTTP at high rates: aiohttp's per-request machinery costs more CPU than
the server it measures (see docs/benchmarks.md). One keep-alive connection per sender.

A small request is one buffer, the pool's parts joined around the batch number. A large one
(from WRITELINES_MIN) goes to the transport unjoined: `writelines` of the parts interleaved with
the batch's token, which uvloop writes with writev straight from the pool's bytes, so the 1.6 MB
body of a 1,000-event batch is never copied in user space. Measured with `make bench` (section 5
and the capacity table, docs/benchmarks.md): that copy was most of what separated wefperf from wrk
at 1,000-event batches; below a few kilobytes the one joined buffer is the cheaper way.

Nothing keeps a request's buffer once the transport has it. A sender waiting for its reply
while holding its 1.6 MB buffer made 16 senders' copies land in 16 different, cache-cold
places; freed at once, the next copy can reuse the same warm memory.

When some sender is idle, it may be waiting for a batch that falls due while this one
writes, so a large request goes out in slices (memoryviews of the one buffer): one slice
per write, the next only after the transport has flushed the last and the loop has had
a turn. One write then holds the loop for a slice, not for a 1.6 MB body. When every
sender is mid-request (a run at full speed), nobody waits on the clock and the request
goes in one write: fewer system calls, fewer wake-ups for the server.

At unlimited rate a channel chains (a request larger than a slice only while every channel is
mid-request): the reply's
callback asks the engine for the next batch (`send`'s `after`), which records the reply and
claims the next batch, and writes it at once, all inside the callback. No future is resolved
and no task wakes per request; the sender's task wakes once the chain ends (the run stops, a
reply is not a clean 2xx, the connection fails), and sees the chain's last request as its own.

A reply that comes while part of the request is still unwritten (slices left, or bytes still in
the transport's buffer because the socket was full) answers for events the server never saw: a
2xx then fails the batch as `early_reply`, and any early reply closes the connection, whose
request can no longer be finished.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Callable, cast
from urllib.parse import urlsplit

import httptools

from ..payload import PayloadPool
from ..payload.marker import batch_token
from ..payload.wire import request_head
from .errors import EarlyReply

# Bytes per write while other senders may be due. Writing this much into a loopback
# socket takes tens of microseconds, against several hundred for a whole 1.6 MB body.
MAX_WRITE = 256 * 1024
# From this length a request goes to the transport unjoined (writelines: uvloop's writev straight from
# the pool's bytes), sparing the copy of the whole body in user space; below it one joined buffer is
# cheaper (make bench, section 5).
WRITELINES_MIN = 64 * 1024


def _buffers(token: bytes, parts: tuple[bytes, ...], length: int) -> bytes | list[bytes]:
    """A request as the transport takes it best: the parts interleaved with the batch's token, or joined."""
    if length < WRITELINES_MIN:
        return token.join(parts)
    pieces = [token] * (2 * len(parts) - 1)
    pieces[::2] = parts
    return pieces


def _put(transport: asyncio.WriteTransport, request: bytes | list[bytes]) -> None:
    """Hand a request as `_buffers` made it to the transport: one buffer, or the unjoined pieces."""
    if isinstance(request, list):
        transport.writelines(request)
    else:
        transport.write(request)


class ReplyProtocol(asyncio.Protocol):
    """Resolves one waiter per HTTP response; the body is read and dropped."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.keep_alive = True
        self.paused = False
        self.flushed: asyncio.Future[None] | None = None
        self.writing = False  # the sender still has slices of this request to hand to the transport
        self.early = False  # the last reply came before its request was written whole
        # Set while a chain runs (see the module docstring): given a clean 2xx's status, the next
        # request's bytes to write at once, or None to end the chain.
        self.chain: Callable[[int], bytes | list[bytes] | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        # Paused while any byte is left unsent, so a sender can wait until a slice is flushed.
        self.transport.set_write_buffer_limits(high=0, low=0)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def _wake(self) -> None:
        flushed, self.flushed = self.flushed, None
        if flushed is not None and not flushed.done():
            flushed.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        status = self.parser.get_status_code()
        transport = self.transport
        self.early = self.writing or (transport is not None and transport.get_write_buffer_size() > 0)
        chain = self.chain
        if (chain is not None and transport is not None and not self.early and self.keep_alive
                and not transport.is_closing() and 200 <= status < 300 and self.waiter is not None and not self.waiter.done()):
            try:
                following = chain(status)
            except Exception as exc:  # the engine's bug: the sender's task raises it
                self._fail(exc)
                return
            if following is not None:  # the waiter stays pending for the next reply
                _put(transport, following)
                return
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            if self.early and 200 <= status < 300:
                waiter.set_exception(EarlyReply(f"HTTP {status} before the request's last byte was written"))
            else:
                waiter.set_result(status)
        self._wake()  # answered while a slice is stuck: the sender stops writing

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("server closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._wake()


class FastChannel:
    """One connection, one request at a time; reconnects after a failure."""

    def __init__(self, host: str, port: int, pool: PayloadPool, timeout_s: float, load: _Load,
                 max_write: int = MAX_WRITE) -> None:
        self._host, self._port, self._pool, self._timeout = host, port, pool, timeout_s
        self._load, self._max_write = load, max_write
        # A chain writes each request whole from a callback; a request larger than one slice only
        # while every channel is mid-request (otherwise the task writes it in slices, see above).
        every = [*pool.variants, *([pool.last] if pool.last is not None else [])]
        self._sliced = any(v.request_length > max_write for v in every)
        self.chains = True
        self._after: Callable[[int], int | None] | None = None
        self._proto: ReplyProtocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Loop time by which the pending reply must arrive (0: none pending). A watchdog
        # checks it, so the hot path arms no timer per request.
        self.deadline = 0.0

    async def _connect(self) -> ReplyProtocol:
        loop = self._loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(ReplyProtocol, self._host, self._port), self._timeout
        )
        return proto

    @property
    def connected(self) -> bool:
        proto = self._proto
        return proto is not None and not proto.closed

    async def connect(self) -> None:
        """Open the connection now, so the engine counts a batch sent only once it can go out."""
        if not self.connected:
            self._proto = await self._connect()

    async def send(self, batch: int, after: Callable[[int], int | None] | None = None) -> int:
        """Send `batch`; its reply's status. `after` (used when `chains`): called with each clean 2xx
        reply's status, it returns the next batch to send on this connection at once, or None; the
        status returned is then the last request's (see the module docstring)."""
        proto = self._proto
        if proto is None or proto.closed:
            proto = self._proto = await self._connect()
        loop = self._loop
        assert loop is not None and proto.transport is not None
        variant = self._pool.variant(batch)  # once per request: its length and its parts
        waiter: asyncio.Future[int] = loop.create_future()
        proto.waiter = waiter
        self.deadline = loop.time() + self._timeout
        load = self._load
        load.busy += 1
        whole = True
        if after is not None:
            self._after, proto.chain = after, self._next_request
        try:
            if load.busy >= load.channels or variant.request_length <= self._max_write:
                # No name keeps the buffer: once the kernel has it all, it is freed at once and the
                # next request's copy reuses the same, cache-warm memory (see docs/benchmarks.md).
                _put(proto.transport, _buffers(batch_token(batch), variant.framed_parts, variant.request_length))
            else:
                data = memoryview(batch_token(batch).join(variant.framed_parts))
                whole = await self._write_slices(proto, data, waiter)
            status = await waiter
        except BaseException:
            self.close(discard=True)
            raise
        finally:
            self.deadline = 0.0
            load.busy -= 1
            proto.chain = self._after = None
        if not (proto.keep_alive and whole) or proto.early:
            self.close(discard=proto.early or not whole)
        return status

    def _next_request(self, status: int) -> bytes | list[bytes] | None:
        """In the reply's callback: the next batch's request, its reply due within the timeout."""
        after, loop, load = self._after, self._loop, self._load
        assert after is not None and loop is not None
        if self._sliced and load.busy < load.channels:
            return None  # a channel is idle: the task writes the next large request in slices
        batch = after(status)
        if batch is None:
            return None
        self.deadline = loop.time() + self._timeout
        variant = self._pool.variant(batch)
        return _buffers(batch_token(batch), variant.framed_parts, variant.request_length)

    async def _write_slices(self, proto: ReplyProtocol, data: memoryview, waiter: asyncio.Future[int]) -> bool:
        """Write the request a slice at a time; False if it stopped short.

        It stops when the request failed or the server answered: a reply before the last slice
        is an early reply (see the module docstring), and the rest of the body is not sent.
        """
        loop, transport, step = self._loop, proto.transport, self._max_write
        assert loop is not None and transport is not None
        proto.writing = True
        try:
            transport.write(data[:step])
            for start in range(step, len(data), step):
                if proto.paused:
                    proto.flushed = loop.create_future()
                    await proto.flushed
                else:
                    await asyncio.sleep(0)
                if proto.closed or proto.paused or waiter.done():
                    return False
                transport.write(data[start:start + step])
            return True
        finally:
            proto.writing = False

    def expire(self, now: float) -> None:
        """Fail the pending request if its reply is overdue."""
        if self.deadline and now >= self.deadline and self._proto is not None:
            self._proto._fail(TimeoutError(f"no response within {self._timeout:g} s"))

    def close(self, discard: bool = False) -> None:
        """`discard`: the request was given up, so bytes still buffered for it are dropped (abort),
        not flushed first to a server that may never read them."""
        if self._proto is not None and self._proto.transport is not None:
            if discard:
                self._proto.transport.abort()
            else:
                self._proto.transport.close()
        self._proto = None


class _Load:
    """How many channels exist and how many are mid-request, shared by one FastSenders' channels."""

    __slots__ = ("busy", "channels")

    def __init__(self) -> None:
        self.channels = 0
        self.busy = 0


class FastSenders:
    """Makes FastChannels for one URL; frames the pool's bodies with a request head once."""

    name = "fast"

    def __init__(self, url: str, pool: PayloadPool, timeout_s: float, max_write: int = MAX_WRITE) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError("the fast sender speaks plain HTTP only; use the aiohttp sender for https")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        host_header = parts.netloc
        path = parts.path or "/"
        pool.frame(lambda length: request_head(host_header, path, length))
        self._pool, self._timeout, self._max_write = pool, timeout_s, max_write
        self._channels: list[FastChannel] = []
        self._load = _Load()
        self._watchdog: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._ensure_watchdog()

    def channel(self) -> FastChannel:
        self._ensure_watchdog()
        ch = FastChannel(self._host, self._port, self._pool, self._timeout, self._load, self._max_write)
        self._channels.append(ch)
        self._load.channels = len(self._channels)
        return ch

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Expires overdue requests; a timeout fires up to one tick late."""
        loop = asyncio.get_running_loop()
        tick = min(max(self._timeout / 10, 0.005), 0.5)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for ch in self._channels:
                ch.expire(now)

    async def close(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        for ch in self._channels:
            ch.close()
        await asyncio.sleep(0)
