"""`wefperf capacity`: the highest rate at which every threshold held, by doubling then bisecting.

Every setting and threshold of `wefperf run` applies to each step; the search sets each step's
rate and length itself. Exit codes: 0 a capacity was found, 1 even --start-eps broke a
threshold (or the collector could not be reached), 2 a bad flag or setting, 130 interrupted
(the steps so far are printed and written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC
from typing import Any

from ..capacity.runs import (
    DEFAULT_PRECISION,
    DEFAULT_START_EPS,
    DEFAULT_STEP_SECS,
    DEFAULT_WARMUP_SECS,
    CapacityResult,
    SearchPlan,
)
from ..config.rules import ConfigError
from ..config.settings import Settings
from ..model import ExitCode
from .run import (
    add_run_arguments,
    check_output_path,
    check_results_path,
    embedded_unless_stopped,
    finish,
    run_loop,
    settings_from_args,
    stop_on_signals,
)

PROFILE = "capacity"
# The search sets these for every step: given as flags they would be ignored, so they are refused.
_SET_BY_THE_SEARCH = {
    "target_eps": "--start-eps / --max-eps",
    "stages": "--warmup-secs / --step-secs",
    "duration_secs": "--step-secs",
    "total_events": "--step-secs",
}


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "capacity",
        help="find the highest rate the collector holds within the thresholds",
        description="Find the highest rate at which every threshold held: double the rate from --start-eps"
                    " until a step breaks a threshold, then bisect to --precision. Each step is one run at one"
                    " rate (a warm-up ramp, then --step-secs at the rate), judged on the thresholds; no S3"
                    " verification per step. Takes every setting and threshold of `wefperf run`.",
    )
    add_run_arguments(p, profile_default=PROFILE)
    g = p.add_argument_group("the search")
    g.add_argument("--start-eps", type=float, default=DEFAULT_START_EPS, metavar="N",
                   help=f"the first rate, events/s (default {DEFAULT_START_EPS:,.0f})")
    g.add_argument("--max-eps", type=float, default=None, metavar="N",
                   help="the highest rate tried, events/s; reaching it ends the search (default: no limit)")
    g.add_argument("--step-secs", type=float, default=DEFAULT_STEP_SECS, metavar="N",
                   help=f"how long each rate is held after the warm-up, seconds (default {DEFAULT_STEP_SECS:g})")
    g.add_argument("--warmup-secs", type=float, default=DEFAULT_WARMUP_SECS, metavar="N",
                   help=f"each step first ramps from 0 to its rate over this long, seconds (default {DEFAULT_WARMUP_SECS:g})")
    g.add_argument("--precision", type=float, default=DEFAULT_PRECISION, metavar="F",
                   help=f"bisect until the highest rate held is within this fraction of the lowest that broke"
                        f" (default {DEFAULT_PRECISION:g}, i.e. {DEFAULT_PRECISION * 100:g} %%)")
    p.set_defaults(handler=handle_capacity)


def handle_capacity(args: argparse.Namespace) -> int:
    try:
        for field, instead in _SET_BY_THE_SEARCH.items():
            if getattr(args, f"set_{field}") is not None:
                flag = "--" + field.replace("_", "-")
                raise ConfigError(f"{flag}: the capacity search sets each step's rate and length; use {instead}")
        plan = SearchPlan(start_eps=args.start_eps, max_eps=args.max_eps, step_secs=args.step_secs,
                          warmup_secs=args.warmup_secs, precision=args.precision)
        plan.check()
        settings, profile = settings_from_args(args)
        from ..capacity.runs import check_settings

        check_settings(settings)
        check_results_path(settings.results_path)
        if settings.report_path:
            check_output_path(settings.report_path, "report_path", "--report")
    except ConfigError as exc:
        print(f"wefperf: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return run_loop(_main(settings, profile, plan, args.embedded))


async def _main(settings: Settings, profile: str | None, plan: SearchPlan, embedded: bool) -> int:
    from ..capacity.rates import Capacity
    from ..capacity.runs import find_capacity
    from ..report.capacity import ConsoleCapacityReporter

    stop = stop_on_signals()
    reporter = ConsoleCapacityReporter()

    def nothing_run(why: str) -> CapacityResult:
        from datetime import datetime

        print(why, flush=True)
        cap = Capacity(None, plan.precision, interrupted=True)
        return CapacityResult(cap, plan, settings, profile, datetime.now(UTC).isoformat(),
                              dict(plan.step_settings(settings, plan.start_eps, 1).effective_thresholds()))

    async with contextlib.AsyncExitStack() as stack:
        if embedded:
            stopped, against = await embedded_unless_stopped(stack, settings, _Lines(), stop)
            if stopped:
                result = nothing_run("Interrupted while starting the embedded collector: nothing was sent")
                return finish(result, settings.results_path, interrupted=True, report=settings.report_path)
            if against is None:
                return ExitCode.USAGE
            settings = against
        try:
            result = await find_capacity(settings, plan, reporter=reporter, stop=stop, profile=profile, freeze_gc=True)
        except asyncio.CancelledError:
            print("wefperf: interrupted twice; no results written", file=sys.stderr)
            return ExitCode.INTERRUPTED
        except ConfigError as exc:
            print(f"wefperf: configuration error: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    return finish(result, settings.results_path, interrupted=stop.is_set(), report=settings.report_path)


class _Lines:
    """The one line `_embedded` prints (where the stack listens)."""

    def line(self, text: str = "") -> None:
        print(text, flush=True)
