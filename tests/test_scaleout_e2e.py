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


@pytest.fixture
def collector():
    c = FakeCollector().start()
    yield c
    c.stop()


def _env(c: FakeCollector, **extra: str) -> dict[str, str]:
    return {"WEF_ENDPOINT": c.url, "PERF_TEST_PROCESSING_WAIT_SECS": "2", **extra}


def test_processes_2_merge_counts_equal_what_the_server_received(collector: FakeCollector, tmp_path: Path) -> None:
    results = tmp_path / "merged.json"
    done = run_cli("run", "--processes", "2", "--total-events", "20000", "--batch-size", "100",
                   "--target-eps", "20000", "--results", str(results), env=_env(collector))
    assert done.code == 0, done.out + done.err
    data = json.loads(results.read_text())
    r = data["results"]
    assert r["events_sent"] == r["events_acknowledged"] == 20_000
    assert collector.requests == 200 and sum(collector.events.values()) == 20_000
    assert r["events_received"] == 20_000
    assert data["merged"]["segments"] == 2
    assert data["latency_ms"]["from_intended_send"]["count"] == 200
    assert "PERFORMANCE TEST RESULTS" in done.out and "Processes: 2" in done.out
