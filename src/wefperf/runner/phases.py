"""The phases of a run, in order. The only module that knows the order.

health → baseline stats → load (sampler beside it) → drain → wait for the server's count
→ S3 verification (polls through the flush window) → final stats → verdict → reports.
A stop request ends whichever phase is running; the result says which (`stopped_in`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Coroutine, TypeVar

import aiohttp

from ..config.limits import ensure_open_files_for_hosts
from ..config.settings import Settings
from ..judge.thresholds import Measures
from ..judge.thresholds import judge as judge_thresholds
from ..judge.verdict import judge
from ..load.arrivals import HostArrivals
from ..load.engine import LoadEngine, make_senders
from ..load.hosts import HostsEngine, build_hosts
from ..load.scheduler import Schedule
from ..load.wsman_hosts import WsmanHostsEngine
from ..measure.recorder import Recorder
from ..model import Deliveries, ExitCode, LoadSummary, RunResult, S3Figures, SegmentInfo, ServerStats, ShardData
from ..observe.counted import final_read, take_final, wait_for_processing
from ..observe.prometheus import MetricError
from ..observe.restarts import RestartWatch, unseen_note
from ..observe.stats import (
    PrometheusStats,
    ServerUnavailable,
    StatsSampler,
    StatsSnapshot,
    stats_reader,
    try_read,
    wait_for_health,
)
from ..observe.tlsdiag import TlsSetup
from ..payload import PayloadPool, build_pool, new_run_id
from ..payload.hosts import HostPayload
from ..wording import plural
from ..wsman.certs import CertError
from ..wsman.tls import collector_context, host_contexts
from .preflight import check_s3
from .reporter import Reporter, RunReporter, progress_info
from .segments import check_start_at, judged_alone, shared_seed

if TYPE_CHECKING:
    from ..verify import Numbering

T = TypeVar("T")

# S3 files appear one flush interval after the last event; allow for upload time on top.
FLUSH_MARGIN_S = 15.0


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
    segment = settings.segment_of
    segmented = bool(settings.segment)
    rep.banner(settings, run_id)
    if segmented:
        rep.line(f"Segment {segment[0]} of {segment[1]} (0-based): batches or hosts numbered {segment[0]} modulo"
                 f" {segment[1]}; the run's thresholds are judged when the segments are merged")
    # Recorded in the results, so `wefperf verify --results` can rebuild which event is which type.
    # Segments of one run must build the same payload: without a seed they derive it from the run id.
    if seed is None:
        seed = settings.seed or (shared_seed(run_id) if segmented else secrets.randbits(32))
    schedule = Schedule.for_run(
        target_eps=settings.target_eps,
        batch_size=settings.batch_size,
        total_events=settings.total_events,
        duration_s=settings.duration_secs,
        timeout_s=settings.timeout_secs,
        stages=settings.stages,
    )
    hosts: tuple[HostPayload, list[HostArrivals]] | None = None
    pool: PayloadPool | HostPayload
    if settings.hosts:
        ensure_open_files_for_hosts(settings.hosts)  # before anything is built: ConfigError names the limit
        hosts = await asyncio.to_thread(
            build_hosts, run_id=run_id, seed=seed, hosts=settings.hosts, max_items=settings.max_items,
            schedule=schedule, total_events=settings.total_events,
            constant_eps=None if settings.stages else settings.target_eps, event_type=settings.event_type,
            variants=settings.payload_variants, segment=segment,
        )
        pool = hosts[0]
    else:
        pool = await asyncio.to_thread(
            build_pool,
            seed=seed,
            run_id=run_id,
            batch_size=settings.batch_size,
            event_type=settings.event_type,
            total_events=None if settings.duration_mode else settings.total_events,
            variants=settings.payload_variants,
        )
    started_at = datetime.now(timezone.utc)
    server = ServerStats()
    stats = stats_reader(settings.stats_format, settings.wef_stats_endpoint, settings.stats_metric)
    if settings.stats_format == "prometheus":
        server.source = {"format": "prometheus", "metric": settings.stats_metric, "url": settings.wef_stats_endpoint}

    def stopped_before_load(phase: str) -> RunResult:
        rep.line(f"Interrupted while {phase}: nothing was sent, writing partial results")
        load = replace(_empty_load(), interrupted=True)
        return _result(settings, profile, run_id, started_at, pool, load, server, None, "", None, rep,
                       stopped_in=phase, show=False)

    host_ssl: list[ssl.SSLContext | bool] = []
    observer_ssl = collector_context(verify=settings.tls_verify, ca_file=settings.tls_ca)
    if settings.protocol == "wsman":
        assert hosts is not None
        try:
            host_ssl, observer_ssl = await asyncio.to_thread(_wsman_tls, settings, hosts[0])
        except CertError as exc:
            rep.error(str(exc))
            return _result(settings, profile, run_id, started_at, pool, _empty_load(), server, None, "", str(exc), rep,
                           show=False)
    connector = aiohttp.TCPConnector(limit=4, ssl=observer_ssl)
    async with aiohttp.ClientSession(connector=connector, trust_env=True) as obs:
        try:
            waited = await unless_stopped(
                wait_for_health(obs, settings.health_url, settings.health_timeout_secs, settings.health_setting,
                                TlsSetup(bool(settings.client_cert or settings.client_ca_cert),
                                         settings.protocol == "wsman")), stop
            )
        except ServerUnavailable as exc:
            rep.error(str(exc))
            return _result(settings, profile, run_id, started_at, pool, _empty_load(), server, None, "", str(exc), rep,
                           show=False)
        if waited is None:
            return stopped_before_load("waiting for the WEF server's /health")
        rep.line("WEF server is healthy")
        # A wrong S3 endpoint or bucket found now, not after the load (after the health check: in compose,
        # a healthy collector has found its bucket, so S3 is up).
        checked = await unless_stopped(check_s3(settings), stop)
        if checked is None:
            return stopped_before_load("checking S3")
        if checked.problem:
            rep.error(f"wefperf: configuration error: {checked.problem}")
            return _result(settings, profile, run_id, started_at, pool, _empty_load(), server, None, "",
                           checked.problem, rep, show=False, unavailable_code=ExitCode.USAGE)
        for line in checked.checked:
            rep.line(line)
        try:
            read = await unless_stopped(try_read(obs, stats), stop)
        except MetricError as exc:
            # A wrong metric type or a URL without Prometheus text: no load, a configuration error.
            rep.error(f"wefperf: configuration error: {exc}")
            return _result(settings, profile, run_id, started_at, pool, _empty_load(), server, None, "", str(exc), rep,
                           show=False, unavailable_code=ExitCode.USAGE)
        if read is None:
            return stopped_before_load("reading the baseline stats")
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
        start_at = None
        if settings.start_at:
            # The shared plan start on this process's clock; the engines wait for it once connected.
            start_at = time.perf_counter() + (settings.start_at - time.time())
            ahead = start_at - time.perf_counter()
            if ahead > 0:
                rep.line(f"Waiting {ahead:.1f} s for the shared start (--start-at {settings.start_at:.3f})")
            else:
                rep.line(f"Started {-ahead:.3f} s after the shared start (--start-at {settings.start_at:.3f}):"
                         " intended times stay on the shared plan, so the delay shows as schedule lag")
        rep.line("")
        rep.line("Sending events...")

        window_secs = max(1, round(settings.threshold_window_secs)) if settings.abort_on_fail else 0
        engine: LoadEngine | HostsEngine
        if hosts is not None and settings.protocol == "wsman":
            engine = WsmanHostsEngine(
                payload=hosts[0], arrivals=hosts[1], url=settings.subscription_manager_url,
                max_items=settings.max_items, max_latency_s=settings.max_latency_secs,
                plan_end_s=schedule.duration_s, timeout_s=settings.timeout_secs,
                request_timeout_s=settings.request_timeout_secs, ssl_for=host_ssl.__getitem__,
                drain_timeout_s=settings.drain_timeout_secs, on_error=rep.error,
                freeze_gc=freeze_gc, window_secs=window_secs,
                host_indices=list(range(segment[0], settings.hosts, segment[1])), segment=segment,
                start_at=start_at, second_histograms=segmented, refresh_s=settings.refresh_secs,
                items_from_subscription="max_items" not in settings.given,
                latency_from_subscription="max_latency_secs" not in settings.given,
                on_line=rep.line,
            )
            sender_name = engine.name
        elif hosts is not None:
            engine = HostsEngine(
                payload=hosts[0], arrivals=hosts[1], url=settings.events_url, max_items=settings.max_items,
                max_latency_s=settings.max_latency_secs, plan_end_s=schedule.duration_s,
                timeout_s=settings.timeout_secs, request_timeout_s=settings.request_timeout_secs,
                drain_timeout_s=settings.drain_timeout_secs, on_error=rep.error,
                freeze_gc=freeze_gc,
                window_secs=window_secs,
                host_indices=list(range(segment[0], settings.hosts, segment[1])), segment=segment,
                start_at=start_at, second_histograms=segmented,
            )
            sender_name = engine.name
        else:
            assert isinstance(pool, PayloadPool)
            senders = make_senders(
                settings.sender, settings.events_url, pool, settings.request_timeout_secs, settings.concurrency,
                observer_ssl,
            )
            sender_name = senders.name
            engine = LoadEngine(
                pool=pool,
                senders=senders,
                schedule=schedule,
                concurrency=settings.concurrency,
                drain_timeout_s=settings.drain_timeout_secs,
                on_error=rep.error,
                freeze_gc=freeze_gc,
                window_secs=window_secs,
                segment=segment,
                start_at=start_at,
                second_histograms=segmented,
            )

        def to_timeline(when: float, delta: int) -> None:
            if engine.recorder is not None:
                engine.recorder.server_sample(when, delta)

        def acked() -> int:
            return engine.recorder.events_ok if engine.recorder is not None else 0

        sampler = StatsSampler(obs, stats, settings.stats_interval_secs, to_timeline, watch=watch, acked=acked)
        async with asyncio.TaskGroup() as beside:
            # The sampler and the stop watcher live exactly as long as the load phase.
            sampling = beside.create_task(sampler.run(baseline))
            watching = beside.create_task(_watch(stop, engine)) if stop is not None else None
            guarding = beside.create_task(_guard(settings, engine)) if settings.abort_on_fail else None
            feeding = beside.create_task(_feed(rep, engine, settings.progress_secs))
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
        if isinstance(engine, WsmanHostsEngine) and engine.unavailable:
            # No host could subscribe: the load never started; one line says why (exit 1).
            rep.error(f"wefperf: {engine.unavailable}")
            return _result(settings, profile, run_id, started_at, pool, load, server, None, sender_name,
                           engine.unavailable, rep, show=False)
        server.sampler_samples = sampler.samples
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

        s3 = None
        final: StatsSnapshot | None = None
        stopped_in = "load" if load.interrupted else None
        if not load.interrupted:
            rep.line("")
            rep.line("Waiting for event processing to complete...")
            rep.waiting("count", settings.processing_wait_secs)
            final = await unless_stopped(
                wait_for_processing(obs, settings, stats, baseline, load.events_ok, rep.count_waiting, sampler), stop
            )
            stopped_in = "waiting for the server's count" if _is_set(stop) else None
            if settings.verify_s3 and segmented:
                rep.line("S3 verification: once for the whole run, after the segments are merged"
                         " (`wefperf merge --verify-s3`, or the --processes parent)")
            elif settings.verify_s3 and not _is_set(stop):
                rep.line("Waiting for S3 parquet file flush (parquet files may take time to write)...")
                rep.waiting("s3", settings.flush_interval_secs * 2 + FLUSH_MARGIN_S)
                numbering = _numbering(pool, engine, load)
                s3 = await unless_stopped(_verify(settings, pool.run_id, numbering, load, started_at, rep), stop)
                stopped_in = "verifying S3" if _is_set(stop) else None
            if _is_set(stop):
                # Ctrl-C while waiting: the load is complete, the checks after it are not.
                rep.line("Interrupted while waiting: S3 verification skipped, writing partial results")
                load = replace(load, interrupted=True)
                s3 = None
        if final is None or s3 is not None or load.interrupted:
            final, final_note = await final_read(obs, stats, sampler)
            if final is None and final_note and baseline is not None:
                server.notes.append(final_note)
        if isinstance(stats, PrometheusStats) and stats.counter.resets:
            server.notes.append(
                f"{settings.stats_metric} fell {plural(stats.counter.resets, 'time')} during the run (a collector"
                " restart?); counted through each fall as Prometheus' increase() does"
            )
        if engine.recorder is not None:
            server.restarts = watch.restarts(engine.recorder.start, engine.recorder.reach.spans())
        if final is not None:
            take_final(server, final, baseline if stats.per_type else None)
        if baseline is not None:
            server.baseline_per_type = dict(baseline.per_type)
        unseen = unseen_note(server.restarts, load.events_ok, server.events_received)
        if unseen:
            server.notes.append(unseen)
        if isinstance(engine, HostsEngine):
            server.expected_per_type = dict(engine.expected_types())
        else:
            assert isinstance(pool, PayloadPool)
            server.expected_per_type = dict(pool.segment_types(load.batches_sent, segment, load.failed_ranges))
    shard = None
    deliveries = None
    sizes = engine.delivery_sizes() if isinstance(engine, HostsEngine) else None
    partial = dict(engine.partial) if isinstance(engine, HostsEngine) else {}
    if segmented:
        shard = ShardData(SegmentInfo(segment[0], segment[1], settings.start_at or None), sizes, partial)
    elif sizes is not None:
        deliveries = Deliveries(sizes, partial)  # so `wefperf verify --results` can number its events later
    return _result(settings, profile, run_id, started_at, pool, load, server, s3, sender_name, None, rep,
                   stopped_in=stopped_in, shard=shard, deliveries=deliveries)


def _wsman_tls(settings: Settings, payload: HostPayload) -> tuple[list[ssl.SSLContext | bool], ssl.SSLContext | bool]:
    """Every host's TLS context (minted certificates included), before the clock starts."""
    return host_contexts(
        url=settings.subscription_manager_url, names=[n.decode() for n in payload.names],
        verify=settings.tls_verify, ca_file=settings.tls_ca, client_cert=settings.client_cert,
        client_key=settings.client_key, client_ca_cert=settings.client_ca_cert,
        client_ca_key=settings.client_ca_key, cache=settings.client_cert_cache,
    )


