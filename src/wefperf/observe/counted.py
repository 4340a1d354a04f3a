"""The server's count after the load: wait until it counted every acknowledged event, take that read.

Used by a run's own wait (runner/phases.py) and by whoever waits for a whole run of several
segments (scaleout/recount.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from ..config.settings import Settings
from ..model import ServerStats
from .prometheus import MetricError
from .stats import StatsReader, StatsSampler, StatsSnapshot, try_read


async def final_read(
    obs: aiohttp.ClientSession, stats: StatsReader, sampler: StatsSampler | None = None,
) -> tuple[StatsSnapshot | None, str | None]:
    """The last read of the server's count; any failure, a changed metric type included, is a note.

    Through `sampler` when given, so a restart seen after the load is told to its watch too.
    """
    try:
        return await (sampler.read_once() if sampler is not None else try_read(obs, stats))
    except MetricError as exc:
        return None, str(exc)


async def wait_for_processing(
    obs: aiohttp.ClientSession, settings: Settings, stats: StatsReader, baseline: StatsSnapshot | None, acked: int,
    on_poll: Callable[[int, int], None] | None = None, sampler: StatsSampler | None = None,
) -> StatsSnapshot | None:
    """Poll the stats until the server counted every acknowledged event, or the wait runs out.

    A read that fails after good ones (a collector restarting) is tried again until the deadline.
    """
    deadline = time.monotonic() + settings.processing_wait_secs
    final: StatsSnapshot | None = None
    while True:
        final, _ = await final_read(obs, stats, sampler)
        if baseline is not None and final is None and time.monotonic() < deadline:
            # A counter appears with its first event: it may show up a little after the acks;
            # a collector that went away may be on its way back.
            await asyncio.sleep(min(settings.stats_interval_secs, 1.0))
            continue
        if baseline is None or final is None:
            return final
        if on_poll is not None:
            on_poll(final.total - baseline.total, acked)
        if final.total - baseline.total >= acked or time.monotonic() >= deadline:
            return final
        await asyncio.sleep(min(settings.stats_interval_secs, 1.0))


def take_final(server: ServerStats, final: StatsSnapshot, baseline: StatsSnapshot | None) -> None:
    """The server's figures after the load from one final read; per type when there is a typed baseline."""
    server.final_total = final.total
    server.final_per_type = dict(final.per_type)
    if baseline is not None:
        server.per_type_delta = final.delta(baseline)
