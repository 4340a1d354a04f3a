"""The S3 wait line on a plain console (a log, CI, a pipe): printed when its news changes, else
at most every QUIET_REPEAT_S, however often the verifier polls."""

from __future__ import annotations

import io

from wefperf.report.console import QUIET_REPEAT_S, ConsoleReporter


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _line(files: int, found: int, left: float) -> str:
    return f"  Waiting for S3: {files} files, {found:,}/181,000 events of run r1 so far; up to {left:.1f} s more"


def test_twenty_identical_polls_print_a_few_lines_and_news_prints_at_once() -> None:
    out, clock = io.StringIO(), _Clock()
    rep = ConsoleReporter(out, io.StringIO(), clock=clock)
    rep.waiting("s3", 25.0)
    for second in range(20):  # the verifier's poll every second, nothing arriving
        rep.s3_waiting(_line(7, 169_000, 25.0 - second))
        clock.now += 1.0
    lines = out.getvalue().splitlines()
    assert 20 / QUIET_REPEAT_S <= len(lines) <= 20 / QUIET_REPEAT_S + 1, lines
    assert lines[0] == _line(7, 169_000, 25.0)  # the first one at once
    rep.s3_waiting(_line(8, 175_000, 5.0))  # a file arrived: said at once
    assert out.getvalue().splitlines()[-1] == _line(8, 175_000, 5.0)
    # a new wait starts afresh
    rep.waiting("s3", 25.0)
    rep.s3_waiting(_line(8, 175_000, 4.0))
    assert out.getvalue().splitlines()[-1] == _line(8, 175_000, 4.0)
