"""Before the load, against the collector: its /health, the S3 bucket, the baseline count.

Any of them can end the run before anything is sent (a stop, an unreachable collector, a wrong bucket
or metric): then the run's result comes back instead of a `Ready`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from ..model import ExitCode, RunResult
from ..observe.prometheus import MetricError
from ..observe.restarts import RestartWatch
from ..observe.stats import ServerUnavailable, StatsReader, StatsSnapshot, try_read, wait_for_health
from ..observe.tlsdiag import TlsSetup
from .beside import unless_stopped
from .outcome import RunContext
from .preflight import check_s3


@dataclass(frozen=True)
class Ready:
    baseline: StatsSnapshot | None  # None: the stats could not be read (the note says why)
    watch: RestartWatch


async def get_ready(ctx: RunContext, session: aiohttp.ClientSession, stats: StatsReader,
                    stop: asyncio.Event | None) -> Ready | RunResult:
    settings, rep, server = ctx.settings, ctx.rep, ctx.server
    try:
        waited = await unless_stopped(
            wait_for_health(session, settings.health_url, settings.health_timeout_secs, settings.health_setting,
                            TlsSetup(bool(settings.client_cert or settings.client_ca_cert),
                                     settings.protocol == "wsman")), stop
        )
    except ServerUnavailable as exc:
        rep.error(str(exc))
        return ctx.unavailable(str(exc))
    if waited is None:
        return ctx.stopped_before_load("waiting for the WEF server's /health")
    rep.line("WEF server is healthy")
    # A wrong S3 endpoint or bucket found now, not after the load (after the health check: in compose,
    # a healthy collector has found its bucket, so S3 is up).
    checked = await unless_stopped(check_s3(settings), stop)
    if checked is None:
        return ctx.stopped_before_load("checking S3")
    if checked.problem:
        rep.error(f"wefperf: configuration error: {checked.problem}")
        return ctx.unavailable(checked.problem, ExitCode.USAGE)
    for line in checked.checked:
        rep.line(line)
    try:
        read = await unless_stopped(try_read(session, stats), stop)
    except MetricError as exc:
        # A wrong metric type or a URL without Prometheus text: no load, a configuration error.
        rep.error(f"wefperf: configuration error: {exc}")
        return ctx.unavailable(str(exc), ExitCode.USAGE)
    if read is None:
        return ctx.stopped_before_load("reading the baseline stats")
    baseline, note = read
    watch = RestartWatch()
    if baseline is not None:
        watch.baseline = baseline.total
        watch.read_ok(time.perf_counter(), baseline.total, stats.resets, 0)
        server.baseline_total = baseline.total
        rep.line(f"Baseline event count: {baseline.total:,}")
        if baseline.note:
            server.notes.append(baseline.note)
    elif note:
        server.notes.append(note)
        rep.error(f"Warning: {note}; the server-side counts will be missing")
    return Ready(baseline, watch)
