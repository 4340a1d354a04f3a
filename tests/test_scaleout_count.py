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
    assert "Waiting for event processing to complete" in done.out
