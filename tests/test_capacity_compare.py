"""`wefperf compare` on capacity searches: a capacity found only as "at least N" is a lower bound, not a regression."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import wefperf
from wefperf.capacity.rates import Capacity, Step
from wefperf.capacity.runs import CapacityResult, SearchPlan
from wefperf.config.loading import load_settings


def _search(tmp_path: Path, name: str, eps: float, *, at_least: bool) -> str:
    """A capacity results file: found exactly (a rate above it broke), or only as "at least" (stopped at --max-eps)."""
    settings = load_settings("capacity", {"thresholds": "latency_p99_ms=500"}, environ={})
    held = Step(eps, eps, True, 5.0, 100.0, 150.0, 0.0, 0)
    steps = [held] if at_least else [held, Step(eps * 1.05, eps, False, 300.0, 900.0, 950.0, 0.0, 0,
                                                ("latency_p99_ms",))]
    cap = Capacity(eps, 0.05, steps, lowest_broken=None if at_least else eps * 1.05, reached_max=at_least)
    plan = SearchPlan(max_eps=eps if at_least else None)
    result = CapacityResult(cap, plan, settings, "capacity", "2026-12-07T00:00:00+00:00", {"latency_p99_ms": 500.0})
    path = tmp_path / name
    path.write_text(json.dumps(result.to_dict(), default=str))
    return str(path)


def test_a_capacity_that_is_only_a_lower_bound_is_not_a_regression(tmp_path: Path) -> None:
    exact = _search(tmp_path, "exact.json", 20_000, at_least=False)
    bound = _search(tmp_path, "bound.json", 15_000, at_least=True)
    done = wefperf("compare", exact, bound, "--fail-if-worse", "5")
    assert done.code == 0, done.out + done.err
    row = next(line for line in done.out.splitlines() if line.startswith("capacity (ev/s)"))
    assert "20,000" in row and "≥ 15,000" in row
    assert "bound.json: capacity ≥ 15,000 is a lower bound" in done.out


def test_a_lower_bound_in_the_first_file_is_a_floor_the_later_must_reach(tmp_path: Path) -> None:
    bound = _search(tmp_path, "bound.json", 15_000, at_least=True)
    lower = _search(tmp_path, "lower.json", 12_000, at_least=False)
    higher = _search(tmp_path, "higher.json", 16_000, at_least=False)
    done = wefperf("compare", bound, lower, "--fail-if-worse", "5")
    assert done.code == 1 and "lower.json: capacity 12,000 is 20.0% lower than bound.json's ≥ 15,000" in done.out
    assert wefperf("compare", bound, higher, "--fail-if-worse", "5").code == 0
