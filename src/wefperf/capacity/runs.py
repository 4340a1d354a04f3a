"""The capacity search against a real collector: one `run_test` per step, rates from `capacity.search`.

Each step is a short run at one rate: a warm-up that ramps from 0 to the rate, then the rate
held for the step's length. Latency and error thresholds judge the whole step, warm-up
included. `achieved_ratio` judges what the collector took while the rate was held: the events
acknowledged in the whole seconds after the warm-up, per second, over the rate asked. The
run's own achieved_ratio (acknowledged over due) would pass an overloaded step whose queue is
acknowledged after the plan's end, and a ramp's spare seconds would lift any whole-step rate
above what the collector takes. There is no S3 verification per step. Before the next step the
runner waits until the server has counted every acknowledged event (bounded by
PERF_TEST_PROCESSING_WAIT_SECS), so one step's backlog does not land in the next one's numbers.
"""

from __future__ import annotations

import asyncio
import math
import socket
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from ..config.rules import ConfigError
from ..config.settings import Settings
from ..judge.thresholds import SPECS, Judged
from ..load.shapes import Stage
from ..model import ExitCode, LoadSummary, RunResult, Verdict
from ..runner.reporter import Reporter
from .rates import Capacity, Step, best_achieved, search

DEFAULT_START_EPS = 1_000.0
DEFAULT_STEP_SECS = 10.0
DEFAULT_WARMUP_SECS = 2.0
DEFAULT_PRECISION = 0.05
# Thresholds no step can measure: they need the S3 check, which a step does not run.
_PER_RUN_ONLY = ("s3_missing_events", "s3_duplicated_events")


@dataclass(frozen=True)
class SearchPlan:
    """How the search steps: where it starts, where it stops, how long each rate is held."""

    start_eps: float = DEFAULT_START_EPS
    max_eps: float | None = None
    step_secs: float = DEFAULT_STEP_SECS
    warmup_secs: float = DEFAULT_WARMUP_SECS
    precision: float = DEFAULT_PRECISION

    def check(self) -> None:
        """ConfigError naming the first bad value (the CLI's flag names)."""
        def finite(x: float) -> bool:
            return isinstance(x, (int, float)) and math.isfinite(x)

        if not (finite(self.start_eps) and self.start_eps > 0):
            raise ConfigError(f"--start-eps must be more than 0 events/s (got {self.start_eps!r})")
        if self.max_eps is not None:
            if not (finite(self.max_eps) and self.max_eps > 0):
                raise ConfigError(f"--max-eps must be more than 0 events/s (got {self.max_eps!r})")
            if self.max_eps < self.start_eps:
                raise ConfigError(f"--max-eps ({self.max_eps:,g}) is below --start-eps ({self.start_eps:,g})")
        if not (finite(self.step_secs) and self.step_secs > 0):
            raise ConfigError(f"--step-secs must be more than 0 seconds (got {self.step_secs!r})")
        if not (finite(self.warmup_secs) and self.warmup_secs >= 0):
            raise ConfigError(f"--warmup-secs must be 0 or more seconds (got {self.warmup_secs!r})")
        if math.ceil(self.warmup_secs) + 1 > self.warmup_secs + self.step_secs:
            raise ConfigError(f"--step-secs ({self.step_secs:g}) must hold the rate for at least one whole second"
                              f" after --warmup-secs ({self.warmup_secs:g}): the rate a step achieved is read"
                              " over those seconds")
        if not (finite(self.precision) and 0 < self.precision < 1):
            raise ConfigError(f"--precision must be a fraction between 0 and 1, e.g. 0.05 (got {self.precision!r})")

    def step_settings(self, settings: Settings, rate: float, number: int) -> Settings:
        """The settings of one step: the base settings with this rate, this shape and no S3 check."""
        if self.warmup_secs > 0:
            shape = {"stages": [Stage(self.warmup_secs, rate), Stage(self.step_secs, rate)]}
        else:
            shape = {"stages": []}
        return settings.model_copy(update={
            **shape,
            "target_eps": rate,
            "duration_secs": self.warmup_secs + self.step_secs,
            "total_events": 0,
            "verify_s3": False,
            "test_name": f"{settings.test_name}: step {number} at {rate:,.0f} events/s",
        })

    def to_dict(self) -> dict[str, Any]:
        return {"start_eps": self.start_eps, "max_eps": self.max_eps, "step_secs": self.step_secs,
                "warmup_secs": self.warmup_secs}


