"""`wefperf collector --max-eps`: the admission clock's times, and the middleware over real HTTP."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from wefperf.collector.admission import Admission, admission_middleware
from wefperf.collector.stats import ThroughputStats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_request_waits_until_its_events_are_admitted_in_arrival_order() -> None:
    clock = Clock()
    gate = Admission(1000, clock)
    # Three requests arrive together: 100, 200 and 100 events at 1,000/s.
    assert [gate.reserve(n) for n in (100, 200, 100)] == pytest.approx([0.1, 0.3, 0.4])
    assert gate.backlog_s == pytest.approx(0.4)
    clock.now += 0.25  # a quarter second later the clock is still 0.15 s ahead
    assert gate.reserve(50) == pytest.approx(0.15 + 0.05)


def test_below_the_limit_a_request_waits_only_for_its_own_share() -> None:
    clock = Clock()
    gate = Admission(20_000, clock)
    for _ in range(50):  # 100 events every 10 ms = 10,000/s, half the limit
        assert gate.reserve(100) == pytest.approx(0.005)
        clock.now += 0.010
    assert gate.backlog_s == 0.0


def test_above_the_limit_the_wait_grows_with_the_overload() -> None:
    clock = Clock()
    gate = Admission(20_000, clock)
    waits = []
    for _ in range(100):  # 100 events every 4 ms = 25,000/s for 0.4 s
        waits.append(gate.reserve(100))
        clock.now += 0.004
    # 25 % over: after 0.4 s the queue holds 0.1 s of work (plus the last batch's own 5 ms).
    assert waits[-1] == pytest.approx(0.005 + 99 * (0.005 - 0.004))
    assert waits == sorted(waits)


def test_a_limit_of_zero_is_refused() -> None:
    with pytest.raises(ValueError):
        Admission(0)


async def test_the_middleware_delays_replies_by_the_events_each_request_counted() -> None:
    stats = ThroughputStats()

    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        stats.add({"EventID 4624": int(body)})  # the body says how many events it "holds"
        return web.Response(text="OK")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    app = web.Application(middlewares=[admission_middleware(Admission(1000), stats)])
    app.router.add_post("/wsman/events", events)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async def post(n: int) -> float:
                start = time.perf_counter()
                async with session.post(f"http://127.0.0.1:{port}/wsman/events", data=str(n)) as resp:
                    assert resp.status == 200
                return time.perf_counter() - start

            # 4 x 500 events at once at 1,000/s: replies at about 0.5, 1.0, 1.5, 2.0 s. The lower
            # bounds are the property (each reply waits for its events' slot); the upper ones only
            # say "not much later", with room for a busy machine.
            posts = asyncio.gather(*(post(500) for _ in range(4)))
            deadline = time.monotonic() + 30
            while stats.total() < 2000 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            start = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 200
            got = time.perf_counter() - start
            waits = sorted(await posts)
            assert got < 1.0 < waits[-1]  # a GET never waits, not even behind 2 s of queued events
            for i, wait in enumerate(waits, 1):
                assert 0.5 * i - 0.05 <= wait <= 0.5 * i + 1.0, waits
    finally:
        await runner.cleanup()
    assert stats.total() == 2000


def test_collector_refuses_a_max_eps_of_zero_in_one_line() -> None:
    from helpers import wefperf

    done = wefperf("collector", "--port", "0", "--max-eps", "0")
    assert done.code == 2 and done.err.strip() == "wefperf collector: error: --max-eps must be more than 0 (got 0)"
