"""`wefperf verify` on one event type of a mixed run: exact from the results file, and a clear
hint (not a false loss blamed on the collector) when only an event count is given."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import wefperf


def test_one_type_of_a_mixed_run_verifies_exactly_from_its_results(wef_target, moto_endpoint: str, bucket: str,
                                                                   tmp_path: Path) -> None:
    collector = wef_target("--flush-interval-secs", "1")
    results = tmp_path / "r.json"
    s3_env = {"S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "testing",
              "AWS_SECRET_ACCESS_KEY": "testing"}
    run = wefperf("run", "--total-events", "20000", "--batch-size", "100", "--verify-s3",
                  "--flush-interval-secs", "1", "--results", str(results),
                  env={"WEF_ENDPOINT": collector.base, **s3_env}, timeout=120)
    assert run.code == 0, run.out + run.err
    data = json.loads(results.read_text())
    fours = data["server_stats"]["expected_per_type"]["4624"]
    assert 0 < fours < 20_000  # a mixed run: 4624 is one type among five

    exact = wefperf("verify", "--results", str(results), "--event-type", "4624", env=s3_env)
    assert exact.code == 0, exact.out + exact.err
    assert f"expected {fours:,}, found {fours:,}, missing 0, duplicated 0" in exact.out

    every = wefperf("verify", "--results", str(results), env=s3_env)
    assert every.code == 0 and "expected 20,000, found 20,000" in every.out

    counted = wefperf("verify", "--event-type", "4624", "--run-id", data["run_id"], "--expect-events", str(fours),
                      "--batch-size", "100", env=s3_env)
    assert counted.code == 1
    assert "check with --results RESULTS.json instead" in counted.out
    assert counted.err.count("never sent") == 0  # the reason is printed once, in the block on stdout
