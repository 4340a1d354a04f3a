"""`wefperf verify`: check what a collector stored in S3, on its own, after any run.

Connection from S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the
seed's names and defaults, from the shared S3Settings); `--s3-endpoint` and `--bucket`
override the first two. Exit 0 when the checks hold, 1 when they don't, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from typing import Any

from ..config.rules import ConfigError, check_event_id
from ..config.settings import DEFAULTS
from ..model import ExitCode
from .s3flags import add_s3_arguments, s3_settings


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _event_types(text: str) -> list[str]:
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("expected an event ID such as 4624")
    try:
        return [check_event_id(t) for t in ids]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run_id(text: str) -> str:
    if not text or not text.isalnum() or text.lower() != text:
        raise argparse.ArgumentTypeError(f"expected a run id of lowercase letters and digits, got {text!r}")
    return text


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "verify",
        help="check the parquet files a collector wrote to S3",
        description="List, size-check and footer-check the parquet files under event_type=<id>/ and, "
        "with --run-id, count that run's events exactly. Connection from S3_ENDPOINT, S3_BUCKET, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.",
    )
    p.add_argument("--event-type", dest="event_types", action="append", type=_event_types, default=None,
                   metavar="ID", help="event ID partition to check; repeat it or give a comma list"
                   " (with --results: default every type the run sent)")
    p.add_argument("--results", default=None, metavar="PATH",
                   help="a run's results JSON: its run id, batches and payload, so each event type of a mixed"
                   " run is checked exactly (no --run-id, --expect-events or --batch-size needed)")
    p.add_argument("--run-id", type=_run_id, default=None, help="count this run's events exactly (its marker)")
    p.add_argument("--expect-events", type=_positive_int, default=None, metavar="N",
                   help="events the run sent and the collector acknowledged (all rows if no --run-id)")
    p.add_argument("--batch-size", type=_positive_int, default=DEFAULTS.batch_size, metavar="N",
                   help=f"the run's batch size, to turn markers into sequence numbers (default {DEFAULTS.batch_size})")
    p.add_argument("--max-size-mb", type=_positive_float, default=DEFAULTS.max_file_size_mb, metavar="N",
                   help=f"largest allowed file size in MiB (default {DEFAULTS.max_file_size_mb:g})")
    p.add_argument("--date", dest="dates", action="append", type=_date, default=None, metavar="YYYY-MM-DD",
                   help="UTC date partition to check; repeatable (default: every date)")
    p.add_argument("--wait-secs", type=_non_negative_float, default=0.0, metavar="S",
                   help="poll until the expected rows are there or S seconds pass (default 0)")
    p.add_argument("--settle-secs", type=_non_negative_float, default=None, metavar="S",
                   help="once nothing is missing, poll on until no object appeared or changed for S seconds (a later"
                   " flush may still write a duplicate); bounded by --wait-secs (default: the run's flush interval"
                   " with --results, else 0)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the verification as JSON to PATH")
    add_s3_arguments(p)
    p.set_defaults(handler=run)


def _usage(message: str) -> ExitCode:
    print(f"wefperf verify: error: {message}", file=sys.stderr)
    return ExitCode.USAGE


def run(args: argparse.Namespace) -> int:
    from ..report.s3 import s3_block
    from ..verify import VerifyOptions, verify_s3

    try:
        s3 = s3_settings(args)
    except ConfigError as exc:
        return _usage(str(exc))
    event_types = sorted({t for group in args.event_types or [] for t in group}, key=int)
    if not event_types and not args.results:
        return _usage("give --event-type ID (or --results RESULTS.json)")
    if args.results and (args.run_id or args.expect_events):
        return _usage("--results gives the run id and the expected events; leave out --run-id and --expect-events")
    if args.json:
        from ..report.results_json import check_writable

        try:
            check_writable(args.json)
        except OSError as exc:
            return _usage(f"--json: cannot write {args.json}: {exc.strerror or exc}")
    opts = VerifyOptions(
        endpoint=s3.s3_endpoint,
        bucket=s3.s3_bucket,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        event_types=event_types,
        dates=sorted(set(args.dates)) if args.dates else None,
        max_file_size_bytes=int(args.max_size_mb * 1024 * 1024),
        run_id=args.run_id,
        batch_size=args.batch_size,
        expect_events=args.expect_events,
        wait_secs=args.wait_secs,
        settle_secs=args.settle_secs or 0.0,
    )

    if args.results:
        from ..verify.from_results import ResultsFileError, options_from_results

        try:
            with open(args.results, encoding="utf-8") as fh:
                data = json.load(fh)
            opts = options_from_results(data, opts, event_types or None, args.settle_secs)
        except OSError as exc:
            return _usage(f"--results: cannot read {args.results}: {exc.strerror or exc}")
        except (ValueError, ResultsFileError) as exc:
            return _usage(f"--results: {args.results}: {exc}")

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = asyncio.run(verify_s3(opts, progress=progress))
    if result.error:  # the verification could not run: one line that says what to check, nothing twice
        print(f"wefperf verify: {result.error}", file=sys.stderr)
    else:
        print("\n".join(s3_block(result)), flush=True)
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(result.to_dict(), fh, indent=2)
                fh.write("\n")
        except OSError as exc:
            print(f"wefperf verify: could not write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return ExitCode.USAGE
    return ExitCode.PASSED if result.passed else ExitCode.FAILED
