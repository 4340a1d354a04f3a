"""wefperf: an open-model load tester for Windows Event Forwarding collectors.

From Python (inside any running event loop; prints nothing unless asked)::

    import wefperf
    settings = wefperf.load_settings("baseline", {"wef_endpoint": "http://127.0.0.1:5985"})
    result = await wefperf.run(settings)
    assert result.passed, result.verdict.reasons

    found = await wefperf.find_capacity(wefperf.load_settings("capacity", {"wef_endpoint": "http://127.0.0.1:5985"}))
    print(found.capacity.events_per_second)
"""

from __future__ import annotations

import asyncio

from .capacity.rates import Capacity, Step
from .capacity.runs import (
    DEFAULT_PRECISION,
    DEFAULT_START_EPS,
    DEFAULT_STEP_SECS,
    DEFAULT_WARMUP_SECS,
    CapacityReporter,
    CapacityResult,
    SearchPlan,
)
from .config.loading import load_settings
from .config.rules import ConfigError
from .config.settings import S3Settings, Settings
from .load.shapes import Stage
from .model import (
    BatchingObeyed,
    Deliveries,
    ErrorClass,
    EventIdCount,
    ExitCode,
    HostsFigures,
    Judged,
    LoadSummary,
    Percentiles,
    Restart,
    RunResult,
    Second,
    SegmentInfo,
    ServerStats,
    ShardData,
    SubscriptionAsked,
    Verdict,
    WsmanFigures,
    installed_version,
)
from .report.console import ConsoleReporter
from .runner.reporter import Reporter
from .verify.accounting import Accounting
from .verify.model import VerifyResult
from .wsman.options import SubscriptionOptions

# What a caller passes in and everything a caller receives back (docs/api.md describes each).
__all__ = [
    "Accounting", "BatchingObeyed", "Capacity", "CapacityReporter", "CapacityResult", "ConfigError", "ConsoleReporter", "Deliveries",
    "ErrorClass", "EventIdCount", "ExitCode", "HostsFigures", "Judged", "LoadSummary", "Percentiles", "Reporter",
    "Restart", "RunResult", "S3Settings", "SearchPlan", "Second", "SegmentInfo", "ServerStats", "Settings",
    "ShardData", "Stage", "Step", "SubscriptionAsked", "SubscriptionOptions", "Verdict", "VerifyResult", "WsmanFigures", "find_capacity", "load_settings",
    "merge_segments", "run",
]


__version__ = installed_version()


async def run(
    settings: Settings,
    *,
    console: bool = False,
    reporter: Reporter | None = None,
    stop: asyncio.Event | None = None,
    profile: str | None = None,
) -> RunResult:
    """Run one test; `console=True` prints the CLI's output, `stop.set()` ends it early.

    `profile` names the result's profile; default: the one `load_settings` read (`settings.profile`).
    """
    from .runner.phases import run_test

    rep = reporter or (ConsoleReporter() if console else None)
    return await run_test(settings, reporter=rep, stop=stop, profile=profile if profile is not None else settings.profile)


async def merge_segments(sources: list[str], *, run_id: str | None = None, s3: S3Settings | None = None) -> RunResult:
    """One result from the segments of one run (`wefperf merge` without the S3 check).

    `sources`: segments' results files, folders, or s3://bucket/prefix/ (connection from `s3`,
    default: the S3_* / AWS_* variables). Raises ShardError naming a missing or mismatched segment.
    """
    from .config.loading import load_s3_settings
    from .scaleout.merge import merge
    from .scaleout.shards import read_shards

    shards = await read_shards(sources, s3 or load_s3_settings(), run_id)
    return merge(shards).result


async def find_capacity(
    settings: Settings,
    *,
    start_eps: float = DEFAULT_START_EPS,
    max_eps: float | None = None,
    step_secs: float = DEFAULT_STEP_SECS,
    warmup_secs: float = DEFAULT_WARMUP_SECS,
    precision: float = DEFAULT_PRECISION,
    console: bool = False,
    reporter: CapacityReporter | None = None,
    stop: asyncio.Event | None = None,
    profile: str | None = None,
) -> CapacityResult:
    """The highest rate at which every threshold of `settings` held (`wefperf capacity`).

    Doubles the rate from `start_eps` until a step breaks a threshold (or `max_eps` is reached),
    then bisects to within `precision`. `result.capacity.events_per_second` is None when even
    `start_eps` broke one; `stop.set()` ends the search after the current step's drain, with the
    steps so far. `console=True` prints what the CLI prints. ConfigError for a bad argument.
    """
    from .capacity.runs import find_capacity as search

    rep = reporter
    if rep is None and console:
        from .report.capacity import ConsoleCapacityReporter

        rep = ConsoleCapacityReporter()
    plan = SearchPlan(start_eps=start_eps, max_eps=max_eps, step_secs=step_secs, warmup_secs=warmup_secs,
                      precision=precision)
    return await search(settings, plan, reporter=rep, stop=stop,
                        profile=profile if profile is not None else settings.profile)
