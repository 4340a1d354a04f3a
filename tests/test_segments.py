"""Segments of one plan (issue 11), pure: the union of segments is the one-process plan; merge rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from helpers import wefperf as run_cli
from wefperf.config.loading import load_settings
from wefperf.config.rules import ConfigError
from wefperf.judge.verdict import judge
from wefperf.load.arrivals import build_arrivals
from wefperf.load.scheduler import Schedule, Scheduler
from wefperf.load.shapes import Stage
from wefperf.measure.recorder import Recorder
from wefperf.model import RunResult, ServerStats, ShardData
from wefperf.payload import build_pool
from wefperf.runner.segments import SegmentInfo
from wefperf.scaleout.merge import merge, merge_ranges
from wefperf.scaleout.shards import Shard, ShardError, _one_run


def _claims(schedule: Schedule, segment: tuple[int, int]) -> list[tuple[int, float]]:
    sched = Scheduler(schedule, 100.0, segment)
    out = []
    while (claim := sched.claim(100.0)) is not None:
        out.append((claim[0], round(claim[1], 9)))
    return out


PLANS = {
    "count at a rate": Schedule.for_run(target_eps=10_000, batch_size=100, total_events=10_050, duration_s=0,
                                        timeout_s=600),
    "duration": Schedule.for_run(target_eps=5_000, batch_size=10, total_events=0, duration_s=3, timeout_s=600),
    "stages": Schedule.for_run(target_eps=0, batch_size=10, total_events=0, duration_s=0, timeout_s=600,
                               stages=[Stage(2, 3000), Stage(1, 500)]),
    "unlimited count": Schedule.for_run(target_eps=0, batch_size=7, total_events=1000, duration_s=0, timeout_s=600),
}


@pytest.mark.parametrize("plan", sorted(PLANS))
@pytest.mark.parametrize("count", [2, 3, 7])
def test_the_union_of_segments_is_the_one_process_plan_at_the_same_times(plan: str, count: int) -> None:
    schedule = PLANS[plan]
    whole = _claims(schedule, (0, 1))
    parts = [_claims(schedule, (i, count)) for i in range(count)]
    for i, part in enumerate(parts):
        assert all(batch % count == i for batch, _ in part)
    merged = sorted(c for part in parts for c in part)
    if schedule.unlimited:  # unlimited: due "now", so only the batch numbers are the plan
        assert [b for b, _ in merged] == [b for b, _ in whole]
    else:
        assert merged == whole
    assert len(whole) > count


def test_a_segments_due_batches_are_its_share_of_the_plan() -> None:
    schedule = PLANS["duration"]
    for elapsed in (0.0, 0.5, 1.234, 3.0):
        due = schedule.due_by(elapsed)
        assert sum(Scheduler(schedule, 0.0, (i, 3)).due_batches(elapsed) for i in range(3)) == due


def test_hosts_of_segments_arrive_exactly_as_in_the_whole_fleet() -> None:
    curve = PLANS["duration"].curve
    assert curve is not None
    kw = dict(seed=42, hosts=10, curve=curve, max_items=5, end_s=3.0, total_events=None, constant_eps=5000.0)
    whole = build_arrivals(**kw)  # type: ignore[arg-type]
    for i in range(3):
        part = build_arrivals(**kw, segment=(i, 3))  # type: ignore[arg-type]
        assert [list(a.due) for a in part] == [list(whole[h].due) for h in range(i, 10, 3)]


def test_segment_event_types_add_up_to_the_whole_plans() -> None:
    pool = build_pool(run_id="abc", batch_size=10, total_events=1005, variants=4, seed=7)
    whole = pool.expected_types(101, [(3, 5), (50, 50)])
    parts = [pool.segment_types(len(range(i, 101, 3)), (i, 3), [(3, 5), (50, 50)]) for i in range(3)]
    total = parts[0] + parts[1] + parts[2]
    assert total == whole


def _shard(index: int, count: int, latencies_ms: list[float], settings_over: dict[str, object] | None = None,
           run_id: str = "run1") -> Shard:
    settings = load_settings(None, {"total_events": 400, "batch_size": 100, "segment": f"{index}/{count}",
                                    **(settings_over or {})}, {})
    rec = Recorder(0.0, second_histograms=True)
    for n, ms in enumerate(latencies_ms):
        t = 0.1 + n * 0.5
        rec.sent(100, t, t)
        rec.ok(100, t, t, t + ms / 1000)
    load = rec.summary(len(latencies_ms) * 0.5 + 0.2)
    result = RunResult(run_id=run_id, test_name="t", timestamp="2026-11-28T12:00:00+00:00", profile=None,
                       configuration=settings.public_dict(), load=load, server=ServerStats(),
                       verdict=judge(settings, load, None), payload_seed=5,
                       shard=ShardData(SegmentInfo(index, count, 1.0)))
    data = json.loads(json.dumps(result.to_dict(), default=str))
    return Shard(f"seg{index}", data)


def test_merged_percentiles_are_those_of_the_merged_histograms() -> None:
    a = [1.0, 2.0, 3.0, 400.0]
    b = [5.0, 6.0, 7.0, 8.0]
    merged = merge([_shard(0, 2, a), _shard(1, 2, b)]).result
    h = HdrHistogram(1, 3_600_000_000, 3)
    for ms in a + b:
        h.record_value(int(ms * 1000))
    lat = merged.load.latency
    assert lat.count == 8
    assert lat.p50 == h.get_value_at_percentile(50) / 1000
    assert lat.p99 == h.get_value_at_percentile(99) / 1000 and lat.max == h.get_max_value() / 1000
    # not an average of the segments' p99 (400 and 8): the merged one is the slow segment's 400 ms
    assert abs(lat.p99 - 400) < 1
    assert merged.load.events_ok == 800 and merged.load.batches_ok == 8
    # per second: the rows add up, and second 0 holds both segments' first two batches
    first = merged.load.timeline[0]
    assert first.acked_events == 400
    h0 = HdrHistogram(1, 3_600_000_000, 3)
    for ms in (1.0, 2.0, 5.0, 6.0):
        h0.record_value(int(ms * 1000))
    assert first.p99_ms == h0.get_value_at_percentile(99) / 1000
    assert merged.verdict.passed, merged.verdict.reasons
    assert merged.to_dict()["merged"]["segments"] == 2


def test_shards_of_one_run_need_every_segment_and_one_plan() -> None:
    shards = [_shard(i, 4, [1.0]) for i in (0, 1, 3)]
    with pytest.raises(ShardError, match="segment 2 of 4 is missing"):
        _one_run(shards, None)
    with pytest.raises(ShardError, match="choose one with --run-id"):
        _one_run([_shard(0, 1, [1.0]), _shard(0, 1, [1.0], run_id="other")], None)
    assert len(_one_run([_shard(0, 1, [1.0]), _shard(0, 1, [1.0], run_id="other")], "other")) == 1
    with pytest.raises(ShardError, match="disagree on their count"):
        _one_run([_shard(0, 2, [1.0]), _shard(1, 3, [1.0])], None)
    with pytest.raises(ShardError, match="plan differs"):
        _one_run([_shard(0, 2, [1.0]), _shard(1, 2, [1.0], {"batch_size": 50})], None)
    with pytest.raises(ShardError, match="appears twice"):
        _one_run([_shard(0, 2, [1.0]), _shard(0, 2, [1.0])], None)


def test_a_staged_runs_segments_merge_and_are_judged_on_the_whole_shape() -> None:
    over = {"stages": "1:800,1:800", "total_events": 0, "thresholds": "latency_p99_ms=300"}
    merged = merge([_shard(0, 2, [1.0, 2.0], over), _shard(1, 2, [3.0, 500.0], over)])
    assert merged.settings.stages and merged.settings.duration_secs == 2
    assert not merged.result.verdict.passed  # p99 500 ms of the merge breaks 300, though segment 0 alone holds it
    assert any("latency_p99_ms" in r for r in merged.result.verdict.reasons)


def test_failed_ranges_of_segments_join_into_runs() -> None:
    assert merge_ranges([[[0, 0], [2, 2], [4, 4]], [[1, 1], [3, 3], [9, 9]]]) == [(0, 4), (9, 9)]


def test_segment_settings_and_indexed_job_environment() -> None:
    assert load_settings(None, {"segment": " 1/4 "}, {}).segment_of == (1, 4)
    assert load_settings(None, {}, {"JOB_COMPLETION_INDEX": "2", "PERF_TEST_SEGMENTS": "3"}).segment_of == (2, 3)
    # PERF_TEST_SEGMENT wins over the Job's index
    env = {"JOB_COMPLETION_INDEX": "2", "PERF_TEST_SEGMENTS": "3", "PERF_TEST_SEGMENT": "0/2"}
    assert load_settings(None, {}, env).segment_of == (0, 2)
    assert load_settings(None, {}, {"JOB_COMPLETION_INDEX": "2"}).segment_of == (0, 1)  # no N: the whole plan
    for env, words in (({"PERF_TEST_SEGMENT": "4/4"}, "below N"), ({"PERF_TEST_SEGMENT": "0/0"}, "at least 1"),
                       ({"PERF_TEST_SEGMENT": "a/2"}, "i/N"),
                       ({"JOB_COMPLETION_INDEX": "3", "PERF_TEST_SEGMENTS": "3"}, "below N"),
                       ({"JOB_COMPLETION_INDEX": "x", "PERF_TEST_SEGMENTS": "3"}, "JOB_COMPLETION_INDEX"),
                       ({"PERF_TEST_RUN_ID": "Run-1"}, "PERF_TEST_RUN_ID"),
                       ({"PERF_TEST_PROCESSES": "0"}, "PERF_TEST_PROCESSES"),
                       ({"PERF_TEST_SHARD_RESULTS": "/tmp/x"}, "only a segment")):
        with pytest.raises(ConfigError, match=words):
            load_settings(None, {}, env)
    assert load_settings(None, {"processes": "auto"}, {}).process_count >= 1


@pytest.mark.parametrize("args, words", [
    (["--segment", "2/2"], "PERF_TEST_SEGMENT"),
    (["--run-id", "UPPER"], "PERF_TEST_RUN_ID"),
    (["--start-at", "1000"], "in the past"),
    (["--processes", "many"], "PERF_TEST_PROCESSES"),
])
def test_bad_scale_out_flags_exit_2_with_one_line(args: list[str], words: str, tmp_path: Path) -> None:
    done = run_cli("run", "--results", str(tmp_path / "r.json"), "--wef-endpoint", "http://127.0.0.1:9", *args)
    assert done.code == 2, done.out + done.err
    assert words in done.err and len(done.err.strip().splitlines()) == 1


def test_verify_from_a_segments_results_points_to_merge() -> None:
    from wefperf.verify import VerifyOptions
    from wefperf.verify.from_results import ResultsFileError, options_from_results

    base = VerifyOptions(endpoint="http://127.0.0.1:9", bucket="b", access_key="k", secret_key="s")
    with pytest.raises(ResultsFileError, match="wefperf merge"):
        options_from_results(_shard(1, 2, [1.0]).data, base, None)
