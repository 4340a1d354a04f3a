"""Ways to put a wefperf request on the wire, compared on the same sink (`make bench`, section 5).

    join       the pool's parts joined around the batch number, one `write` (what the fast sender does)
    writelines the parts and the batch number as a list of buffers, one `writelines`
               (uvloop writes it with writev, straight from the pool's bytes: no copy in user space)
    static     one constant body, written again and again: what wrk sends. It carries no
               per-request markers, so it could not be accounted for in S3; it is here to show
               what the markers cost, the one thing wefperf does per request that wrk does not.

Everything else is the same minimal client: uvloop, one keep-alive connection per worker,
one request at a time each, httptools for the replies, a fresh batch number per request.
Prints one JSON line with the user and system CPU of the sending phase alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from urllib.parse import urlsplit

import httptools
import uvloop

from wefperf.payload import build_pool
from wefperf.payload.marker import batch_token
from wefperf.payload.wire import request_head


class Replies(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


async def main(url: str, batch_size: int, mode: str, secs: float, conns: int) -> dict[str, float]:
    parts = urlsplit(url)
    pool = build_pool(run_id="bench", batch_size=batch_size, event_type="4624")
    variant = pool.variants[0]
    head = request_head(parts.netloc, parts.path, variant.body_length)
    pieces = (head + variant.parts[0], *variant.parts[1:])
    loop = asyncio.get_running_loop()
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    channels = [await loop.create_connection(Replies, host, port) for _ in range(conns)]
    static = batch_token(0).join(pieces)
    counter = iter(range(1 << 40))
    deadline = time.monotonic() + secs
    sent = 0

    async def worker(transport: asyncio.Transport, proto: Replies) -> None:
        nonlocal sent
        while time.monotonic() < deadline:
            token = batch_token(next(counter))
            proto.done = loop.create_future()
            if mode == "join":
                transport.write(token.join(pieces))
            elif mode == "static":
                transport.write(static)
            else:
                buffers = [token] * (2 * len(pieces) - 1)
                buffers[::2] = pieces
                transport.writelines(buffers)
            await proto.done
            sent += 1

    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    await asyncio.gather(*(worker(t, p) for t, p in channels))
    after, took = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - t0
    for t, _ in channels:
        t.close()
    return {"requests": sent, "seconds": took, "user_s": after.ru_utime - before.ru_utime,
            "sys_s": after.ru_stime - before.ru_stime, "buffers": 1 if mode in ("join", "static") else 2 * len(pieces) - 1}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--mode", choices=("join", "writelines", "static"), required=True)
    p.add_argument("--secs", type=float, default=5.0)
    p.add_argument("--conns", type=int, default=16)
    a = p.parse_args()
    print(json.dumps(uvloop.run(main(a.url, a.batch_size, a.mode, a.secs, a.conns))))
