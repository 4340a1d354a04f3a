"""Simulated hosts count a delivery sent only once its bytes were written to an open connection.

A host that cannot connect (plain HTTP) or cannot enumerate (WS-Man) sends nothing: its deliveries
fall due and fail, unsent. The error ratio still counts them (failed of what was due), and a run
in which no host could deliver fails with that reason.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

import wefperf
from wefperf.judge.verdict import judge
from wefperf.load import errors
from wefperf.load.hosts import HostsEngine, build_hosts
from wefperf.load.scheduler import Schedule
from wefperf.load.wsman_hosts import WsmanHostsEngine
from wefperf.model import LoadSummary
from wefperf.report.console import hosts_lines
from wefperf.wsman import envelope, parse
from wefperf.wsman.backoff import Backoff

HOSTS, EPS, SECONDS, MAX_LATENCY = 5, 100, 1.0, 0.2


def _refused_port() -> int:
    """A port on 127.0.0.1 with nothing listening: every connect is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _engine(kind: type[HostsEngine], url: str) -> HostsEngine:
    schedule = Schedule.for_run(target_eps=EPS, batch_size=10, total_events=0, duration_s=SECONDS, timeout_s=30)
    payload, arrivals = build_hosts(run_id="unsent", seed=3, hosts=HOSTS, max_items=10, schedule=schedule,
                                    total_events=None, constant_eps=EPS)
    return kind(payload=payload, arrivals=arrivals, url=url, max_items=10, max_latency_s=MAX_LATENCY,
                plan_end_s=SECONDS, timeout_s=30, request_timeout_s=2, drain_timeout_s=2)


def _settings(url: str, **extra: object) -> wefperf.Settings:
    values: dict[str, object] = {"wef_endpoint": url, "hosts": HOSTS, "target_eps": EPS, "duration_secs": SECONDS,
                                 "max_items": 10, "max_latency_secs": MAX_LATENCY, **extra}
    return wefperf.load_settings(None, values, environ={})


def _nothing_was_sent(load: LoadSummary) -> None:
    hosts = load.hosts
    assert hosts is not None and hosts.events_due > 0
    assert (load.batches_sent, load.events_sent, load.events_ok) == (0, 0, 0)
    # every due delivery was attempted and failed without a byte written
    assert load.events_failed == load.events_unsent == hosts.events_due
    assert hosts.events_held == 0 and hosts.hosts_delivering == 0
    assert load.error_ratio == 1.0
    assert all(row.in_flight == 0 for row in load.timeline)


async def test_hosts_that_cannot_connect_send_nothing_and_the_run_fails_saying_so() -> None:
    url = f"http://127.0.0.1:{_refused_port()}/wsman/events"
    engine = _engine(HostsEngine, url)
    load = await asyncio.wait_for(engine.run(), 30)
    _nothing_was_sent(load)
    assert load.hosts is not None and load.hosts.connect_failures == HOSTS
    assert list(load.errors) == [errors.CONNECTION_REFUSED]
    verdict = judge(_settings(url), load, None)
    assert not verdict.passed
    assert verdict.reasons[0] == (f"no host sent a delivery (connection_refused x{load.batches_failed});"
                                  f" {HOSTS} of {HOSTS} hosts could not connect before the load")
    assert [j.measured for j in verdict.thresholds if j.name == "error_ratio"] == [1.0]
    h = load.hosts
    assert hosts_lines(load)[1:3] == [
        f"Simulated hosts: {HOSTS} (0 connections opened, 0 hosts delivered)",
        f"  Deliveries: {h.full_deliveries} full (10 events), {h.timed_deliveries} on max latency (0.2 s, fewer events)",
    ]
    assert (f"Events due in the plan: {h.events_due}; sent: 0; failed unsent (no connection): {h.events_due};"
            " still held at their hosts when the window closed: 0") in hosts_lines(load)[3]


def _no_subscription_app() -> web.Application:
    """A subscription manager that refuses every Enumerate."""

    async def manager(_req: web.Request) -> web.Response:
        return web.Response(status=503, text="no subscriptions today")

    app = web.Application()
    app.router.add_post("/wsman/SubscriptionManager/WEC", manager)
    return app


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/wsman/SubscriptionManager/WEC"
    finally:
        await runner.cleanup()


async def test_wsman_hosts_that_never_enumerate_send_nothing_and_the_load_does_not_start() -> None:
    """Every Enumerate refused: after its backoff no host holds a subscription, so the load never
    starts (issue 20 §4) and the engine says why in one line; nothing was sent."""
    async with _serve(_no_subscription_app()) as url:
        engine = _engine(WsmanHostsEngine, url)
        assert isinstance(engine, WsmanHostsEngine)
        engine.enumerate_backoff = Backoff(first_s=0.01, factor=2.0, cap_s=0.05, retries=2)
        load = await asyncio.wait_for(engine.run(), 30)
    assert (load.batches_sent, load.events_sent, load.events_ok) == (0, 0, 0)
    assert load.hosts is not None and load.hosts.hosts_delivering == 0 and load.hosts.connect_failures == HOSTS
    assert load.wsman is not None and load.wsman.envelopes == 0 and load.wsman.enumerations == 0
    assert engine.unavailable is not None and f"by {HOSTS} hosts" in engine.unavailable
    assert f"http_503 x{3 * HOSTS}" in engine.unavailable


async def test_wsman_a_refused_notify_to_sends_nothing() -> None:
    """Enumerated, but NotifyTo refuses connections: the envelopes never went out. Each host's first
    one failed after its ConnectionRetry retries, its subscription expired, and with none left the
    run stopped there (issue 20 §4)."""
    dead = f"http://127.0.0.1:{_refused_port()}/wsman/subscriptions/X"

    async def manager(req: web.Request) -> web.Response:
        msg = parse.request(parse.decode(await req.read()), with_events=False)
        spec = envelope.SubscriptionSpec("X", "uuid:V1", dead, retry_s=0.01)
        return web.Response(body=envelope.encode(envelope.enumerate_response(spec, relates_to=msg.message_id,
                                                                             machine="x")))

    app = web.Application()
    app.router.add_post("/wsman/SubscriptionManager/WEC", manager)
    async with _serve(app) as url:
        engine = _engine(WsmanHostsEngine, url)
        load = await asyncio.wait_for(engine.run(), 30)
    assert (load.batches_sent, load.events_sent, load.events_ok) == (0, 0, 0)
    assert load.events_failed == load.events_unsent > 0
    assert load.hosts is not None and load.hosts.hosts_delivering == 0
    assert load.wsman is not None and load.wsman.enumerations == HOSTS
    assert load.errors[errors.CONNECTION_REFUSED].batches == HOSTS  # each host's first delivery
    assert set(load.errors) <= {errors.CONNECTION_REFUSED, errors.NO_SUBSCRIPTION}
    assert load.aborted is not None and load.aborted.startswith("no host holds a subscription")