def check_settings(settings: Settings) -> None:
    """A threshold no step can judge is a configuration error, not a search that can never pass."""
    for name in _PER_RUN_ONLY:
        if name in settings.thresholds:
            raise ConfigError(f"threshold {name}: a capacity step does not verify S3, so it cannot be judged"
                              " (check the rate found with `wefperf run --verify-s3`)")
    if settings.process_count > 1 or settings.segment or settings.shard_results:
        raise ConfigError("PERF_TEST_PROCESSES / PERF_TEST_SEGMENT / PERF_TEST_SHARD_RESULTS: the capacity search"
                          " runs in one process; scale out a `wefperf run` at the rate it finds")


@dataclass
class CapacityResult:
    """What a capacity search returns and writes: the capacity, every step, the settings."""

    capacity: Capacity
    plan: SearchPlan
    settings: Settings
    profile: str | None
    timestamp: str
    thresholds: dict[str, float]
    error: str | None = None  # the search ended early on something no rate explains (server unavailable)
    interrupted_step: float | None = None  # the rate of a step cut short by a stop, if one was

    @property
    def found(self) -> bool:
        return self.capacity.events_per_second is not None

    @property
    def exit_code(self) -> ExitCode:
        if self.capacity.interrupted:
            return ExitCode.INTERRUPTED
        if self.error is not None or not self.found:
            return ExitCode.FAILED
        return ExitCode.PASSED

    def to_dict(self) -> dict[str, Any]:
        from ..model import installed_version

        return {
            "timestamp": self.timestamp,
            "test_name": self.settings.test_name,
            "command": "capacity",
            "configuration": self.settings.public_dict(),
            "capacity": {
                **self.capacity.to_dict(),
                **self.plan.to_dict(),
                "thresholds": self.thresholds,
                "interrupted_step_eps": self.interrupted_step,
            },
            "error": self.error,
            "exit_code": int(self.exit_code),
            "wefperf_version": installed_version(),
            "host": socket.gethostname(),
            "profile": self.profile,
        }


class SearchReporter(Protocol):
    """What the search tells as it goes: the protocol the core speaks; report/capacity.py implements it."""

    def started(self, settings: Settings, plan: SearchPlan, thresholds: dict[str, float]) -> None: ...
    def step_started(self, number: int, rate: float, plan: SearchPlan) -> None: ...
    def step_done(self, number: int, step: Step, verdict: Verdict) -> None: ...
    def step_stopped(self, number: int, rate: float, result: RunResult) -> None: ...
    def error(self, text: str) -> None: ...
    def finished(self, result: CapacityResult) -> None: ...


class CapacityReporter:
    """The search's reporter that says nothing (the API's default), to subclass."""

    def started(self, settings: Settings, plan: SearchPlan, thresholds: dict[str, float]) -> None: ...
    def step_started(self, number: int, rate: float, plan: SearchPlan) -> None: ...
    def step_done(self, number: int, step: Step, verdict: Verdict) -> None: ...
    def step_stopped(self, number: int, rate: float, result: RunResult) -> None: ...
    def error(self, text: str) -> None: ...
    def finished(self, result: CapacityResult) -> None: ...


class _StepReporter(Reporter):
    """A step's own run says nothing but its errors (a failed batch, an unreachable server)."""

    def __init__(self, outer: SearchReporter) -> None:
        self.outer = outer

    def error(self, text: str) -> None:
        self.outer.error(text)


class _Unavailable(Exception):
    """A step could not run at all (the server never became healthy): the search cannot go on."""


def held_seconds(plan: SearchPlan, load: LoadSummary) -> range:
    """The timeline's whole seconds in which the rate was held: after the warm-up, before the step (or its stop) ended."""
    end = plan.warmup_secs + plan.step_secs
    if load.cut_short:
        end = min(end, load.window_s)
    return range(math.ceil(plan.warmup_secs), max(math.floor(end), math.ceil(plan.warmup_secs)))


def achieved_eps(load: LoadSummary, plan: SearchPlan) -> float:
    """Events acknowledged per second while the rate was held: what the collector took.

    Replies are counted in the second they arrived, so a collector that falls behind is seen at
    its own pace, not the pace asked; what it acknowledges after the plateau (its queue) is not
    counted. A step stopped before a whole second was held (--abort-on-fail) falls back to its
    acknowledged events over the time it ran.
    """
    seconds = held_seconds(plan, load)
    if seconds:
        acked = sum(r.acked_events for r in load.timeline if r.t in seconds)
        return acked / len(seconds)
    return load.events_ok / load.window_s if load.window_s > 0 else 0.0


