"""What runs beside the load, never in the senders' way: the stop watcher, the --abort-on-fail guard,
the progress feed, and the wrapper that gives a phase up when the user asks to stop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Coroutine, TypeVar

from ..config.settings import Settings
from ..judge.thresholds import Measures
from ..judge.thresholds import judge as judge_thresholds
from ..load.engine import LoadEngine
from ..load.hosts import HostsEngine
from .reporter import RunReporter, progress_info

T = TypeVar("T")


def is_set(stop: asyncio.Event | None) -> bool:
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


async def guard(settings: Settings, engine: LoadEngine | HostsEngine) -> None:
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


async def feed(rep: RunReporter, engine: LoadEngine | HostsEngine, every_s: float) -> None:
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


async def watch_stop(stop: asyncio.Event, engine: LoadEngine | HostsEngine) -> None:
    await stop.wait()
    engine.stop(interrupted=True)
