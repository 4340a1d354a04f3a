"""`wefperf report RESULTS.json --html OUT.html`: the HTML report of a run, drawn afterwards."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..model import ExitCode


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "report",
        help="draw the HTML report of a results JSON",
        description="Draw the self-contained HTML report of a results JSON (of `wefperf run` or a capacity"
                    " search), the same page `wefperf run --report` writes.",
    )
    p.add_argument("results", metavar="RESULTS.json", help="a results JSON written by wefperf")
    p.add_argument("--html", metavar="OUT.html", default=None,
                   help="where to write the report (default: beside the results JSON, .html for .json)")
    p.set_defaults(handler=handle_report)


def handle_report(args: argparse.Namespace) -> int:
    from ..report.html import NotResults, load_results, report_beside, write_report
    from ..report.results_json import check_writable

    try:
        data = load_results(args.results)
    except NotResults as exc:
        print(f"wefperf report: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    out = args.html or report_beside(args.results)
    if not out:
        print(f"wefperf report: {args.results} is not a regular file: give --html OUT.html", file=sys.stderr)
        return ExitCode.USAGE
    try:
        check_writable(out)
        written = write_report(data, out)
    except OSError as exc:
        print(f"wefperf report: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.USAGE
    print(f"Report written to {written}")
    return ExitCode.PASSED
