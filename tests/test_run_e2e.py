"""The runner end to end: the real CLI against a real HTTP collector on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_collector import FakeCollector
from helpers import wefperf as run_cli

import wefperf

SECRET = "s3cr3t-never-printed"


@pytest.fixture
def collector():
    c = FakeCollector().start()
    yield c
    c.stop()


def _env(c: FakeCollector, **extra: str) -> dict[str, str]:
    return {"WEF_ENDPOINT": c.url, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ACCESS_KEY_ID": "AKIDSECRETID",
            "PERF_TEST_PROCESSING_WAIT_SECS": "3", **extra}


def test_baseline_profile_passes_against_a_contract_server(collector: FakeCollector, tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    done = run_cli("run", "--profile", "baseline", "--results", str(results), env=_env(collector))
    assert done.code == 0, done.out + done.err
    assert "PERFORMANCE TEST RESULTS" in done.out
    assert "Events sent: 50,000" in done.out
    assert "Events received (by server): 50,000" in done.out
    assert "Successful batches: 50" in done.out and "Failed batches: 0" in done.out
    assert "✓ Performance test completed successfully" in done.out
    assert collector.requests == 50 and sum(collector.events.values()) == 50_000

    data = json.loads(results.read_text())
    for key in ("timestamp", "test_name", "configuration", "results", "s3_verification", "server_stats",
                "run_id", "latency_ms", "errors", "timeline"):
        assert key in data
    r = data["results"]
    for key in ("total_time_seconds", "events_sent", "events_received", "successful_batches", "failed_batches",
                "events_per_second_overall", "events_per_second_processed"):
        assert key in r
    assert r["events_sent"] == 50_000 and r["events_received"] == 50_000 and r["failed_batches"] == 0
    assert data["server_stats"]["final_total"] - data["server_stats"]["baseline_total"] == 50_000
    assert data["latency_ms"]["from_intended_send"]["count"] == 50
    assert data["latency_ms"]["from_intended_send"]["p99"] >= data["latency_ms"]["from_intended_send"]["p50"] > 0
    # per-type delta equals what the run's batches carried
    assert data["server_stats"]["per_type_delta"] == data["server_stats"]["expected_per_type"]
    assert len(data["server_stats"]["per_type_delta"]) == 5
    # credentials never appear
    assert SECRET not in done.out + done.err + results.read_text()
    assert "AKIDSECRETID" not in done.out + done.err + results.read_text()


def test_failed_batches_are_counted_by_class_and_fail_the_run(tmp_path: Path) -> None:
    c = FakeCollector(fail_every=5, fail_status=500).start()
    try:
        results = tmp_path / "r.json"
        done = run_cli("run", "--profile", "baseline", "--results", str(results), env=_env(c))
    finally:
        c.stop()
    assert done.code == 1, done.out + done.err
    data = json.loads(results.read_text())
    assert data["results"]["failed_batches"] == 10
    assert data["results"]["successful_batches"] == 40
    assert data["errors"]["http_500"]["batches"] == 10
    assert data["errors"]["http_500"]["events"] == 10_000
    assert "http_500" in done.out and "10 batch(es) failed" in done.out
    # the first few are logged, the rest only counted
    assert 1 <= done.err.count("failed: HTTP 500") <= 3
    assert data["server_stats"]["per_type_delta"] == data["server_stats"]["expected_per_type"]


def test_nothing_listening_ends_with_one_line(tmp_path: Path) -> None:
    from wefperf.collector.s3server import free_port

    port = free_port()
    done = run_cli("run", "--profile", "baseline", "--results", str(tmp_path / "r.json"),
                   env={"WEF_ENDPOINT": f"http://127.0.0.1:{port}", "PERF_TEST_HEALTH_TIMEOUT_SECS": "1"})
    assert done.code == 1
    lines = [line for line in done.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "connection refused" in lines[0] and "WEF_ENDPOINT" in lines[0]
    assert "Traceback" not in done.out + done.err
    assert "PERFORMANCE TEST RESULTS" not in done.out


@pytest.mark.slow
def test_rate_10k_for_10s_is_held_and_every_request_accounted(collector: FakeCollector, tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    done = run_cli("run", "--duration-secs", "10", "--target-eps", "10000", "--event-type", "4624",
                   "--results", str(results), env=_env(collector), timeout=120)
    assert done.code == 0, done.out + done.err
    data = json.loads(results.read_text())["results"]
    assert abs(data["events_sent"] - 100_000) <= 1_000
    assert collector.ok_requests == data["successful_batches"] == collector.requests
    assert "Progress:" not in done.out or "events sent - Current rate:" in done.out
    assert "Target rate maintained:" in done.out


def test_progress_lines_every_100_batches(collector: FakeCollector, tmp_path: Path) -> None:
    done = run_cli("run", "--total-events", "300000", "--batch-size", "1000", "--event-type", "4624",
                   "--results", str(tmp_path / "r.json"), env=_env(collector))
    assert done.code == 0, done.err
    progress = [line for line in done.out.splitlines() if line.startswith("  Progress: ")]
    assert len(progress) == 3
    assert progress[0].startswith("  Progress: 100,000 events sent - Current rate: ")
    assert "events/sec - Remaining: " in progress[0]


def test_small_batches_report_progress_every_100000_events(collector: FakeCollector, tmp_path: Path) -> None:
    done = run_cli("run", "--total-events", "200000", "--batch-size", "100", "--event-type", "4624",
                   "--results", str(tmp_path / "r.json"), env=_env(collector))
    assert done.code == 0, done.err
    progress = [line for line in done.out.splitlines() if line.startswith("  Progress: ")]
    assert [p.split(" events sent")[0] for p in progress] == ["  Progress: 100,000", "  Progress: 200,000"]


def test_sigint_drains_and_writes_partial_results(collector: FakeCollector, tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERF_TEST_", "WEF_"))}
    env.update(_env(collector))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wefperf", "run", "--duration-secs", "60", "--target-eps", "2000",
         "--batch-size", "100", "--event-type", "4624", "--results", str(results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    deadline = time.monotonic() + 30
    while collector.requests < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "Interrupted after" in out and "PERFORMANCE TEST RESULTS" in out
    data = json.loads(results.read_text())
    assert data["results"]["interrupted"] is True
    assert data["results"]["successful_batches"] == collector.ok_requests
    assert data["results"]["events_sent"] < 60 * 2000


def test_count_mode_timeout_fails_with_its_reason(tmp_path: Path) -> None:
    c = FakeCollector(delay_s=0.2).start()
    try:
        results = tmp_path / "r.json"
        done = run_cli("run", "--total-events", "100000", "--batch-size", "100", "--concurrency", "2",
                       "--timeout-secs", "2", "--event-type", "4624", "--results", str(results), env=_env(c))
    finally:
        c.stop()
    assert done.code == 1
    assert "Timeout reached after 2 seconds" in done.out
    data = json.loads(results.read_text())
    assert data["results"]["timed_out"] is True
    assert data["results"]["events_sent"] < 100_000


async def test_slow_server_does_not_slow_the_schedule_latency_counts_the_wait() -> None:
    """Open model: at 50 batches/s against a 100 ms server with 2 senders, batches queue;
    their latency from the intended time grows past the service time and they are late."""
    c = FakeCollector(delay_s=0.1).start()
    try:
        settings = wefperf.load_settings(None, {
            "wef_endpoint": c.url, "duration_secs": 2, "target_eps": 5000, "batch_size": 100,
            "concurrency": 2, "event_type": "4624", "processing_wait_secs": 0,
        }, environ={})
        result = await wefperf.run(settings)
    finally:
        c.stop()
    load = result.load
    assert load.late_batches > 0
    assert load.latency.p99 > load.service.p99 + 100  # queueing shows in the latency
    assert load.schedule_lag.max > 100
    assert load.due_not_sent > 0  # the run fell behind and says so
    assert load.elapsed_s < 3.5  # the window was not stretched
    assert not result.passed and result.exit_code == 1


async def test_async_api_runs_in_a_running_loop_and_prints_nothing(collector: FakeCollector, capsys) -> None:
    settings = wefperf.load_settings("baseline", {"wef_endpoint": collector.url, "total_events": 5000,
                                                  "processing_wait_secs": 2}, environ={})
    result = await wefperf.run(settings)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert isinstance(result, wefperf.RunResult)
    assert result.passed and result.exit_code == 0
    assert result.load.events_ok == 5000 and result.server.events_received == 5000
    assert result.to_dict()["results"]["events_sent"] == 5000
    assert sum(row.acked_events for row in result.load.timeline) == 5000


async def test_async_api_stop_event_interrupts() -> None:
    c = FakeCollector().start()
    try:
        settings = wefperf.load_settings(None, {"wef_endpoint": c.url, "duration_secs": 30, "target_eps": 1000,
                                                "batch_size": 100, "event_type": "4624"}, environ={})
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        result = await wefperf.run(settings, stop=stop)
    finally:
        c.stop()
    assert result.exit_code == 130 and result.load.interrupted
    assert result.load.events_sent < 30 * 1000


@pytest.mark.parametrize("sender", ["fast", "aiohttp"])
def test_both_senders_run_the_profile(collector: FakeCollector, tmp_path: Path, sender: str) -> None:
    results = tmp_path / "r.json"
    done = run_cli("run", "--total-events", "5000", "--sender", sender, "--results", str(results), env=_env(collector))
    assert done.code == 0, done.err
    data = json.loads(results.read_text())
    assert data["sender"] == sender and data["results"]["successful_batches"] == collector.requests == 5


async def test_stop_during_the_s3_wait_ends_promptly_with_partial_results(moto_endpoint: str, bucket: str) -> None:
    """The collector here writes nothing to S3, so the verifier would wait out the flush window;
    a stop request must end that wait at once, not after it."""
    c = FakeCollector().start()
    try:
        settings = wefperf.load_settings(None, {
            "wef_endpoint": c.url, "total_events": 2000, "event_type": "4624", "verify_s3": True,
            "s3_endpoint": moto_endpoint, "s3_bucket": bucket, "flush_interval_secs": 30,
            "processing_wait_secs": 1,
        }, environ={})
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(3.0, stop.set)
        started = time.monotonic()
        result = await wefperf.run(settings, stop=stop)
        took = time.monotonic() - started
    finally:
        c.stop()
    assert took < 15  # the verifier alone would have waited 75 s
    assert result.exit_code == 130 and result.load.interrupted
    assert result.s3 is None
    assert result.load.events_ok == 2000 and result.server.events_received == 2000
