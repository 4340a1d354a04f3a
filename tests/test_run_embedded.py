"""`wefperf run --embedded`: the whole chain — runner, reference collector, moto S3, verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import wefperf


@pytest.mark.slow
def test_embedded_run_with_s3_verification_passes(tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    done = wefperf(
        "run", "--profile", "sustained-10k", "--embedded", "--duration-secs", "4", "--target-eps", "5000",
        "--flush-interval-secs", "1", "--results", str(results), timeout=240,
    )
    assert done.code == 0, done.out + done.err
    assert "S3 VERIFICATION" in done.out and "✓ S3 files verified successfully" in done.out
    data = json.loads(results.read_text())
    s3 = data["s3_verification"]
    assert s3["success"] is True
    assert s3["files_found"] >= 2  # a 1 s flush over a 4 s run writes several files
    assert data["results"]["events_sent"] == 20_000
    acked = data["results"]["successful_batches"] * 1000
    assert s3["accounting"]["found"] == acked and s3["accounting"]["missing"] == 0
    assert s3["accounting"]["duplicated"] == 0
    assert all(k.startswith("event_type=4624/year=") for k in s3["sample_files"])
