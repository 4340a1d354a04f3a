"""Scale-out against a lagging collector (issue 19, item 3): the whole run's events are waited for.

The collector acknowledges at once but counts each event `count_delay_s` later. A one-process
run waits for its acknowledged events and passes; a `--processes 2` run, or segments merged
by `wefperf merge`, must wait for every segment's events too, and give the same verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_collector import FakeCollector
from helpers import wefperf as run_cli

# 4,000 events over ~2 s, counted 2 s after their ack: the count grows from ~2 s to ~4 s after
# the start, so a wait that stopped at half the run's events reads about half of them.
DELAY_S = 2.0
PLAN = ["--total-events", "4000", "--batch-size", "100", "--target-eps", "2000",
        "--threshold", "server_missing_events=0"]


@pytest.fixture
def lagging() -> Iterator[FakeCollector]:
    c = FakeCollector(count_delay_s=DELAY_S).start()
    yield c
    c.stop()


def _env(c: FakeCollector) -> dict[str, str]:
    # Counts, not speed: a busy machine must not fail the rate; the wait (20 s) outlasts the lag (2 s).
    return {"WEF_ENDPOINT": c.url, "PERF_TEST_PROCESSING_WAIT_SECS": "20", "PERF_TEST_PASS_RATIO": "0.5"}


def _figures(path: Path) -> tuple[int, int | None, bool]:
    data = json.loads(path.read_text())
    r = data["results"]
    return r["events_acknowledged"], r["events_received"], data["verdict"]["passed"]


@pytest.mark.slow
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_lagging_collector_gets_the_same_verdict_with_one_or_two_processes(
    lagging: FakeCollector, tmp_path: Path, processes: str
) -> None:
    results = tmp_path / "r.json"
    done = run_cli("run", "--processes", processes, *PLAN, "--results", str(results), env=_env(lagging))
    acked, received, passed = _figures(results)
    assert acked == 4000, done.out + done.err
    assert received == 4000, f"the server counted {received} of 4,000 acknowledged events\n{done.out}"
    assert passed and done.code == 0, done.out + done.err


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERF_TEST_", "WEF_", "S3_", "AWS_"))}
    return subprocess.Popen([sys.executable, "-m", "wefperf", *args], env={**base, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_merge_with_a_reachable_server_waits_for_the_whole_run_and_reads_again(
    lagging: FakeCollector, tmp_path: Path
) -> None:
    shards = tmp_path / "shards"
    start_at = time.time() + 3
    procs = [
        _start(["run", *PLAN, "--segment", f"{i}/2", "--run-id", "lag1", "--start-at", repr(start_at),
                "--shard-results", str(shards), "--results", str(tmp_path / f"seg{i}.json")], _env(lagging))
        for i in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=90)
        assert p.returncode in (0, 1), out + err
    # each segment stopped waiting once the server had counted as many events as it sent itself
    finals = [json.loads((tmp_path / f"seg{i}.json").read_text())["results"]["events_received"] for i in range(2)]
    merged = tmp_path / "m.json"
    done = run_cli("merge", str(shards), "--results", str(merged), env=_env(lagging))
    acked, received, passed = _figures(merged)
    assert acked == 4000, done.out + done.err
    assert received == 4000, f"merged count {received}, the segments read {finals}\n{done.out}"
    assert passed and done.code == 0, done.out + done.err
    # merge waits and reads again when the segments' last read was short (on a busy machine a
    # late segment may itself have waited long enough to see the whole run counted)
    if max(f for f in finals if f is not None) < 4000:
        assert "Waiting for event processing to complete" in done.out


# -- issue 19, item 6: the result of a scale-out run has the shape and flags of a one-process run --------


# Maps keyed by what the run met (event types, error classes): their keys are data, not shape.
KEYED_BY_DATA = ("per_type_delta", "expected_per_type", "baseline_per_type", "final_per_type", "errors")


def _paths(value: object, prefix: str = "") -> set[str]:
    """Every key path of a results JSON (list items by their first element)."""
    if isinstance(value, dict) and not prefix.endswith(KEYED_BY_DATA):
        out = {prefix}
        for key, inner in value.items():
            out |= _paths(inner, f"{prefix}.{key}")
        return out
    if isinstance(value, list) and value:
        return {prefix} | _paths(value[0], prefix + "[]")
    return {prefix}


FLAGS = ("interrupted", "timed_out", "cut_short", "aborted")


@pytest.mark.slow
def test_processes_with_verify_s3_give_the_shape_and_flags_of_one_process(
    wef_target, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    target = wef_target("--flush-interval-secs", "1")
    env = {"WEF_ENDPOINT": target.base, "S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PERF_TEST_PROCESSING_WAIT_SECS": "5",
           "PERF_TEST_FLUSH_INTERVAL_SECS": "1", "PERF_TEST_PASS_RATIO": "0.5"}
    runs = {}
    for processes in ("1", "2"):
        path = tmp_path / f"p{processes}.json"
        done = run_cli("run", "--processes", processes, "--total-events", "2000", "--batch-size", "100",
                       "--target-eps", "2000", "--verify-s3", "--test-name", "shape", "--results", str(path), env=env)
        assert done.code == 0, done.out + done.err
        runs[processes] = json.loads(path.read_text())
    one, two = runs["1"], runs["2"]
    # the same keys (a merged run adds what it merged, nothing else), the S3 check of the whole run
    assert _paths(two) - _paths(one) <= {p for p in _paths(two) if p.startswith(".merged")}
    assert _paths(one) - _paths(two) == set()
    assert two["s3_verification"]["accounting"]["found"] == 2000
    # the configuration is the run's as given, --processes included (not a child's, not cleared by a merge)
    assert two["configuration"]["processes"] == "2" and one["configuration"]["processes"] == "1"
    assert {k: v for k, v in two["configuration"].items() if k not in ("processes", "results_path")} == \
        {k: v for k, v in one["configuration"].items() if k not in ("processes", "results_path")}
    assert [two["results"][f] for f in FLAGS] == [one["results"][f] for f in FLAGS] == [False, False, False, None]
    assert two["stopped_in"] is one["stopped_in"] is None
    assert two["verdict"]["passed"] and two["verdict"]["exit_code"] == one["verdict"]["exit_code"] == 0


@pytest.mark.slow
def test_ctrl_c_while_processes_wait_for_s3_exits_130_and_says_interrupted(
    collector: FakeCollector, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    import signal

    # The fake collector writes nothing to S3: the check waits for its whole flush window (25 s).
    env = {"WEF_ENDPOINT": collector.url, "S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PERF_TEST_PROCESSING_WAIT_SECS": "5",
           "PERF_TEST_FLUSH_INTERVAL_SECS": "5", "PERF_TEST_PASS_RATIO": "0.5"}
    results = tmp_path / "r.json"
    proc = _start(["run", "--processes", "2", "--total-events", "1000", "--batch-size", "100", "--target-eps", "2000",
                   "--verify-s3", "--results", str(results)], env)
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        seen.append(line)
        if "Waiting for S3 parquet file flush" in line or time.monotonic() > deadline:
            break
    assert any("Waiting for S3" in s for s in seen), "".join(seen)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 130, "".join(seen) + out + err
    data = json.loads(results.read_text())
    assert data["results"]["interrupted"] is True
    assert data["stopped_in"] == "verifying S3" and data["s3_verification"] is None
    assert data["verdict"]["exit_code"] == 130 and not data["verdict"]["passed"]
    assert data["configuration"]["processes"] == "2"
