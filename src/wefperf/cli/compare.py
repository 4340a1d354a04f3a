"""`wefperf compare A.json B.json [C.json ...]`: headline figures side by side, changes from the first."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from ..model import ExitCode


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "compare",
        help="compare results JSON files side by side",
        description="Compare results JSON files: achieved rate (and capacity), p50/p99/p99.9 latency, error ratio,"
                    " server lag (acknowledged minus counted), S3 missing and duplicated events, each with its"
                    " change from the first file.",
    )
    p.add_argument("files", nargs="+", metavar="RESULTS.json", help="two or more results JSON files; the first is"
                   " the reference")
    p.add_argument("--fail-if-worse", type=_percent, default=None, metavar="PCT",
                   help="exit 1 when p99 latency, achieved rate or capacity of a later file is worse than the"
                        " first's by more than PCT percent (a capacity whose search stopped at --max-eps is only"
                        " a lower bound: it is not judged)")
    p.add_argument("--html", default=None, metavar="OUT.html", help="also draw the runs' curves overlaid in an"
                   " HTML page")
    p.set_defaults(handler=handle_compare)


def handle_compare(args: argparse.Namespace) -> int:
    from ..report.compare import Run, gate_lines, labels_for, render_compare_html, text_table, worse_than
    from ..report.html import NotResults, load_results, write_page
    from ..report.results_json import check_writable

    if len(args.files) < 2:
        print("wefperf compare: give two or more results JSON files", file=sys.stderr)
        return ExitCode.USAGE
    runs = []
    try:
        for label, path in zip(labels_for(args.files), args.files):
            runs.append(Run(label, load_results(path)))
    except NotResults as exc:
        print(f"wefperf compare: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.html:
        try:
            check_writable(args.html)
        except OSError as exc:
            print(f"wefperf compare: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return ExitCode.USAGE
    for line in text_table(runs):
        print(line)
    if args.html:
        try:
            written = write_page(render_compare_html(runs, args.fail_if_worse), args.html)
        except OSError as exc:
            print(f"wefperf compare: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return ExitCode.USAGE
        print(f"\nComparison written to {written}")
    if args.fail_if_worse is None:
        return ExitCode.PASSED
    print()
    for line in gate_lines(runs, args.fail_if_worse):
        print(line)
    return ExitCode.FAILED if worse_than(runs, args.fail_if_worse) else ExitCode.PASSED
