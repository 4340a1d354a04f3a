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

import wefperf
from fake_collector import FakeCollector
from helpers import wefperf as run_cli
from refusing_server import RefusingServer

SECRET = "s3cr3t-never-printed"


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
    # per EventID, what the server counted equals what the run's batches carried
    rows = data["server_stats"]["per_event_id"]
    assert len(rows) == 5 and all(r["counted"] == r["expected"] > 0 for r in rows)
    assert {r["event_id"] for r in rows} == {4624, 4625, 4634, 4672, 4688}
    # this server labels like logthing v0.5.0: Windows' self-closing <Provider/> gives `EventID <n>`
    assert all(r["labels"] == [f"EventID {r['event_id']}"] for r in rows)
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
    assert "http_500" in done.out and "10 batches failed" in done.out
    # the first few are logged, the rest only counted
    assert 1 <= done.err.count("failed: HTTP 500") <= 3
    assert all(r["counted"] == r["expected"] for r in data["server_stats"]["per_event_id"])


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
    progress = [line for line in done.out.splitlines() if line.startswith("  Progress: ")]
    assert progress, done.out  # a line every 5 s of load (PERF_TEST_PROGRESS_SECS)
    assert "events sent - Current rate:" in progress[0] and "Acknowledged: " in progress[0]
    assert "Target rate maintained:" in done.out


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
    assert "Interrupted after" in out and "the run was cut short" in out and "PERFORMANCE TEST RESULTS" in out
    data = json.loads(results.read_text())
    r = data["results"]
    assert r["interrupted"] is True and r["cut_short"] is True
    assert r["successful_batches"] == collector.ok_requests
    assert r["events_sent"] < 60 * 2000
    # judged on the window it ran: every batch due in it went out, so the rate was held
    window = r["load_window_seconds"]
    assert 0.5 < window < 30
    assert abs(r["events_due_in_window"] - window * 2000) <= 200
    assert data["verdict"]["target_ratio"] >= 0.95
    duration = next(line for line in out.splitlines() if line.startswith("  Duration: "))
    assert duration == f"  Duration: {window:.1f} of 60 seconds (cut short: interrupted)"
    assert "of what was due in the" in out


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
    assert data["results"]["timed_out"] is True and data["results"]["cut_short"] is True
    assert data["results"]["events_sent"] < 100_000
    assert "(cut short: timeout reached)" in done.out


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
    assert load.elapsed_s < 4.5  # not stretched: sending all 100 batches at 20 a second would take 5 s
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
        run = asyncio.create_task(wefperf.run(settings, stop=stop))
        # The stop follows the run, not the clock: once every event is counted and the 1 s
        # processing wait is over, the run is in the S3 wait (a busy machine may start late).
        deadline = time.monotonic() + 60
        while sum(c.events.values()) < 2000 and time.monotonic() < deadline and not run.done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)
        stopped_at = time.monotonic()
        stop.set()
        result = await run
        took = time.monotonic() - stopped_at
    finally:
        c.stop()
    assert took < 10  # at once: the verifier alone would have waited 75 s
    assert result.exit_code == 130 and result.load.interrupted
    assert result.s3 is None
    assert result.load.events_ok == 2000 and result.server.events_received == 2000


@pytest.mark.parametrize("labels", ["real", "attribute", "split"])
def test_per_type_counts_are_matched_by_event_id_whatever_the_server_labels(tmp_path: Path, labels: str) -> None:
    """`Provider:4624`, `EventID 4624`, or both for the same ID: one row per EventID, counted = sent."""
    c = FakeCollector(labels=labels).start()
    try:
        results = tmp_path / "r.json"
        done = run_cli("run", "--total-events", "20000", "--results", str(results), env=_env(c))
    finally:
        c.stop()
    assert done.code == 0, done.out + done.err
    rows = json.loads(results.read_text())["server_stats"]["per_event_id"]
    assert len(rows) == 5 and all(r["counted"] == r["expected"] > 0 for r in rows)
    after = done.out.split("Server per-type delta by EventID")[1].splitlines()[1:]
    table = [line for line in after[:len(rows) + 1] if line.startswith("  EventID ")]
    assert len(table) == 5  # one line per EventID, never one per label
    assert "not sent by this run" not in done.out
    for line, row in zip(table, rows):
        assert line.split()[:2] == ["EventID", str(row["event_id"])]
        assert f"{row['counted']:,} / {row['expected']:,}" in line
        expected_labels = {"real": [f"EventID {row['event_id']}"],
                           "attribute": [f"Microsoft-Windows-Security-Auditing:{row['event_id']}"],
                           "split": [f"EventID {row['event_id']}",
                                     f"Microsoft-Windows-Security-Auditing:{row['event_id']}"]}[labels]
        assert row["labels"] == expected_labels  # the JSON keeps every label
        # the console leaves out the label that only repeats the row's `EventID N` (issue 21)
        shown = [label for label in expected_labels if label != f"EventID {row['event_id']}"]
        assert line.rstrip().endswith(", ".join(shown) if shown else f"{row['expected']:,}")