def _is_set(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()


async def unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event | None) -> T | None:
    """Run a phase, but give it up (None) as soon as the user asks to stop."""
    if stop is None:
        return await work
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopper):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    return None if task.cancelled() else task.result()


async def _guard(settings: Settings, engine: LoadEngine | HostsEngine) -> None:
    """--abort-on-fail: judge the latency and error thresholds over the sliding window every second."""
    limits = settings.effective_thresholds()
    while True:
        await asyncio.sleep(1.0)
        rec = engine.recorder
        if rec is None:
            continue
        rec.tick(engine.clock())
        window = rec.window()
        if window is None:
            continue
        lat = window.latency
        seen = lat.count > 0
        figures = Measures(latency_p50_ms=lat.p50 if seen else None, latency_p99_ms=lat.p99 if seen else None,
                           latency_p999_ms=lat.p999 if seen else None, error_ratio=window.error_ratio)
        broken = [j for j in judge_thresholds(limits, figures, windowed_only=True)
                  if not j.passed and j.measured is not None]
        if broken:
            what = "; ".join(j.describe() for j in broken)
            engine.stop(interrupted=False, aborted=f"over the last {window.seconds} s, {what}")
            return


async def _feed(rep: RunReporter, engine: LoadEngine | HostsEngine, every_s: float) -> None:
    """What the user sees during the load, read from the recorder beside the senders (never by them):
    a live view's snapshot once a second, else a plain progress line every `every_s` seconds.

    One cadence in time for every mode (batch, hosts, WS-Man), however fast or slow the events go.
    """
    interval = 1.0 if rep.live else every_s
    started = time.monotonic()
    ticks = 0
    while True:
        ticks += 1
        await asyncio.sleep(max(started + ticks * interval - time.monotonic(), 0.0))
        rec = engine.recorder
        if rec is None:
            continue
        now = engine.clock()
        snap = rec.snapshot(now)
        if rep.live:
            rep.snapshot(snap)
        else:
            rep.progress(progress_info(snap, engine.remaining_s(now, snap.events_sent / max(snap.elapsed_s, 1e-9))))


