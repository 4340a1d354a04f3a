"""The capacity search: the highest rate at which every threshold held, and what the collector took there.

Double the rate from `start_eps` until a step breaks a threshold (or `max_eps` is reached),
then bisect between the last rate that held and the first that broke until they are within
`precision` of each other. Each step is a short run at one rate; this module only decides
which rate comes next, so it can be tested without a server.

The capacity is what a passing step achieved, never the rate it asked: a threshold can let a
step through a little above what the collector takes (a latency bound over a short step lets a
small queue build), and the collector took only its own rate of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    """One rate held for one step, and what came of it."""

    target_eps: float
    achieved_eps: float  # acknowledged per second while the rate was held: what the collector took
    passed: bool
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_p999_ms: float | None = None
    error_ratio: float | None = None
    server_lag_events: int | None = None  # acknowledged but not yet counted by the server at the step's end
    broken: tuple[str, ...] = ()  # the thresholds this step broke
    run_id: str = ""  # the step's run id: its events carry it (e.g. for `wefperf verify --run-id`)
    achieved_ratio: float | None = None  # achieved_eps / target_eps: what the achieved_ratio threshold judged


@dataclass
class Capacity:
    """The search's outcome: `events_per_second` is None when even the first rate broke a threshold.

    `events_per_second` is the capacity: the highest rate a step that held every threshold
    achieved. `highest_held` is the highest rate such a step asked for; the search bisects on
    the rates asked, so `precision` is between it and `lowest_broken`.
    """

    events_per_second: float | None
    precision: float
    steps: list[Step] = field(default_factory=list)
    lowest_broken: float | None = None  # the lowest rate that broke a threshold
    reached_max: bool = False  # every rate up to max_eps held: the capacity is at least that
    interrupted: bool = False
    highest_held: float | None = None  # the highest rate asked that held every threshold

    def to_dict(self) -> dict[str, object]:
        return {
            "events_per_second": self.events_per_second,
            "highest_rate_held_eps": self.highest_held,
            "precision": self.precision,
            "lowest_broken_eps": self.lowest_broken,
            "reached_max_eps": self.reached_max,
            "interrupted": self.interrupted,
            "steps": [vars(s) | {"broken": list(s.broken)} for s in self.steps],
        }


RunStep = Callable[[float], Awaitable[Step | None]]  # None: the run was stopped during the step


async def search(run_step: RunStep, *, start_eps: float, max_eps: float | None, precision: float) -> Capacity:
    """Run steps until the capacity is known within `precision` (a fraction, e.g. 0.05)."""
    result = Capacity(None, precision)

    async def attempt(rate: float) -> Step | None:
        step = await run_step(rate)
        if step is None:
            result.interrupted = True
        else:
            result.steps.append(step)
        return step

    held: float | None = None
    broke: float | None = None
    rate = start_eps if max_eps is None else min(start_eps, max_eps)
    while True:  # doubling
        step = await attempt(rate)
        if step is None:
            return _done(result, held, broke)
        if not step.passed:
            broke = rate
            break
        held = rate
        if max_eps is not None and rate >= max_eps:
            result.reached_max = True
            return _done(result, held, broke)
        rate = rate * 2 if max_eps is None else min(rate * 2, max_eps)
    if held is None:
        return _done(result, held, broke)
    while (broke - held) / broke > precision:  # bisection
        rate = (held + broke) / 2
        step = await attempt(rate)
        if step is None:
            break
        if step.passed:
            held = rate
        else:
            broke = rate
    return _done(result, held, broke)


def best_achieved(steps: list[Step]) -> float | None:
    """The capacity: the highest rate a passing step achieved, or None when none passed."""
    return max((s.achieved_eps for s in steps if s.passed), default=None)


def _done(result: Capacity, held: float | None, broke: float | None) -> Capacity:
    result.events_per_second = best_achieved(result.steps)
    result.highest_held = held
    result.lowest_broken = broke
    return result