def test_per_type_table_says_unavailable_when_the_stats_cannot_be_read(tmp_path: Path) -> None:
    c = FakeCollector(stats_ok=False).start()
    try:
        results = tmp_path / "r.json"
        done = run_cli("run", "--total-events", "5000", "--event-type", "4624", "--results", str(results),
                       env=_env(c))
    finally:
        c.stop()
    assert "Server per-type delta: unavailable" in done.out
    assert " / 5,000" not in done.out  # never `0 / 5,000`
    data = json.loads(results.read_text())["server_stats"]
    assert data["counts_known"] is False
    assert data["per_event_id"] == [{"event_id": 4624, "counted": None, "expected": 5000, "labels": []}]


@pytest.mark.slow
def test_more_than_100k_failed_batches_keep_exact_expectations(tmp_path: Path, moto_endpoint: str,
                                                              bucket: str) -> None:
    """1-event batches against a server that answers 500 at once: every failure is kept, so the
    server is expected to have counted nothing and S3 to hold nothing of this run."""
    server = RefusingServer().start()
    try:
        results = tmp_path / "r.json"
        done = run_cli("run", "--total-events", "120000", "--batch-size", "1", "--concurrency", "32",
                       "--verify-s3", "--s3-endpoint", moto_endpoint, "--s3-bucket", bucket,
                       "--flush-interval-secs", "0", "--processing-wait-secs", "0",
                       "--results", str(results), env={"WEF_ENDPOINT": server.url}, timeout=180)
    finally:
        server.stop()
    assert done.code == 1, done.out + done.err
    data = json.loads(results.read_text())
    assert data["results"]["failed_batches"] == 120_000 == server.refused
    assert data["results"]["successful_batches"] == 0
    assert data["failed_batch_ranges"] == [[0, 119_999]]  # ranges, not 120,000 numbers
    assert data["server_stats"]["expected_per_type"] == {}
    assert all(row["expected"] is None for row in data["server_stats"]["per_event_id"])
    acct = data["s3_verification"]["accounting"]
    assert acct["expected"] == 0 and acct["missing"] == 0
    assert acct["failed_batches"] == 120_000


def test_a_collector_refusing_everything_ingests_nothing(tmp_path: Path) -> None:
    server = RefusingServer().start()
    try:
        results = tmp_path / "r.json"
        done = run_cli("run", "--duration-secs", "2", "--target-eps", "5000", "--batch-size", "100",
                       "--results", str(results), env={"WEF_ENDPOINT": server.url,
                                                       "PERF_TEST_PROCESSING_WAIT_SECS": "0"})
    finally:
        server.stop()
    assert done.code == 1
    assert "Events acknowledged (2xx): 0\n" in done.out
    assert "Overall ingestion rate: 0.00 events/second (acknowledged;" in done.out
    assert "Target rate maintained: 0.0%" in done.out
    data = json.loads(results.read_text())
    assert data["verdict"]["target_ratio"] == 0.0
    assert data["results"]["events_per_second_overall"] == 0.0
    assert data["results"]["events_sent"] == 10_000 == data["results"]["events_failed"]


def test_a_host_that_does_not_resolve_is_named_with_the_compose_hint(tmp_path: Path) -> None:
    done = run_cli("run", "--results", str(tmp_path / "r.json"),
                   env={"WEF_ENDPOINT": "http://wef-server:5985", "PERF_TEST_HEALTH_TIMEOUT_SECS": "1"})
    assert done.code == 1
    line = [x for x in done.err.splitlines() if x.strip()][0]
    assert "host wef-server did not resolve (DNS)" in line
    assert "compose service name" in line and "WEF_ENDPOINT" in line
    assert "other" not in line


@pytest.mark.slow
def test_stages_send_the_integral_of_their_rates(collector: FakeCollector, tmp_path: Path) -> None:
    """5 s ramping to 5,000/s, then 5 s ramping to 20,000/s: 12,500 + 62,500 events, counted by the server."""
    results = tmp_path / "r.json"
    done = run_cli("run", "--stages", "5:5000,5:20000", "--event-type", "4624", "--results", str(results),
                   env=_env(collector), timeout=120)
    assert done.code == 0, done.out + done.err
    assert abs(sum(collector.events.values()) - 75_000) <= 750
    data = json.loads(results.read_text())
    assert data["results"]["events_due_in_window"] == 75_000
    assert "Load shape: 2 stages (5 s to 5,000/s, 5 s to 20,000/s)" in done.out
    # the per-second rate follows the ramp: the last seconds carry far more than the first
    rows = data["timeline"]
    assert sum(r["sent_events"] for r in rows[:2]) < sum(r["sent_events"] for r in rows[8:10]) / 5