async def _watch(stop: asyncio.Event, engine: LoadEngine | HostsEngine) -> None:
    await stop.wait()
    engine.stop(interrupted=True)


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


def empty_result(settings: Settings, profile: str | None, stopped_in: str) -> RunResult:
    """An interrupted run that never reached its load: for a stop during start-up."""
    load = replace(_empty_load(), interrupted=True)
    return RunResult(
        run_id="", test_name=settings.test_name, timestamp=datetime.now(timezone.utc).isoformat(), profile=profile,
        configuration=settings.public_dict(), load=load, server=ServerStats(),
        verdict=judge(settings, load, None), stopped_in=stopped_in,
    )


def refused_result(settings: Settings, profile: str | None, run_id: str, reason: str) -> RunResult:
    """A run refused before its load by a check of its configuration (exit 2): nothing was sent."""
    load = _empty_load()
    verdict = replace(judge(settings, load, None, unavailable=reason), exit_code=ExitCode.USAGE)
    return RunResult(
        run_id=run_id, test_name=settings.test_name, timestamp=datetime.now(timezone.utc).isoformat(),
        profile=profile, configuration=settings.public_dict(), load=load, server=ServerStats(), verdict=verdict,
    )


def _empty_load() -> LoadSummary:
    now = time.perf_counter()
    return Recorder(now).summary(now)


