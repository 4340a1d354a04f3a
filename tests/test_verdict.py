"""The verdict: the seed's thresholds, and a cut-short run judged on the window it ran."""

from __future__ import annotations

from dataclasses import replace

from wefperf.config.loading import load_settings
from wefperf.judge.verdict import judge
from wefperf.measure.recorder import Recorder
from wefperf.model import ExitCode, LoadSummary


def _load(sent_events: int, *, elapsed: float, **changes: object) -> LoadSummary:
    rec = Recorder(0.0)
    for i in range(sent_events // 1000):
        rec.sent(1000, i * 0.1, i * 0.1)
        rec.ok(1000, i * 0.1, i * 0.1, i * 0.1 + 0.01)
    return replace(rec.summary(elapsed), **changes)  # type: ignore[arg-type]


def test_duration_run_that_sent_its_plan_passes() -> None:
    settings = load_settings(None, {"duration_secs": 30, "target_eps": 10_000}, environ={})
    verdict = judge(settings, _load(300_000, elapsed=30.0), None)
    assert verdict.passed and verdict.exit_code == ExitCode.PASSED
    assert verdict.target_ratio == 1.0


def test_duration_run_that_fell_short_fails_with_the_expected_count() -> None:
    settings = load_settings(None, {"duration_secs": 30, "target_eps": 10_000}, environ={})
    verdict = judge(settings, _load(200_000, elapsed=30.0), None)
    assert verdict.exit_code == ExitCode.FAILED
    assert verdict.target_ratio is not None and abs(verdict.target_ratio - 2 / 3) < 1e-9
    assert any("of the 300,000 expected" in r for r in verdict.reasons)


def test_interrupted_run_is_judged_on_what_was_due_in_its_window() -> None:
    """30 s at 20,000/s stopped after 6 s: 120,000 were due and sent, so the rate was held."""
    settings = load_settings(None, {"duration_secs": 30, "target_eps": 20_000}, environ={})
    load = _load(120_000, elapsed=6.2, interrupted=True, window_s=6.0, due_events=120_000)
    verdict = judge(settings, load, None)
    assert verdict.exit_code == ExitCode.INTERRUPTED and not verdict.passed
    assert verdict.target_ratio == 1.0  # not 120,000 / 600,000 = 20 %
    assert verdict.reasons == ["interrupted"]


def test_interrupted_run_that_fell_behind_says_so_against_its_window() -> None:
    settings = load_settings(None, {"duration_secs": 30, "target_eps": 20_000}, environ={})
    load = _load(60_000, elapsed=6.2, interrupted=True, window_s=6.0, due_events=120_000)
    verdict = judge(settings, load, None)
    assert verdict.target_ratio == 0.5
    assert any("of the 120,000 due in the 6.0 s the run lasted" in r for r in verdict.reasons)


def test_a_run_stopped_before_anything_fell_due_claims_no_share_of_its_target() -> None:
    """A --processes run whose hosts could not subscribe merges to 0 events due in a 0 s window:
    not "Target rate maintained: 100.0%", but no share at all, and the abort as the first reason."""
    settings = load_settings(None, {"duration_secs": 2, "target_eps": 100}, environ={})
    load = _load(0, elapsed=0.0, aborted="no host could subscribe", window_s=0.0, due_events=0)
    verdict = judge(settings, load, None)
    assert verdict.exit_code == ExitCode.FAILED and verdict.target_ratio is None
    assert verdict.reasons[0] == "aborted: no host could subscribe"
    # a run that ran its plan with nothing due (sparse arrivals) owed nothing, and held it
    whole = judge(settings, _load(0, elapsed=2.0, window_s=2.0, due_events=0), None)
    assert whole.target_ratio == 1.0


def test_count_mode_timeout_fails_with_its_reason() -> None:
    settings = load_settings(None, {"total_events": 100_000, "timeout_secs": 2}, environ={})
    verdict = judge(settings, _load(10_000, elapsed=2.0, timed_out=True), None)
    assert verdict.exit_code == ExitCode.FAILED
    assert verdict.reasons[0].startswith("timeout reached after 2 seconds: sent 10,000 of 100,000 events")


def test_failed_batches_and_s3_failure_each_fail_the_run() -> None:
    settings = load_settings(None, {"total_events": 10_000}, environ={})
    load = _load(10_000, elapsed=1.0)
    assert judge(settings, load, True).passed
    s3 = judge(settings, load, False)
    assert s3.exit_code == ExitCode.FAILED and s3.reasons == ["S3 verification failed"]
    failed = judge(settings, replace(load, batches_failed=2, events_failed=2000), None)
    assert failed.exit_code == ExitCode.FAILED and failed.reasons[0].startswith("2 batches failed")


def test_refused_batches_do_not_count_as_ingested() -> None:
    """A collector that dies mid-run: events sent but refused hold no part of the target rate."""
    settings = load_settings(None, {"duration_secs": 10, "target_eps": 10_000}, environ={})
    rec = Recorder(0.0)
    for i in range(100):
        rec.sent(1000, i * 0.1, i * 0.1)
        if i < 43:
            rec.ok(1000, i * 0.1, i * 0.1, i * 0.1 + 0.01)
        else:
            rec.failed(i, 1000, "connection_refused", "refused", i * 0.1)
    verdict = judge(settings, rec.summary(10.0), None)
    assert verdict.target_ratio == 0.43  # not 100 %: only acknowledged events were ingested
    assert verdict.exit_code == ExitCode.FAILED
    assert any(r.startswith("43,000 events acknowledged, 43.0% of the 100,000 expected") for r in verdict.reasons)
    assert any(r.startswith("57 batches failed") for r in verdict.reasons)


def test_a_staged_run_without_a_due_count_is_judged_on_its_curve() -> None:
    settings = load_settings(None, {"stages": "5:5000,5:20000"}, environ={})
    verdict = judge(settings, _load(75_000, elapsed=10.0), None)  # no due_events: the curve's 75,000
    assert verdict.target_ratio == 1.0 and verdict.passed
