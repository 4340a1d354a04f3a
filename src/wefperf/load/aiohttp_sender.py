"""aiohttp senders: TLS, proxies (trust_env) and redirects, at a higher CPU cost per request.

A 2xx that comes before the body was written whole acknowledges events the server never saw: the
batch fails as `early_reply` (as with the fast sender). aiohttp's UploadTracker says whether the
body write had finished when the reply came; aiohttp itself then cancels the unfinished write and
closes the connection. It counts the body written once its last bytes are in the transport, so a
reply while only that last buffer (up to aiohttp's 64 KiB write limit) is unflushed goes unseen.
"""

from __future__ import annotations

import ssl
from typing import Callable

import aiohttp

from ..payload import CONTENT_TYPE, PayloadPool
from .errors import EarlyReply


def body_written(tracker: aiohttp.UploadTracker) -> bool:
    """At the reply's head: True once the request body was written whole (the upload settled well)."""
    upload = tracker.upload_complete
    return upload.done() and not upload.cancelled() and upload.exception() is None


class AiohttpChannel:
    chains = False  # one request per send: aiohttp's own machinery sits between reply and request
    # aiohttp's pool opens connections inside `send`: a batch whose connection could not open
    # counts as sent, then failed (docs/design.md, "Sent means written").
    connected = True

    def __init__(self, owner: "AiohttpSenders") -> None:
        self._owner = owner

    async def connect(self) -> None:
        return None

    async def send(self, batch: int, after: Callable[[int], int | None] | None = None) -> int:
        o = self._owner
        assert o.session is not None
        tracker = aiohttp.UploadTracker()
        async with o.session.post(o.url, data=o.pool.body(batch), headers=o.headers, upload_tracker=tracker) as resp:
            written = body_written(tracker)  # read at the reply's head
            await resp.read()
            status = resp.status
        if not written and 200 <= status < 300:
            raise EarlyReply(f"HTTP {status} before the request's last byte was written")
        return status
class AiohttpSenders:
    name = "aiohttp"

    def __init__(
        self, url: str, pool: PayloadPool, timeout_s: float, concurrency: int,
        tls_verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.url, self.pool = url, pool
        self.headers = {"Content-Type": CONTENT_TYPE}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limit = concurrency
        # False: accept any certificate (a collector on 5986 with a self-signed or internal-CA cert);
        # a context: --tls-ca's CA.
        self._ssl: ssl.SSLContext | bool = tls_verify
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._limit, force_close=False, ssl=self._ssl)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, trust_env=True, skip_auto_headers=("User-Agent",)
        )

    def channel(self) -> AiohttpChannel:
        return AiohttpChannel(self)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
