"""The console output of `wefperf capacity`: a line as each step starts and ends, the steps' table, the capacity."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from ..capacity.runs import CapacityReporter, CapacityResult, SearchPlan
from ..judge.thresholds import SPECS
from .console import RULE

if TYPE_CHECKING:
    from ..capacity.rates import Capacity, Step
    from ..config.settings import Settings
    from ..model import RunResult, Verdict


def bound(name: str, limit: float) -> str:
    """`latency_p99_ms ≤ 500`, `achieved_ratio ≥ 0.95`."""
    return f"{name} {'≤' if SPECS[name].bound == 'max' else '≥'} {limit:,g}"


def bounds(thresholds: dict[str, float]) -> str:
    return ", ".join(bound(name, limit) for name, limit in thresholds.items())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def banner_lines(settings: Settings, plan: SearchPlan, thresholds: dict[str, float]) -> list[str]:
    upto = f"up to {plan.max_eps:,.0f} events/s (--max-eps)" if plan.max_eps else "with no upper limit"
    warmup = f"a {plan.warmup_secs:g} s ramp from 0, then " if plan.warmup_secs else ""
    kind = f"event {settings.event_type} only" if settings.event_type else "a weighted mix of 4624, 4634, 4672, 4688, 4625"
    return [
        RULE,
        f"CAPACITY SEARCH: {settings.test_name}",
        RULE,
        f"Endpoint: {settings.events_url}",
        f"Rates: from {plan.start_eps:,.0f} events/s doubling {upto} until a step breaks a threshold,"
        f" then bisecting to ±{plan.precision * 100:g} %",
        f"Each step: {warmup}{plan.step_secs:g} s at the rate; achieved_ratio judges the rate acknowledged in the"
        " whole seconds the rate was held, the other thresholds the whole step",
        f"Thresholds (every one must hold): {bounds(thresholds)}",
        f"Batch size: {settings.batch_size}; concurrency: {settings.concurrency}; events: {kind}",
        "S3 verification: not per step (check the rate found with `wefperf run --verify-s3`)",
        "",
    ]


def step_start_line(number: int, rate: float, plan: SearchPlan) -> str:
    warmup = f"{plan.warmup_secs:g} s warm-up + " if plan.warmup_secs else ""
    return f"Step {number}: {rate:,.0f} events/s for {warmup}{plan.step_secs:g} s ..."


def step_done_line(number: int, step: Step, verdict: Verdict) -> str:
    head = f"Step {number}: {step.target_eps:,.0f} events/s"
    figures = f"achieved {step.achieved_eps:,.0f}/s{_share(step)}, p99 {_ms(step.latency_p99_ms)} ms"
    if step.passed:
        return f"{head} held ({figures})"
    # Each broken threshold with its measure; a step stopped early (--abort-on-fail) says why first.
    why = [r for r in verdict.reasons if r.startswith("aborted: ")]
    why += [j.describe() for j in verdict.thresholds if not j.passed]
    return f"{head} broke {'; '.join(why) or '; '.join(verdict.reasons) or 'a threshold'} ({figures})"


def step_stopped_line(number: int, rate: float, result: RunResult) -> str:
    where = result.stopped_in or "load"
    return f"Step {number}: {rate:,.0f} events/s interrupted ({where}); the step is not counted"


def _share(step: Step) -> str:
    """` = 80.0% of the rate`: the achieved_ratio the step was judged on."""
    return "" if step.achieved_ratio is None else f" = {step.achieved_ratio:.1%} of the rate"


_HEADER = ("step", "rate/s", "achieved/s", "achieved", "p50 ms", "p99 ms", "p99.9 ms", "errors", "server lag",
           "result")


def table_lines(steps: list[Step]) -> list[str]:
    """One row per step, in the order they ran: each threshold's column is the very figure it judged."""
    rows = [_HEADER]
    for i, s in enumerate(steps, 1):
        verdict = "pass" if s.passed else "FAIL " + ", ".join(s.broken)
        rows.append((
            str(i), f"{s.target_eps:,.0f}", f"{s.achieved_eps:,.0f}",
            "-" if s.achieved_ratio is None else f"{s.achieved_ratio:.1%}",
            _ms(s.latency_p50_ms), _ms(s.latency_p99_ms),
            _ms(s.latency_p999_ms), "-" if s.error_ratio is None else f"{s.error_ratio:.2%}",
            "-" if s.server_lag_events is None else f"{s.server_lag_events:,}", verdict,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER) - 1)]
    return ["  " + "  ".join(c.rjust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]


def capacity_lines(result: CapacityResult) -> list[str]:
    """The answer in one line, and a second saying which step it came from and where it stops being true."""
    cap: Capacity = result.capacity
    conditions = bounds(result.settings.thresholds or result.thresholds)
    eps = cap.events_per_second
    first_broken = next((s for s in cap.steps if cap.lowest_broken is not None and s.target_eps == cap.lowest_broken), None)
    broke = (f"{cap.lowest_broken:,.0f} events/s broke {', '.join(first_broken.broken) or 'a threshold'}"
             if cap.lowest_broken is not None and first_broken is not None else "")
    if result.error is not None:
        so_far = f"; at least {eps:,.0f} events/s held before it" if eps is not None else ""
        return [f"Capacity: not found: the search stopped: {result.error}{so_far}"]
    if cap.interrupted:
        if eps is None:
            return ["Capacity: not found: interrupted before any rate held" + (f" ({broke})" if broke else "")]
        return [f"Capacity: at least {eps:,.0f} events/s at {conditions} (interrupted before the search finished"
                + (f"; {broke}" if broke else "") + ")", _source(cap)]
    if eps is None:
        step = cap.steps[0] if cap.steps else None
        what = ", ".join(step.broken) if step is not None and step.broken else "a threshold"
        return [f"Capacity: none: even {result.plan.start_eps:,.0f} events/s (--start-eps) broke {what}"
                f" (thresholds: {conditions})"]
    if cap.reached_max:
        return [f"Capacity: at least {eps:,.0f} events/s at {conditions}: every rate up to --max-eps held",
                _source(cap)]
    return [f"Capacity: {eps:,.0f} events/s at {conditions} (±{cap.precision * 100:g} %)",
            _source(cap) + (f"; {broke}" if broke else "")]


def _source(cap: Capacity) -> str:
    """Which step the capacity is: what it acknowledged, and the rate it asked."""
    best = max((s for s in cap.steps if s.passed), key=lambda s: s.achieved_eps, default=None)
    if best is None:
        return ""
    return f"  acknowledged by the step at {best.target_eps:,.0f} events/s while the rate was held"


class ConsoleCapacityReporter(CapacityReporter):
    """Plain lines on stdout (errors on stderr), as `wefperf run` prints them."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def started(self, settings: Settings, plan: SearchPlan, thresholds: dict[str, float]) -> None:
        for text in banner_lines(settings, plan, thresholds):
            self._print(text)

    def step_started(self, number: int, rate: float, plan: SearchPlan) -> None:
        self._print(step_start_line(number, rate, plan))

    def step_done(self, number: int, step: Step, verdict: Verdict) -> None:
        self._print(step_done_line(number, step, verdict))

    def step_stopped(self, number: int, rate: float, result: RunResult) -> None:
        self._print(step_stopped_line(number, rate, result))

    def error(self, text: str) -> None:
        print(f"  {text}", file=self.err, flush=True)

    def finished(self, result: CapacityResult) -> None:
        self._print()
        self._print(RULE)
        self._print("CAPACITY SEARCH RESULTS")
        self._print(RULE)
        for text in table_lines(result.capacity.steps):
            self._print(text)
        self._print()
        for text in capacity_lines(result):
            self._print(text)
