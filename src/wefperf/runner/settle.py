"""After the load: wait for the server's count, check S3 once the flush window has passed, take the
final stats. Each step can be given up by a stop; the result says where (`stopped_in`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import aiohttp

from ..config.settings import Settings
from ..load.engine import LoadEngine
from ..load.hosts import HostsEngine
from ..model import LoadSummary
from ..observe.counted import final_read, take_final, wait_for_processing
from ..observe.restarts import RestartWatch, unseen_note
from ..observe.stats import PrometheusStats, StatsReader, StatsSampler, StatsSnapshot
from ..payload import PayloadPool
from ..payload.hosts import HostPayload
from ..wording import plural
from .beside import is_set, unless_stopped
from .outcome import RunContext
from .reporter import RunReporter

if TYPE_CHECKING:
    from ..verify import Numbering

# S3 files appear one flush interval after the last event; allow for upload time on top.
FLUSH_MARGIN_S = 15.0


@dataclass(frozen=True)
class Observer:
    """How the run reads the collector: its session, its stats reader, the sampler that ran beside the
    load, the restart watch and the baseline read before it."""

    session: aiohttp.ClientSession
    stats: StatsReader
    sampler: StatsSampler
    watch: RestartWatch
    baseline: StatsSnapshot | None


@dataclass(frozen=True)
class Settled:
    load: LoadSummary  # marked interrupted when a stop came while waiting
    s3: Any
    stopped_in: str | None


async def settle(ctx: RunContext, engine: LoadEngine | HostsEngine, load: LoadSummary, obs: Observer,
                 stop: asyncio.Event | None) -> Settled:
    """The server's count, the S3 check, the final stats: `ctx.server` is complete afterwards."""
    settings, rep, server = ctx.settings, ctx.rep, ctx.server
    s3 = None
    final: StatsSnapshot | None = None
    stopped_in = "load" if load.interrupted else None
    if not load.interrupted:
        rep.line("")
        rep.line("Waiting for event processing to complete...")
        rep.waiting("count", settings.processing_wait_secs)
        final = await unless_stopped(
            wait_for_processing(obs.session, settings, obs.stats, obs.baseline, load.events_ok, rep.count_waiting,
                                obs.sampler), stop
        )
        stopped_in = "waiting for the server's count" if is_set(stop) else None
        if settings.verify_s3 and settings.segment:
            rep.line("S3 verification: once for the whole run, after the segments are merged"
                     " (`wefperf merge --verify-s3`, or the --processes parent)")
        elif settings.verify_s3 and not is_set(stop):
            rep.line("Waiting for S3 parquet file flush (parquet files may take time to write)...")
            rep.waiting("s3", settings.flush_interval_secs * 2 + FLUSH_MARGIN_S)
            numbering = _numbering(ctx.pool, engine, load)
            s3 = await unless_stopped(_verify(settings, ctx.run_id, numbering, load, ctx.started_at, rep), stop)
            stopped_in = "verifying S3" if is_set(stop) else None
        if is_set(stop):
            # Ctrl-C while waiting: the load is complete, the checks after it are not.
            rep.line("Interrupted while waiting: S3 verification skipped, writing partial results")
            load = replace(load, interrupted=True)
            s3 = None
    if final is None or s3 is not None or load.interrupted:
        final, final_note = await final_read(obs.session, obs.stats, obs.sampler)
        if final is None and final_note and obs.baseline is not None:
            server.notes.append(final_note)
    if isinstance(obs.stats, PrometheusStats) and obs.stats.counter.resets:
        server.notes.append(
            f"{settings.stats_metric} fell {plural(obs.stats.counter.resets, 'time')} during the run (a collector"
            " restart?); counted through each fall as Prometheus' increase() does"
        )
    if engine.recorder is not None:
        server.restarts = obs.watch.restarts(engine.recorder.start, engine.recorder.reach.spans())
    if final is not None:
        take_final(server, final, obs.baseline if obs.stats.per_type else None)
    if obs.baseline is not None:
        server.baseline_per_type = dict(obs.baseline.per_type)
    unseen = unseen_note(server.restarts, load.events_ok, server.events_received)
    if unseen:
        server.notes.append(unseen)
    if isinstance(engine, HostsEngine):
        server.expected_per_type = dict(engine.expected_types())
    else:
        assert isinstance(ctx.pool, PayloadPool)
        server.expected_per_type = dict(ctx.pool.segment_types(load.batches_sent, settings.segment_of,
                                                               load.failed_ranges))
    return Settled(load, s3, stopped_in)


def _numbering(pool: PayloadPool | HostPayload, engine: LoadEngine | HostsEngine, load: LoadSummary) -> Numbering:
    """Which events the run sent, numbered densely, with each one's type: what the S3 accounting needs."""
    from ..verify import Numbering

    if isinstance(engine, HostsEngine):
        assert isinstance(pool, HostPayload)
        return Numbering.of_hosts(pool, engine.delivery_sizes(), engine.partial)
    assert isinstance(pool, PayloadPool)
    return Numbering.of_pool(pool, load.batches_sent)


async def _verify(
    settings: Settings, run_id: str, numbering: Numbering, load: LoadSummary, started: datetime, rep: RunReporter
) -> Any:
    from ..verify import VerifyOptions, run_dates, verify_s3

    wait_secs = settings.flush_interval_secs * 2 + FLUSH_MARGIN_S
    options = VerifyOptions(
        endpoint=settings.s3_endpoint,
        bucket=settings.s3_bucket,
        access_key=settings.aws_access_key_id.get_secret_value(),
        secret_key=settings.aws_secret_access_key.get_secret_value(),
        event_types=[str(event_id) for event_id in numbering.sent_types()],
        # Files flushed during the wait may land after midnight UTC, and a collector's clock may be behind.
        dates=run_dates(started, datetime.now(timezone.utc) + timedelta(seconds=wait_secs)),
        max_file_size_bytes=int(settings.max_file_size_mb * 1024 * 1024),
        run_id=run_id,
        batch_size=numbering.width,
        sent_batches=load.batches_sent,
        failed_ranges=list(load.failed_ranges),
        numbering=numbering,
        wait_secs=wait_secs,
        settle_secs=settings.flush_interval_secs,  # a later flush may still write a duplicate
    )
    return await verify_s3(options, progress=rep.s3_waiting)
