"""Scale-out end to end (issue 11): segments, merge, --processes, shards through S3; real sockets."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_collector import FakeCollector
from helpers import wefperf as run_cli


def _env(c: FakeCollector, **extra: str) -> dict[str, str]:
    # These tests check counts and merging, not speed: a loaded machine must not fail them on the rate.
    return {"WEF_ENDPOINT": c.url, "PERF_TEST_PROCESSING_WAIT_SECS": "2", "PERF_TEST_PASS_RATIO": "0.5", **extra}


def test_processes_2_merge_counts_equal_what_the_server_received(collector: FakeCollector, tmp_path: Path) -> None:
    results = tmp_path / "merged.json"
    done = run_cli("run", "--processes", "2", "--total-events", "20000", "--batch-size", "100",
                   "--target-eps", "20000", "--results", str(results), "--report", "auto", env=_env(collector))
    assert done.code == 0, done.out + done.err
    data = json.loads(results.read_text())
    r = data["results"]
    assert r["events_sent"] == r["events_acknowledged"] == 20_000
    assert collector.requests == 200 and sum(collector.events.values()) == 20_000
    assert r["events_received"] == 20_000
    assert data["merged"]["segments"] == 2
    assert data["latency_ms"]["from_intended_send"]["count"] == 200
    # the merged timeline adds up to the totals, one row per second of the shared plan
    assert sum(row["sent_events"] for row in data["timeline"]) == 20_000
    assert sum(row["acked_events"] for row in data["timeline"]) == 20_000
    assert "PERFORMANCE TEST RESULTS" in done.out and "Processes: 2" in done.out
    assert Path(str(results).replace(".json", ".html")).is_file()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _wait_children(pid: int, n: int, timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(pid)
        if len(kids) >= n:
            return kids
        time.sleep(0.1)
    raise AssertionError(f"{n} child processes did not start")


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERF_TEST_", "WEF_", "S3_", "AWS_"))}
    return subprocess.Popen([sys.executable, "-m", "wefperf", *args], env={**base, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_ctrl_c_reaches_every_child_and_merges_partial_results(collector: FakeCollector, tmp_path: Path) -> None:
    import signal

    results = tmp_path / "r.json"
    proc = _start(["run", "--processes", "2", "--duration-secs", "60", "--target-eps", "2000", "--batch-size", "10",
                   "--results", str(results)], _env(collector))
    kids = _wait_children(proc.pid, 2)
    time.sleep(4)  # past the shared start (2 s) and into the load
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=40)
    assert proc.returncode == 130, out + err
    for kid in kids:
        assert not Path(f"/proc/{kid}").exists() or "zombie" in Path(f"/proc/{kid}/status").read_text()
    data = json.loads(results.read_text())
    r = data["results"]
    assert r["interrupted"] and data["merged"]["segments"] == 2
    assert 0 < r["events_sent"] < 120_000
    assert r["events_acknowledged"] == sum(collector.events.values())
    assert "interrupted" in out


@pytest.mark.slow
def test_a_child_that_dies_is_named_and_the_run_fails(collector: FakeCollector, tmp_path: Path) -> None:
    import signal

    results = tmp_path / "r.json"
    proc = _start(["run", "--processes", "2", "--duration-secs", "4", "--target-eps", "2000", "--batch-size", "10",
                   "--results", str(results)], _env(collector))
    kids = _wait_children(proc.pid, 2)
    time.sleep(3)
    victim = max(kids)
    import os

    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert f"pid {victim} died (signal 9)" in out
    data = json.loads(results.read_text())
    assert not data["verdict"]["passed"]
    assert any(f"pid {victim} died" in p for p in data["merged"]["problems"])


@pytest.mark.slow
def test_two_segments_one_start_then_merge_from_s3_equal_one_process(wef_target, moto_endpoint: str, bucket: str,
                                                                     tmp_path: Path) -> None:
    from wefperf.payload import build_pool

    target = wef_target("--flush-interval-secs", "1")
    env = {"WEF_ENDPOINT": target.base, "S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PERF_TEST_PROCESSING_WAIT_SECS": "3",
           "PERF_TEST_FLUSH_INTERVAL_SECS": "1", "PERF_TEST_VERIFY_S3": "true", "PERF_TEST_PASS_RATIO": "0.5"}
    start_at = time.time() + 3
    plan = ["--total-events", "4050", "--batch-size", "100", "--target-eps", "0"]  # counts, not speed: unlimited
    procs = [
        _start(["run", *plan, "--segment", f"{i}/2", "--run-id", "abc123", "--start-at", repr(start_at),
                "--shard-results", f"s3://{bucket}/shards", "--results", str(tmp_path / f"seg{i}.json")], env)
        for i in range(2)
    ]
    outs = [p.communicate(timeout=90) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert "once for the whole run" in out and "Segment results stored at s3://" in out
    seg = [json.loads((tmp_path / f"seg{i}.json").read_text()) for i in range(2)]
    assert [s["segment"] for s in seg] == [{"index": 0, "count": 2}, {"index": 1, "count": 2}]
    assert sum(s["results"]["events_sent"] for s in seg) == 4050
    assert seg[0]["s3_verification"] is None  # never per segment

    merged_path = tmp_path / "merged.json"
    done = run_cli("merge", f"s3://{bucket}/shards/", "--verify-s3", "--results", str(merged_path), env=env)
    assert done.code == 0, done.out + done.err
    data = json.loads(merged_path.read_text())
    r = data["results"]
    # what one process sends: 41 batches (the last one short), 4,050 events, the same event types
    assert r["events_sent"] == r["events_acknowledged"] == r["events_received"] == 4050
    assert r["successful_batches"] == 41
    pool = build_pool(run_id="abc123", batch_size=100, total_events=4050, variants=8, seed=data["payload"]["seed"])
    expected = {str(k): v for k, v in sorted(pool.expected_types(41).items())}
    assert data["server_stats"]["expected_per_type"] == expected
    acct = data["s3_verification"]["accounting"]
    assert data["s3_verification"]["success"] and acct["expected"] == 4050 and acct["missing"] == 0
    assert acct["duplicated"] == 0 and acct["found"] == 4050
    assert data["latency_ms"]["from_intended_send"]["count"] == 41

    # one segment short: the merge names it
    s3 = _s3(moto_endpoint)
    s3.delete_object(Bucket=bucket, Key="shards/results/abc123/segment-1-of-2.json")
    done = run_cli("merge", f"s3://{bucket}/shards", "--results", str(tmp_path / "m2.json"), env=env)
    assert done.code == 2 and "segment 1 of 2 is missing" in done.err


def _s3(endpoint: str):
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing")


@pytest.mark.slow
def test_processes_with_hosts_verify_s3_once_for_the_whole_run(wef_target, moto_endpoint: str, bucket: str,
                                                              tmp_path: Path) -> None:
    target = wef_target("--flush-interval-secs", "1")
    env = {"WEF_ENDPOINT": target.base, "S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PERF_TEST_PROCESSING_WAIT_SECS": "3",
           "PERF_TEST_FLUSH_INTERVAL_SECS": "1", "PERF_TEST_PASS_RATIO": "0.5"}
    results = tmp_path / "r.json"
    done = run_cli("run", "--processes", "2", "--hosts", "7", "--max-items", "10", "--max-latency-secs", "1",
                   "--target-eps", "1000", "--duration-secs", "2", "--verify-s3", "--results", str(results),
                   "--shard-results", str(tmp_path / "shards"), env=env)
    assert done.code == 0, done.out + done.err
    assert done.out.count("Waiting for S3 parquet file flush") == 1  # the parent's one check, not per child
    data = json.loads(results.read_text())
    acct = data["s3_verification"]["accounting"]
    sent = data["results"]["events_sent"]
    assert data["hosts"]["hosts"] == 7 and sent == data["hosts"]["events_due"] > 0
    assert acct["expected"] == sent == acct["found"] and acct["missing"] == acct["duplicated"] == 0
    # the children stored their shards too: they merge into the same totals
    again = run_cli("merge", str(tmp_path / "shards"), "--results", str(tmp_path / "m.json"), env=env)
    assert again.code == 0, again.out + again.err
    assert json.loads((tmp_path / "m.json").read_text())["results"]["events_sent"] == sent


def test_a_late_start_is_said_and_shows_as_schedule_lag(collector: FakeCollector, tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    # 8 s of plan: a busy machine's slow start of the process cannot push it past the whole run
    done = run_cli("run", "--segment", "0/1", "--run-id", "late1", "--start-at", repr(time.time() - 1.5),
                   "--duration-secs", "8", "--target-eps", "1000", "--batch-size", "10", "--results", str(results),
                   env=_env(collector))
    assert "after the shared start" in done.out, done.out + done.err
    data = json.loads(results.read_text())
    lag = data["latency_ms"]["schedule_lag"]
    assert lag["max"] > 1000  # the first batches were due 1.5 s before this process could start
    assert data["start_at"] and data["segment"] == {"index": 0, "count": 1} and data["run_id"] == "late1"
    assert data["results"]["events_sent"] <= 8000


@pytest.mark.slow
def test_indexed_job_pods_with_processes_store_every_shard_and_merge_to_the_whole_plan(
    collector: FakeCollector, tmp_path: Path
) -> None:
    shards = tmp_path / "shards"
    env = {**_env(collector), "PERF_TEST_SEGMENTS": "2", "PERF_TEST_PROCESSES": "2", "PERF_TEST_RUN_ID": "pods1",
           "PERF_TEST_START_AT": repr(time.time() + 3), "PERF_TEST_SHARD_RESULTS": str(shards)}
    pods = [_start(["run", "--total-events", "3000", "--batch-size", "100", "--results", str(tmp_path / f"pod{i}.json")],
                   {**env, "JOB_COMPLETION_INDEX": str(i)}) for i in range(2)]
    for pod in pods:
        out, err = pod.communicate(timeout=90)
        assert pod.returncode == 0, out + err
    # pod i's children ran segments i and i + 2 of 4
    names = sorted(p.name for p in (shards / "results" / "pods1").iterdir())
    assert names == [f"segment-{i}-of-4.json" for i in range(4)]
    assert json.loads((tmp_path / "pod1.json").read_text())["results"]["events_sent"] == 1500
    done = run_cli("merge", str(shards), "--results", str(tmp_path / "m.json"), env=_env(collector))
    assert done.code == 0, done.out + done.err
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["results"]["events_sent"] == data["results"]["events_acknowledged"] == 3000
    assert data["results"]["successful_batches"] == 30 and data["merged"]["segments"] == 4
    assert sum(collector.events.values()) == 3000
