"""The phases of a run, in order. The only module that knows the order.

build (build.py) → health, S3 bucket, baseline stats (ready.py) → load, with the sampler, the stop
watcher, the guard and the progress feed beside it (beside.py) → the server's count, the S3 check,
the final stats (settle.py) → verdict and reports (outcome.py).
A stop request ends whichever phase is running; the result says which (`stopped_in`).
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from datetime import datetime, timezone

import aiohttp

from ..config.settings import Settings
from ..load.engine import LoadEngine
from ..load.hosts import HostsEngine
from ..load.wsman_hosts import WsmanHostsEngine
from ..model import Deliveries, LoadSummary, RunResult, SegmentInfo, ShardData
from ..observe.stats import StatsSampler, stats_reader
from ..payload import new_run_id
from ..payload.hosts import HostPayload
from ..wsman.certs import CertError
from ..wsman.tls import collector_context
from .beside import feed, guard, watch_stop
from .build import EngineOptions, build_payload, make_engine, schedule_for, wsman_tls
from .outcome import RunContext
from .ready import Ready, get_ready
from .reporter import Reporter, RunReporter
from .segments import check_start_at, shared_seed
from .settle import Observer, settle


async def run_test(
    settings: Settings,
    *,
    reporter: RunReporter | None = None,
    stop: asyncio.Event | None = None,
    profile: str | None = None,
    run_id: str | None = None,
    freeze_gc: bool = False,
    seed: int | None = None,
) -> RunResult:
    """Run one test and return its result; set `stop` to end any phase early (partial result).

    `freeze_gc` freezes the cyclic GC's view of the process during the load: for the CLI only.
    `seed` fixes the payload (and the simulated hosts' arrivals) over PERF_TEST_SEED.
    """
    rep: RunReporter = reporter or Reporter()
    check_start_at(settings)
    run_id = run_id or settings.run_id or new_run_id()
    segmented = bool(settings.segment)
    rep.banner(settings, run_id)
    if segmented:
        index, count = settings.segment_of
        rep.line(f"Segment {index} of {count} (0-based): batches or hosts numbered {index} modulo"
                 f" {count}; the run's thresholds are judged when the segments are merged")
    # Recorded in the results, so `wefperf verify --results` can rebuild which event is which type.
    # Segments of one run must build the same payload: without a seed they derive it from the run id.
    if seed is None:
        seed = settings.seed or (shared_seed(run_id) if segmented else secrets.randbits(32))
    schedule = schedule_for(settings)
    payload = await build_payload(settings, run_id, seed, schedule)
    ctx = RunContext(settings, rep, profile, run_id, datetime.now(timezone.utc), payload.pool)
    stats = stats_reader(settings.stats_format, settings.wef_stats_endpoint, settings.stats_metric)
    if settings.stats_format == "prometheus":
        ctx.server.source = {"format": "prometheus", "metric": settings.stats_metric,
                             "url": settings.wef_stats_endpoint}
    host_ssl: list[ssl.SSLContext | bool] = []
    observer_ssl = collector_context(verify=settings.tls_verify, ca_file=settings.tls_ca)
    if settings.protocol == "wsman":
        assert isinstance(payload.pool, HostPayload)
        try:
            host_ssl, observer_ssl = await asyncio.to_thread(wsman_tls, settings, payload.pool)
        except CertError as exc:
            rep.error(str(exc))
            return ctx.unavailable(str(exc))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4, ssl=observer_ssl),
                                     trust_env=True) as session:
        ready = await get_ready(ctx, session, stats, stop)
        if not isinstance(ready, Ready):
            return ready
        start_at = _shared_start(settings, rep)
        rep.line("")
        rep.line("Sending events...")
        engine, sender = make_engine(settings, payload, schedule, EngineOptions(
            on_error=rep.error, on_line=rep.line, freeze_gc=freeze_gc, start_at=start_at,
            observer_ssl=observer_ssl, host_ssl=host_ssl,
        ))

        def to_timeline(when: float, delta: int) -> None:
            if engine.recorder is not None:
                engine.recorder.server_sample(when, delta)

        def acked() -> int:
            return engine.recorder.events_ok if engine.recorder is not None else 0

        sampler = StatsSampler(session, stats, settings.stats_interval_secs, to_timeline, watch=ready.watch,
                               acked=acked)
        load = await _load(settings, rep, engine, sampler, ready, stop)
        if isinstance(engine, WsmanHostsEngine) and engine.unavailable:
            # No host could subscribe: the load never started; one line says why (exit 1).
            rep.error(f"wefperf: {engine.unavailable}")
            return ctx.unavailable(engine.unavailable, load=load, sender=sender)
        ctx.server.sampler_samples = sampler.samples
        _say_how_the_load_ended(settings, rep, load)
        settled = await settle(ctx, engine, load, Observer(session, stats, sampler, ready.watch, ready.baseline),
                               stop)
    shard = None
    deliveries = None
    sizes = engine.delivery_sizes() if isinstance(engine, HostsEngine) else None
    partial = dict(engine.partial) if isinstance(engine, HostsEngine) else {}
    if segmented:
        index, count = settings.segment_of
        shard = ShardData(SegmentInfo(index, count, settings.start_at or None), sizes, partial)
    elif sizes is not None:
        deliveries = Deliveries(sizes, partial)  # so `wefperf verify --results` can number its events later
    return ctx.finish(settled.load, s3=settled.s3, sender=sender, stopped_in=settled.stopped_in, shard=shard,
                      deliveries=deliveries)


def _shared_start(settings: Settings, rep: RunReporter) -> float | None:
    """The shared plan start (--start-at) on this process's clock; the engines wait for it once connected."""
    if not settings.start_at:
        return None
    start_at = time.perf_counter() + (settings.start_at - time.time())
    ahead = start_at - time.perf_counter()
    if ahead > 0:
        rep.line(f"Waiting {ahead:.1f} s for the shared start (--start-at {settings.start_at:.3f})")
    else:
        rep.line(f"Started {-ahead:.3f} s after the shared start (--start-at {settings.start_at:.3f}):"
                 " intended times stay on the shared plan, so the delay shows as schedule lag")
    return start_at


async def _load(settings: Settings, rep: RunReporter, engine: LoadEngine | HostsEngine, sampler: StatsSampler,
                ready: Ready, stop: asyncio.Event | None) -> LoadSummary:
    """The load, with what runs beside it for exactly as long: the sampler, the stop watcher, the
    --abort-on-fail guard and the progress feed."""
    async with asyncio.TaskGroup() as beside:
        sampling = beside.create_task(sampler.run(ready.baseline))
        watching = beside.create_task(watch_stop(stop, engine)) if stop is not None else None
        guarding = beside.create_task(guard(settings, engine)) if settings.abort_on_fail else None
        feeding = beside.create_task(feed(rep, engine, settings.progress_secs))
        rep.load_started()
        try:
            load = await engine.run()
        finally:
            for task in (sampling, watching, guarding, feeding):
                if task is not None:
                    task.cancel()
    if rep.live and engine.recorder is not None:
        rep.snapshot(engine.recorder.snapshot(engine.clock()))  # the load's last state
    rep.load_ended()
    return load


def _say_how_the_load_ended(settings: Settings, rep: RunReporter, load: LoadSummary) -> None:
    rep.line("")
    if load.interrupted:
        rep.line(f"Interrupted after {load.window_s:.1f} seconds of load: the run was cut short;"
                 " in-flight batches drained, writing partial results")
    elif load.aborted:
        rep.line(f"Aborted after {load.window_s:.1f} seconds of load: {load.aborted}")
    elif load.timed_out:
        rep.line(f"Timeout reached after {settings.timeout_secs:g} seconds")
    elif settings.duration_mode:
        rep.line(f"Duration completed: {settings.duration_secs:g} seconds")
    else:
        rep.line(f"All {load.events_sent:,} events sent")
