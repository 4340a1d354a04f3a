"""Results a user can keep and check again (issue 21 §3): files honour the umask, and every
plain run's results, simulated hosts and WS-Man included, can be verified again later."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import wefperf

_WRITE_BOTH = """
import os, sys
os.umask(int(sys.argv[1], 8))
from wefperf.report.results_json import write_results
from wefperf.report.html import write_page
class R:
    def to_dict(self):
        return {"ok": True}
write_results(R(), sys.argv[2])
write_page("<html></html>", sys.argv[3])
"""


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("002", 0o664), ("077", 0o600)])
def test_results_json_and_html_honour_the_umask(tmp_path: Path, umask: str, mode: int) -> None:
    js, page = tmp_path / "out" / "r.json", tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-c", _WRITE_BOTH, umask, str(js), str(page)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for path in (js, page):
        assert stat.S_IMODE(path.stat().st_mode) == mode, f"{path.name}: {oct(path.stat().st_mode)}"
    assert json.loads(js.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.rglob(".wefperf-*")] == []  # no scratch file left behind


def _s3_env(moto_endpoint: str, bucket: str) -> dict[str, str]:
    return {"S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing"}


def _verify_again_then_lose_a_file(results: Path, s3_client, moto_endpoint: str, bucket: str) -> None:
    """`verify --results` passes on the kept results, then counts a deleted file's events as missing."""
    env = _s3_env(moto_endpoint, bucket)
    data = json.loads(results.read_text())
    sent = data["results"]["events_sent"]
    assert sent > 0 and data["results"]["events_failed"] == 0
    again = wefperf("verify", "--results", str(results), "--wait-secs", "30", env=env, timeout=120)
    assert again.code == 0, again.out + again.err
    assert f"expected {sent:,}, found {sent:,}, missing 0, duplicated 0" in again.out

    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"] if o["Key"].endswith(".parquet")]
    assert len(keys) >= 2, keys  # deleting one must leave the others to find
    gone = keys[0]
    rows = pq.read_table(io.BytesIO(s3_client.get_object(Bucket=bucket, Key=gone)["Body"].read())).num_rows
    assert rows > 0
    s3_client.delete_object(Bucket=bucket, Key=gone)
    lost = wefperf("verify", "--results", str(results), env=env, timeout=120)
    assert lost.code == 1, lost.out + lost.err
    assert f"expected {sent:,}, found {sent - rows:,}, missing {rows:,}, duplicated 0" in lost.out


@pytest.mark.slow
def test_a_simulated_hosts_run_is_verified_again_from_its_results(wef_target, s3_client, moto_endpoint: str,
                                                                  bucket: str, tmp_path: Path) -> None:
    collector = wef_target("--flush-interval-secs", "0.5")
    results = tmp_path / "hosts.json"
    run = wefperf("run", "--hosts", "60", "--target-eps", "600", "--duration-secs", "3", "--max-latency-secs",
                  "0.5", "--max-items", "20", "--flush-interval-secs", "0.5", "--no-live", "--results",
                  str(results), env={"WEF_ENDPOINT": collector.base, **_s3_env(moto_endpoint, bucket)}, timeout=120)
    assert run.code == 0, run.out + run.err
    _verify_again_then_lose_a_file(results, s3_client, moto_endpoint, bucket)


@pytest.mark.slow
def test_a_wsman_run_is_verified_again_from_its_results(wef_target, s3_client, moto_endpoint: str, bucket: str,
                                                        tmp_path: Path) -> None:
    collector = wef_target("--wsman", "--flush-interval-secs", "0.5")
    results = tmp_path / "wsman.json"
    run = wefperf("run", "--protocol", "wsman", "--hosts", "40", "--target-eps", "400", "--duration-secs", "3",
                  "--max-latency-secs", "0.5", "--flush-interval-secs", "0.5", "--no-live", "--results",
                  str(results), env={"WEF_ENDPOINT": collector.base, **_s3_env(moto_endpoint, bucket)}, timeout=120)
    assert run.code == 0, run.out + run.err
    w = json.loads(results.read_text())["wsman"]
    assert w["enumerations"] == 40 + w["refreshes"]  # a host's first refresh may fall in the run
    _verify_again_then_lose_a_file(results, s3_client, moto_endpoint, bucket)



def test_deliveries_round_trip_through_the_results_json() -> None:
    from array import array

    from wefperf.measure.recorder import Recorder
    from wefperf.model import Deliveries, ExitCode, RunResult, ServerStats, Verdict

    kept = Deliveries(array("H", [20, 0, 7, 20, 1]), {2: 3})
    result = RunResult(run_id="r1", test_name="t", timestamp="2026-01-01T00:00:00+00:00", profile=None,
                       configuration={}, load=Recorder(0.0).summary(1.0), server=ServerStats(),
                       verdict=Verdict(True, ExitCode.PASSED), deliveries=kept)
    back = RunResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.deliveries is not None
    assert list(back.deliveries.sizes) == [20, 0, 7, 20, 1] and back.deliveries.partial_acks == {2: 3}
    assert RunResult.from_dict(json.loads(json.dumps({**result.to_dict(), "payload": {}}))).deliveries is None
