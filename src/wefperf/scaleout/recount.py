"""The server's count for a run of several segments: wait for the whole run, then read it again.

Each segment waits only until the server has counted as many events as it acknowledged itself,
and the server's count holds every segment's events, so a segment stops waiting at about 1/N
of the run (issue 19). Whoever sees the whole run (the `--processes` parent, `wefperf merge`)
waits here for all the acknowledged events, as a one-process run does, with the runner's own
polling loop and final read.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import aiohttp

from ..config.settings import Settings
from ..model import ServerStats
from ..observe.counted import take_final, wait_for_processing
from ..observe.stats import StatsSnapshot, stats_reader


def observer_ssl(settings: Settings) -> ssl.SSLContext | bool:
    """The TLS context the run's observer (health, stats) used: over WS-Man https, its own client certificate."""
    from ..wsman.tls import collector_context, host_contexts

    if settings.protocol != "wsman":
        return collector_context(verify=settings.tls_verify, ca_file=settings.tls_ca)

    return host_contexts(
        url=settings.subscription_manager_url, names=[], verify=settings.tls_verify, ca_file=settings.tls_ca,
        client_cert=settings.client_cert, client_key=settings.client_key, client_ca_cert=settings.client_ca_cert,
        client_ca_key=settings.client_ca_key, cache=settings.client_cert_cache,
    )[1]


async def recount(settings: Settings, server: ServerStats, acked: int,
                  on_poll: Callable[[int, int], None] | None = None) -> bool:
    """Wait (up to the processing wait) for the server to count `acked` events over the run's baseline,
    and take that read as the run's final count. False when there is no baseline or no read.

    The count only grows during a run, so a read below the one recorded (a Prometheus counter
    reset that a fresh reader cannot see) leaves the recorded figures alone.
    """
    if server.baseline_total is None:
        return False
    baseline = StatsSnapshot(server.baseline_total, dict(server.baseline_per_type))
    stats = stats_reader(settings.stats_format, settings.wef_stats_endpoint, settings.stats_metric)
    context = await asyncio.to_thread(observer_ssl, settings)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4, ssl=context), trust_env=True) as obs:
        final = await wait_for_processing(obs, settings, stats, baseline, acked, on_poll)
    if final is None:
        return False
    if server.final_total is not None and final.total < server.final_total:
        return False
    take_final(server, final, baseline if stats.per_type else None)
    return True


def short(server: ServerStats, acked: int) -> bool:
    """The recorded count (baseline known) is missing, or below the acknowledged events."""
    received = server.events_received
    return server.baseline_total is not None and (received is None or received < acked)
