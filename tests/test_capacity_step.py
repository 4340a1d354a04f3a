"""One capacity step's figures from its run: the achieved rate is what the collector took while the rate was held."""

from __future__ import annotations

from wefperf.capacity.runs import SearchPlan, step_of
from wefperf.config.loading import load_settings
from wefperf.judge.verdict import judge
from wefperf.measure.recorder import Recorder
from wefperf.model import RunResult, ServerStats


def _step_run(plan: SearchPlan, rate: float, acks_per_second: list[int], drain: int) -> RunResult:
    """A step whose collector acknowledged `acks_per_second` while the plan ran, then its queue (`drain`) after."""
    settings = plan.step_settings(load_settings("capacity", {"thresholds": "latency_p99_ms=5000"}, environ={}), rate, 1)
    rec = Recorder(0.0)
    for second, acks in enumerate(acks_per_second):
        for i in range(acks // 100):
            at = second + i / (acks // 100)
            rec.sent(100, at, at)
            rec.ok(100, at, at, at + 0.01)
    window = plan.warmup_secs + plan.step_secs
    for i in range(drain // 100):
        rec.sent(100, window - 0.5, window - 0.5)
        rec.ok(100, window - 0.5, window - 0.5, window + 0.1 + i * 0.001)
    due = int(rate * (plan.warmup_secs / 2 + plan.step_secs))
    load = rec.summary(window + 0.5, window_s=window, due_events=due)
    verdict = judge(settings, load, None, server=ServerStats())
    return RunResult("r1", settings.test_name, "", "capacity", settings.public_dict(), load, ServerStats(), verdict)


def test_a_queue_worked_off_after_the_step_is_not_counted_as_taken() -> None:
    # 1,000/s asked for 3 s; the collector took 800/s and acknowledged the other 600 after the step.
    plan = SearchPlan(step_secs=3, warmup_secs=0)
    result = _step_run(plan, 1000, [800, 800, 800], drain=600)
    assert result.verdict.passed  # the run's own achieved_ratio (acknowledged / due) is 100 %
    step, verdict = step_of(1000, result, plan)
    assert step.achieved_eps == 800 and step.achieved_ratio == 0.8
    assert not step.passed and step.broken == ("achieved_ratio",)
    judged = next(j for j in verdict.thresholds if j.name == "achieved_ratio")
    assert judged.measured == step.achieved_eps / step.target_eps  # the table's figure is the judged one
    assert verdict.reasons == ["achieved_ratio >= 0.95: 0.8 FAILED"]


def test_the_warm_up_does_not_count_but_a_held_rate_passes() -> None:
    # A 1 s ramp (500 events), then 2 s at 1,000/s, all taken on time.
    plan = SearchPlan(step_secs=2, warmup_secs=1)
    result = _step_run(plan, 1000, [500, 1000, 1000], drain=0)
    step, verdict = step_of(1000, result, plan)
    assert step.achieved_eps == 1000 and step.achieved_ratio == 1.0 and step.passed and verdict.passed
