"""Before the clock: the run's payload (a batch pool, or the simulated hosts and their arrivals), the
hosts' TLS contexts, and the engine that will send it. Nothing here talks to the collector."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from ..config.limits import ensure_open_files_for_hosts
from ..config.settings import Settings
from ..load.arrivals import HostArrivals
from ..load.engine import LoadEngine, make_senders
from ..load.hosts import HostsEngine, build_hosts
from ..load.scheduler import Schedule
from ..load.wsman_hosts import WsmanHostsEngine
from ..payload import PayloadPool, build_pool
from ..payload.hosts import HostPayload
from ..wsman.tls import host_contexts


@dataclass(frozen=True)
class Payload:
    """What the run sends: a batch pool, or the hosts' events with each host's arrivals."""

    pool: PayloadPool | HostPayload
    arrivals: list[HostArrivals] | None = None  # simulated hosts only


def schedule_for(settings: Settings) -> Schedule:
    return Schedule.for_run(
        target_eps=settings.target_eps,
        batch_size=settings.batch_size,
        total_events=settings.total_events,
        duration_s=settings.duration_secs,
        timeout_s=settings.timeout_secs,
        stages=settings.stages,
    )


async def build_payload(settings: Settings, run_id: str, seed: int, schedule: Schedule) -> Payload:
    """Pre-serialised before the clock, in a thread (the loop stays free for signals)."""
    if settings.hosts:
        ensure_open_files_for_hosts(settings.hosts)  # before anything is built: ConfigError names the limit
        payload, arrivals = await asyncio.to_thread(
            build_hosts, run_id=run_id, seed=seed, hosts=settings.hosts, max_items=settings.max_items,
            schedule=schedule, total_events=settings.total_events,
            constant_eps=None if settings.stages else settings.target_eps, event_type=settings.event_type,
            variants=settings.payload_variants, segment=settings.segment_of,
        )
        return Payload(payload, arrivals)
    pool = await asyncio.to_thread(
        build_pool,
        seed=seed,
        run_id=run_id,
        batch_size=settings.batch_size,
        event_type=settings.event_type,
        total_events=None if settings.duration_mode else settings.total_events,
        variants=settings.payload_variants,
    )
    return Payload(pool)


def wsman_tls(settings: Settings, payload: HostPayload) -> tuple[list[ssl.SSLContext | bool], ssl.SSLContext | bool]:
    """Every host's TLS context (minted certificates included), before the clock starts."""
    return host_contexts(
        url=settings.subscription_manager_url, names=[n.decode() for n in payload.names],
        verify=settings.tls_verify, ca_file=settings.tls_ca, client_cert=settings.client_cert,
        client_key=settings.client_key, client_ca_cert=settings.client_ca_cert,
        client_ca_key=settings.client_ca_key, cache=settings.client_cert_cache,
    )


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs, beside what it sends: decided by the run, not by the settings alone."""

    on_error: Callable[[str], None]
    on_line: Callable[[str], None]
    freeze_gc: bool
    start_at: float | None  # the shared plan start on this process's clock
    observer_ssl: ssl.SSLContext | bool
    host_ssl: list[ssl.SSLContext | bool]


def make_engine(settings: Settings, payload: Payload, schedule: Schedule,
                opts: EngineOptions) -> tuple[LoadEngine | HostsEngine, str]:
    """The engine for the run's mode (WS-Man hosts, HTTP hosts, or batches), and the sender's name."""
    segment = settings.segment_of
    segmented = bool(settings.segment)
    window_secs = max(1, round(settings.threshold_window_secs)) if settings.abort_on_fail else 0
    if payload.arrivals is not None:
        assert isinstance(payload.pool, HostPayload)
        hosts = list(range(segment[0], settings.hosts, segment[1]))
        if settings.protocol == "wsman":
            wsman = WsmanHostsEngine(
                payload=payload.pool, arrivals=payload.arrivals, url=settings.subscription_manager_url,
                max_items=settings.max_items, max_latency_s=settings.max_latency_secs,
                plan_end_s=schedule.duration_s, timeout_s=settings.timeout_secs,
                request_timeout_s=settings.request_timeout_secs, ssl_for=opts.host_ssl.__getitem__,
                drain_timeout_s=settings.drain_timeout_secs, on_error=opts.on_error,
                freeze_gc=opts.freeze_gc, window_secs=window_secs, host_indices=hosts, segment=segment,
                start_at=opts.start_at, second_histograms=segmented, refresh_s=settings.refresh_secs,
                items_from_subscription="max_items" not in settings.given,
                latency_from_subscription="max_latency_secs" not in settings.given,
                on_line=opts.on_line,
            )
            return wsman, wsman.name
        http = HostsEngine(
            payload=payload.pool, arrivals=payload.arrivals, url=settings.events_url, max_items=settings.max_items,
            max_latency_s=settings.max_latency_secs, plan_end_s=schedule.duration_s,
            timeout_s=settings.timeout_secs, request_timeout_s=settings.request_timeout_secs,
            drain_timeout_s=settings.drain_timeout_secs, on_error=opts.on_error, freeze_gc=opts.freeze_gc,
            window_secs=window_secs, host_indices=hosts, segment=segment,
            start_at=opts.start_at, second_histograms=segmented,
        )
        return http, http.name
    assert isinstance(payload.pool, PayloadPool)
    senders = make_senders(
        settings.sender, settings.events_url, payload.pool, settings.request_timeout_secs, settings.concurrency,
        opts.observer_ssl,
    )
    engine = LoadEngine(
        pool=payload.pool,
        senders=senders,
        schedule=schedule,
        concurrency=settings.concurrency,
        drain_timeout_s=settings.drain_timeout_secs,
        on_error=opts.on_error,
        freeze_gc=opts.freeze_gc,
        window_secs=window_secs,
        segment=segment,
        start_at=opts.start_at,
        second_histograms=segmented,
    )
    return engine, senders.name
