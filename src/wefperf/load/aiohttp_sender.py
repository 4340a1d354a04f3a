"""aiohttp senders: TLS, proxies (trust_env) and redirects, at a higher CPU cost per request."""

from __future__ import annotations

import aiohttp

from ..payload import CONTENT_TYPE, PayloadPool


class AiohttpChannel:
    def __init__(self, owner: "AiohttpSenders") -> None:
        self._owner = owner

    async def send(self, batch: int) -> int:
        o = self._owner
        assert o.session is not None
        async with o.session.post(o.url, data=o.pool.body(batch), headers=o.headers) as resp:
            await resp.read()
            return resp.status


class AiohttpSenders:
    name = "aiohttp"

    def __init__(
        self, url: str, pool: PayloadPool, timeout_s: float, concurrency: int, tls_verify: bool = True
    ) -> None:
        self.url, self.pool = url, pool
        self.headers = {"Content-Type": CONTENT_TYPE}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limit = concurrency
        # False: accept any certificate (a collector on 5986 with a self-signed or internal-CA cert).
        self._ssl: bool = tls_verify
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
