"""The capacity search's choice of rates, against a pretend collector with a known limit."""

from __future__ import annotations

import pytest

from wefperf.capacity.rates import Step, search
from wefperf.judge.thresholds import Measures, judge, parse_thresholds


def _collector(limit: float):
    rates: list[float] = []

    async def run_step(rate: float) -> Step:
        rates.append(rate)
        return Step(rate, min(rate, limit), rate <= limit)

    return run_step, rates


async def test_doubles_then_bisects_to_within_the_precision() -> None:
    run_step, rates = _collector(20_000)
    cap = await search(run_step, start_eps=1000, max_eps=None, precision=0.05)
    assert rates[:6] == [1000, 2000, 4000, 8000, 16000, 32000]
    assert cap.events_per_second is not None and 19_000 <= cap.events_per_second <= 20_000
    assert cap.lowest_broken is not None and (cap.lowest_broken - cap.events_per_second) / cap.lowest_broken <= 0.05
    assert [s.target_eps for s in cap.steps] == rates


async def test_the_first_rate_breaking_gives_no_capacity() -> None:
    run_step, rates = _collector(500)
    cap = await search(run_step, start_eps=1000, max_eps=None, precision=0.05)
    assert cap.events_per_second is None and rates == [1000]


async def test_max_eps_caps_the_doubling() -> None:
    run_step, rates = _collector(10**9)
    cap = await search(run_step, start_eps=1000, max_eps=5000, precision=0.05)
    assert rates == [1000, 2000, 4000, 5000]
    assert cap.events_per_second == 5000 and cap.reached_max


async def test_a_stop_during_a_step_ends_the_search_with_the_steps_so_far() -> None:
    calls = []

    async def run_step(rate: float) -> Step | None:
        calls.append(rate)
        return None if rate > 3000 else Step(rate, rate, True)

    cap = await search(run_step, start_eps=1000, max_eps=None, precision=0.05)
    assert cap.interrupted and cap.events_per_second == 2000 and len(cap.steps) == 2


def test_thresholds_parse_judge_and_name_bad_input() -> None:
    limits = parse_thresholds("latency_p99_ms=500, error_ratio=0")
    assert limits == {"latency_p99_ms": 500.0, "error_ratio": 0.0}
    assert parse_thresholds(["achieved_ratio=0.9"]) == {"achieved_ratio": 0.9}
    assert parse_thresholds({"s3_missing_events": 0}) == {"s3_missing_events": 0.0}
    judged = judge({**limits, "achieved_ratio": 0.95, "s3_missing_events": 0},
                   Measures(latency_p99_ms=612.0, error_ratio=0.0, achieved_ratio=0.97))
    assert [(j.name, j.passed) for j in judged] == [("latency_p99_ms", False), ("error_ratio", True),
                                                    ("achieved_ratio", True), ("s3_missing_events", False)]
    assert judged[0].describe() == "latency_p99_ms <= 500: 612 FAILED"
    assert judged[3].describe() == "s3_missing_events <= 0: not measured FAILED"
    for bad, why in [("p99=5", "unknown threshold 'p99'"), ("latency_p99_ms", "not NAME=VALUE"),
                     ("error_ratio=x", "not a number"), ("error_ratio=-1", "0 or more")]:
        with pytest.raises(ValueError, match=why):
            parse_thresholds(bad)


async def test_the_capacity_is_what_the_best_passing_step_took_never_its_target() -> None:
    # A collector that takes 20,000/s, and a latency threshold that lets an overload of up to 5 %
    # through (as a p99 bound over a short step does): steps up to 21,000/s pass, each taking 20,000/s.
    limit = 20_000.0
    rates: list[float] = []

    async def run_step(rate: float) -> Step:
        rates.append(rate)
        return Step(rate, min(rate, limit), rate <= limit * 1.05)

    cap = await search(run_step, start_eps=1000, max_eps=None, precision=0.05)
    passing = [s for s in cap.steps if s.passed]
    assert max(s.target_eps for s in passing) > limit  # the search did let an overloaded step through
    assert cap.events_per_second == max(s.achieved_eps for s in passing) == limit
