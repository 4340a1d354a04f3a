"""`wefperf merge`: the segments of one run (--segment, --processes, an Indexed Job) as one result.

Sources are results files, folders holding results/<run_id>/segment-<i>-of-<N>.json, or
s3://bucket/prefix/ (S3 connection as in `wefperf verify`). Every segment 0..N-1 must be there.
Exit codes as a run's: 0 passed, 1 failed, 2 usage or missing/mismatched segments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..config.rules import ConfigError
from ..model import ExitCode
from .s3flags import add_s3_arguments, s3_settings

DEFAULT_RESULTS = "/tmp/performance_test_results.json"


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "merge",
        help="merge segments' results into one run: one report, thresholds judged on the whole",
        description="Merge the results of a run's segments (--segment i/N, --processes, a Kubernetes Indexed Job)"
                    " into one results JSON and one report; thresholds are judged on the merged result.",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a segment's results file, a folder, or s3://bucket/prefix/ (reads results/<run_id>/"
                        "segment-*-of-*.json under it)")
    p.add_argument("--run-id", default=None, metavar="ID", help="the run to merge when the sources hold several")
    p.add_argument("--results", default=DEFAULT_RESULTS, metavar="PATH",
                   help=f"where the merged results JSON is written (default {DEFAULT_RESULTS})")
    p.add_argument("--report", default="", metavar="PATH", help="also write the HTML report here")
    p.add_argument("--verify-s3", action="store_true",
                   help="check the parquet files in S3 for every event of the whole run, once")
    add_s3_arguments(p)
    p.set_defaults(handler=handle_merge)


def handle_merge(args: argparse.Namespace) -> int:
    from .run import check_output_path, run_loop

    try:
        s3 = s3_settings(args)
        check_output_path(args.results, "results_path", "--results")
        if args.report:
            check_output_path(args.report, "report_path", "--report")
    except ConfigError as exc:
        print(f"wefperf: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return run_loop(_merge(args, s3))


async def _merge(args: argparse.Namespace, s3: Any) -> int:
    from ..report.console import ConsoleReporter
    from ..runner.beside import unless_stopped
    from ..scaleout.merge import merge, rejudge, verify_options
    from ..scaleout.recount import recount, short
    from ..scaleout.shards import ShardError, read_shards
    from .run import finish, stop_on_signals

    reporter = ConsoleReporter()
    try:
        shards = await read_shards(args.sources, s3, args.run_id)
        merged = merge(shards)
    except ShardError as exc:
        print(f"wefperf merge: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    result = merged.result
    reporter.line(f"Merged {len(shards)} segments of run {result.run_id}")
    stop = stop_on_signals()
    if not result.load.interrupted and short(result.server, result.load.events_ok):
        # Each segment stopped waiting once the server counted as many events as it sent itself.
        reporter.line("Waiting for event processing to complete...")
        reporter.waiting("count", merged.settings.processing_wait_secs)
        waited = await unless_stopped(
            recount(merged.settings, result.server, result.load.events_ok, reporter.count_waiting), stop)
        if stop.is_set():
            print("wefperf merge: interrupted while waiting for the server's count; no results written",
                  file=sys.stderr)
            return ExitCode.INTERRUPTED
        if not waited:
            reporter.line("The server's count could not be read again: the segments' last reads are kept")
        result = rejudge(merged, None)
    if args.verify_s3:
        from ..verify import verify_s3

        try:
            options = verify_options(merged, s3, merged.settings.flush_interval_secs * 2 + 15.0)
        except ShardError as exc:
            print(f"wefperf merge: {exc}", file=sys.stderr)
            return ExitCode.USAGE
        checking = asyncio.ensure_future(verify_s3(options, progress=reporter.s3_waiting))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({checking, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not checking.done():
            checking.cancel()
            print("wefperf merge: interrupted during the S3 check; no results written", file=sys.stderr)
            return ExitCode.INTERRUPTED
        result = rejudge(merged, checking.result())
    reporter.results(result)
    return finish(result, args.results, report=args.report)