def _result(
    settings: Settings,
    profile: str | None,
    run_id: str,
    started: datetime,
    pool: PayloadPool | HostPayload,
    load: LoadSummary,
    server: ServerStats,
    s3: Any,
    sender: str,
    unavailable: str | None,
    rep: RunReporter,
    *,
    stopped_in: str | None = None,
    show: bool = True,
    shard: ShardData | None = None,
    unavailable_code: ExitCode = ExitCode.FAILED,
    deliveries: Deliveries | None = None,
) -> RunResult:
    figures = None
    if s3 is not None:
        acct = s3.accounting
        figures = S3Figures(bool(s3.passed), acct.missing if acct is not None and acct.expected is not None else None,
                            acct.duplicated if acct is not None else None)
    if shard is None and settings.segment:  # stopped or failed before the load: still a segment's results
        index, count = settings.segment_of
        shard = ShardData(SegmentInfo(index, count, settings.start_at or None))
    # A segment is judged on its own share of the plan; the run's verdict comes from the merge.
    judged = judged_alone(settings) if settings.segment else settings
    verdict = judge(judged, load, figures, server=server, unavailable=unavailable)
    if unavailable and verdict.exit_code != unavailable_code:
        verdict = replace(verdict, exit_code=unavailable_code)
    result = RunResult(
        run_id=run_id,
        test_name=settings.test_name,
        timestamp=started.isoformat(),
        profile=profile,
        configuration=settings.public_dict(),
        load=load,
        server=server,
        verdict=verdict,
        s3=s3,
        sender=sender,
        payload_build_s=pool.build_seconds,
        payload_seed=pool.seed,
        stopped_in=stopped_in,
        shard=shard,
        deliveries=deliveries,
    )
    if show:
        rep.results(result)
    return result
