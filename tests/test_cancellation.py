"""Stopping and cancelling: every phase ends promptly, nothing is left running."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wefperf
from fake_collector import FakeCollector


def _settings(url: str, **extra: object) -> wefperf.Settings:
    values: dict[str, object] = {"wef_endpoint": url, "duration_secs": 30, "target_eps": 2000, "batch_size": 100,
                                 "event_type": "4624", "processing_wait_secs": 0}
    values.update(extra)
    return wefperf.load_settings(None, values, environ={})


async def test_cancelling_the_api_mid_load_leaves_no_task_behind(caplog: pytest.LogCaptureFixture) -> None:
    c = FakeCollector(delay_s=0.05).start()
    try:
        before = asyncio.all_tasks()
        caplog.set_level(logging.ERROR, logger="asyncio")
        run = asyncio.create_task(wefperf.run(_settings(c.url, concurrency=16)))
        deadline = time.monotonic() + 20
        while c.requests < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert c.requests >= 20 and not run.done()  # mid-load
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await asyncio.sleep(0)  # let cancelled callbacks run
        left = {t for t in asyncio.all_tasks() - before if not t.done()}
        assert left == set(), [t.get_coro() for t in left]
        gc.collect()
        await asyncio.sleep(0.05)
        assert "Task was destroyed but it is pending" not in caplog.text
        sent = await c.settled_requests()
        await asyncio.sleep(0.5)
        assert c.requests == sent  # no sender still running after the cancel
    finally:
        c.stop()


async def test_drain_timeout_cancels_requests_still_in_flight_and_counts_them() -> None:
    """The server holds each reply 8 s; a stop once every sender has one in flight gives them 0.5 s,
    then gives up. The stop follows the requests, not the clock: a busy machine may start late."""
    c = FakeCollector(delay_s=8.0).start()
    try:
        stop = asyncio.Event()
        settings = _settings(c.url, concurrency=8, drain_timeout_secs=0.5, request_timeout_secs=30)
        run = asyncio.create_task(wefperf.run(settings, stop=stop))
        deadline = time.monotonic() + 60
        while c.requests < 8 and time.monotonic() < deadline and not run.done():
            await asyncio.sleep(0.02)
        stopped_at = time.monotonic()
        stop.set()
        result = await run
        took = time.monotonic() - stopped_at
    finally:
        c.stop()
    load = result.load
    assert took < 6.0  # the drain's 0.5 s and the teardown: not the 8 s replies, not the 30 s request timeout
    assert result.exit_code == 130 and load.interrupted
    assert load.batches_ok == 0
    assert load.errors["interrupted"].batches == load.batches_sent == 8  # every sender had one in flight
    assert result.stopped_in == "load"


def test_ctrl_c_while_waiting_for_health_ends_at_once_with_results(tmp_path: Path) -> None:
    """The endpoint accepts connections and never answers: the SIGINT comes once the health check
    has connected (so inside the 60 s wait however long start-up takes), and ends the run at once."""
    results = tmp_path / "r.json"
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    silent.settimeout(60)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERF_TEST_", "WEF_"))}
    env.update({"WEF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}", "PERF_TEST_HEALTH_TIMEOUT_SECS": "60"})
    proc = subprocess.Popen([sys.executable, "-m", "wefperf", "run", "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        conn, _ = silent.accept()  # the health check is waiting for its answer
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        conn.close()
    finally:
        silent.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - sent_at < 10  # at once, not at the end of the 60 s wait
    assert proc.returncode == 130, out + err
    assert "Interrupted while waiting for the WEF server's /health" in out
    data = json.loads(results.read_text())
    assert data["stopped_in"] == "waiting for the WEF server's /health"
    assert data["results"]["interrupted"] is True and data["results"]["events_sent"] == 0
    assert "Traceback" not in err


async def test_abort_on_fail_stops_the_run_when_the_window_breaks_a_latency_threshold() -> None:
    """Replies take 300 ms; p99 <= 100 ms over a 2 s window breaks about 3 s in, long before 30 s."""
    c = FakeCollector(delay_s=0.3).start()
    try:
        settings = _settings(c.url, abort_on_fail=True, threshold_window_secs=2,
                             thresholds="latency_p99_ms=100", concurrency=64)
        started = time.monotonic()
        result = await wefperf.run(settings)
        took = time.monotonic() - started
    finally:
        c.stop()
    load = result.load
    assert took < 20  # long before the 30 s run's end, start-up on a busy machine included
    assert load.aborted is not None and "latency_p99_ms <= 100" in load.aborted and "last 2 s" in load.aborted
    assert result.exit_code == 1 and not load.interrupted and load.cut_short
    assert result.verdict.reasons[0].startswith("aborted: over the last 2 s")
    assert 2 <= load.window_s < 20
    assert result.to_dict()["results"]["aborted"] == load.aborted


async def test_abort_on_fail_lets_a_healthy_run_finish() -> None:
    c = FakeCollector().start()
    try:
        settings = _settings(c.url, duration_secs=4, abort_on_fail=True, threshold_window_secs=2,
                             thresholds="latency_p99_ms=1000")
        result = await wefperf.run(settings)
    finally:
        c.stop()
    assert result.load.aborted is None and result.passed