def step_verdict(result: RunResult, rate: float, achieved: float) -> Verdict:
    """The run's verdict with achieved_ratio judged on the held rate, `achieved / rate`, as the table shows it."""
    verdict = result.verdict
    ratio = achieved / rate
    judged: list[Judged] = []
    reasons = [r for r in verdict.reasons if r.startswith("aborted: ")]
    for j in verdict.thresholds:
        if j.name == "achieved_ratio":
            j = Judged(j.name, j.bound, j.limit, ratio, ratio >= j.limit)
        judged.append(j)
        if not j.passed:
            reasons.append(j.describe())
    passed = not reasons
    return replace(verdict, passed=passed, exit_code=ExitCode.PASSED if passed else ExitCode.FAILED,
                   reasons=reasons, target_ratio=ratio, thresholds=judged)


def broken_thresholds(verdict: Verdict, load: LoadSummary) -> tuple[str, ...]:
    """The thresholds a step broke: over the whole step, and those that stopped it early (--abort-on-fail)."""
    names = [j.name for j in verdict.thresholds if not j.passed]
    if load.aborted:
        names += [name for name in SPECS if name in load.aborted and name not in names]
    return tuple(names)


def step_of(rate: float, result: RunResult, plan: SearchPlan) -> tuple[Step, Verdict]:
    """A step's figures from its run, and its verdict with achieved_ratio judged on exactly the achieved shown."""
    load, server = result.load, result.server
    lat = load.event_latency if load.event_latency is not None else load.latency  # as the thresholds judge it
    counted = lat.count > 0
    achieved = round(achieved_eps(load, plan), 1)
    verdict = step_verdict(result, rate, achieved)
    # The server_missing_events threshold's own figure where it was judged (it counts per event type).
    missing = next((j.measured for j in verdict.thresholds if j.name == "server_missing_events"), None)
    lag = None
    if missing is not None:
        lag = int(missing)
    elif server.events_received is not None:
        lag = max(load.events_ok - server.events_received, 0)
    step = Step(
        target_eps=rate,
        achieved_eps=achieved,
        passed=verdict.passed,
        latency_p50_ms=lat.p50 if counted else None,
        latency_p99_ms=lat.p99 if counted else None,
        latency_p999_ms=lat.p999 if counted else None,
        error_ratio=load.error_ratio,
        server_lag_events=lag,
        broken=broken_thresholds(verdict, load),
        run_id=result.run_id,
        achieved_ratio=verdict.target_ratio,
    )
    return step, verdict


async def find_capacity(
    settings: Settings,
    plan: SearchPlan | None = None,
    *,
    reporter: SearchReporter | None = None,
    stop: asyncio.Event | None = None,
    profile: str | None = None,
    freeze_gc: bool = False,
) -> CapacityResult:
    """Search for the highest rate at which every threshold held; `stop.set()` ends it after the current step's drain.

    Raises ConfigError for a bad plan or a threshold no step can judge. `freeze_gc`: for the CLI only (see run_test).
    """
    from ..runner.phases import run_test

    plan = plan or SearchPlan()
    plan.check()
    check_settings(settings)
    rep: SearchReporter = reporter or CapacityReporter()
    thresholds = dict(plan.step_settings(settings, plan.start_eps, 1).effective_thresholds())
    started = datetime.now(UTC).isoformat()
    rep.started(settings, plan, thresholds)
    number = 0
    stopped_at: list[float] = []

    async def run_step(rate: float) -> Step | None:
        nonlocal number
        if stop is not None and stop.is_set():
            return None
        number += 1
        rep.step_started(number, rate, plan)
        result = await run_test(plan.step_settings(settings, rate, number), reporter=_StepReporter(rep), stop=stop,
                                profile=profile, freeze_gc=freeze_gc)
        if (stop is not None and stop.is_set()) or result.load.interrupted:
            stopped_at.append(rate)
            rep.step_stopped(number, rate, result)
            return None
        if not result.verdict.thresholds and result.verdict.reasons:
            raise _Unavailable(result.verdict.reasons[0])
        step, verdict = step_of(rate, result, plan)
        rep.step_done(number, step, verdict)
        return step

    steps: list[Step] = []

    async def recorded(rate: float) -> Step | None:
        step = await run_step(rate)
        if step is not None:
            steps.append(step)
        return step

    error = None
    try:
        capacity = await search(recorded, start_eps=plan.start_eps, max_eps=plan.max_eps, precision=plan.precision)
    except _Unavailable as exc:
        error = str(exc)
        held = [s.target_eps for s in steps if s.passed]
        broke = [s.target_eps for s in steps if not s.passed]
        capacity = Capacity(best_achieved(steps), plan.precision, steps, lowest_broken=min(broke) if broke else None,
                            highest_held=max(held) if held else None)
    result = CapacityResult(capacity, plan, settings, profile, started, thresholds, error,
                            stopped_at[0] if stopped_at else None)
    rep.finished(result)
    return result

