"""The Indexed Job without a cluster: each pod's exact command line and environment, read from the
`kubectl kustomize` output (JOB_COMPLETION_INDEX set per pod, the Secret supplied as a cluster
would), run as local processes against the reference collector and a real S3 API (moto); then the
`wefperf merge` command that new-run.sh prints, from S3. The merged totals must equal what the
collector counted, and the S3 accounting must be exact."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import kube

N = 2
EVENTS = 12_000  # 3 s at 4,000 events/s in 100-event batches: 120 batches, 60 per pod
PROFILE = """\
name = "k8s-local"
title = "The Job's pods as local processes"

[settings]
total_events = 0
duration_secs = 3
batch_size = 100
target_eps = 4000
event_type = "4624"
verify_s3 = true
flush_interval_secs = 1
"""


@pytest.fixture
def needs_segments() -> None:
    """Skip before any server starts when this wefperf cannot run segments."""
    proc = subprocess.run([sys.executable, "-m", "wefperf", "run", "--help"], capture_output=True, text=True, timeout=60)
    if "--segment" not in proc.stdout:
        pytest.skip("needs the scaleout branch (`wefperf run --segment`, `wefperf merge`)")


pytestmark = pytest.mark.skipif(kube.KUBECTL is None, reason="kubectl is not installed: the base cannot be built")


def _clean_environ() -> dict[str, str]:
    """This machine's environment without any wefperf setting: a container starts without them."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PERF_TEST_", "WEF_", "S3_", "AWS_", "JOB_"))}


@pytest.mark.slow
def test_the_jobs_pods_run_locally_then_merge_from_s3_equals_what_the_collector_counted(
    needs_segments: None, wef_target, moto_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    target = wef_target("--flush-interval-secs", "1")

    # The user's steps: edit the profile and settings.env, create the Secret, run new-run.sh.
    base = tmp_path / "kubernetes"
    shutil.copytree(kube.BASE, base)
    (base / "profile.toml").write_text(PROFILE)
    kube.write_env_file(base / "settings.env", {
        "WEF_ENDPOINT": target.base, "S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket,
        "PERF_TEST_SHARD_RESULTS": f"s3://{bucket}/wefperf",
    })
    secrets = {"wefperf-s3": {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}}
    new_run = subprocess.run(["sh", str(base / "new-run.sh"), "-n", str(N), "-l", "6"],
                             capture_output=True, text=True, timeout=30)
    assert new_run.returncode == 0, new_run.stderr
    run_id = kube.read_env_file(base / "run.env")["PERF_TEST_RUN_ID"]

    # What `kubectl apply -k` would start: N pods of the one Job.
    objects = kube.kustomize(base)
    kube.validate(objects)
    job = kube.the_job(objects)
    assert job["spec"]["completions"] == N
    mounts = kube.volume_dirs(objects, tmp_path / "pod-volumes")
    wefperf_bin = str(Path(sys.executable).parent / "wefperf")
    procs = []
    for index in range(N):
        pod = kube.pod(objects, index, secrets)
        assert pod.argv[0] == "wefperf"  # the image's PATH has it; here, this venv's
        argv = [wefperf_bin, *kube.localize(pod.argv[1:], mounts)]
        procs.append(subprocess.Popen(argv, env={**_clean_environ(), **pod.env}, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate(timeout=120) for p in procs]
    for index, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"pod {index}: exit {p.returncode}\n{out}\n{err}"

    # Each pod stored its shard where the README says.
    import botocore.session

    s3 = botocore.session.get_session().create_client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"wefperf/results/{run_id}/")
    assert sorted(o["Key"] for o in listed.get("Contents", [])) == [
        f"wefperf/results/{run_id}/segment-{i}-of-{N}.json" for i in range(N)]
    for i in range(N):  # pod i ran segment i/N: JOB_COMPLETION_INDEX reached wefperf
        body = s3.get_object(Bucket=bucket, Key=f"wefperf/results/{run_id}/segment-{i}-of-{N}.json")["Body"].read()
        shard = json.loads(body)
        assert shard["segment"] == {"index": i, "count": N} and shard["run_id"] == run_id

    # The merge new-run.sh printed, run the way a user would: S3 settings and credentials in the environment.
    merge_line = next(line.strip() for line in new_run.stdout.splitlines() if line.strip().startswith("wefperf merge "))
    merge_argv = shlex.split(merge_line)
    assert merge_argv[2] == f"s3://{bucket}/wefperf/" and "--verify-s3" in merge_argv
    merge_env = {**_clean_environ(), **kube.read_env_file(base / "settings.env"), **secrets["wefperf-s3"]}
    merged = subprocess.run([wefperf_bin, *merge_argv[1:]], cwd=tmp_path, env=merge_env,
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    data = json.loads((tmp_path / "merged.json").read_text())

    with urllib.request.urlopen(target.base + "/stats/throughput", timeout=10) as resp:
        counted = sum(row["total_events"] for row in json.load(resp))
    r = data["results"]
    assert data["run_id"] == run_id
    assert r["events_sent"] == r["events_acknowledged"] == r["events_received"] == counted == EVENTS
    assert r["failed_batches"] == 0
    assert data["latency_ms"]["from_intended_send"]["count"] == EVENTS // 100
    s3_check = data["s3_verification"]
    acct = s3_check["accounting"]
    assert s3_check["success"]
    assert acct["expected"] == acct["found"] == EVENTS
    assert acct["missing"] == acct["duplicated"] == acct["unexpected"] == 0


def test_a_pod_of_the_committed_base_refuses_the_placeholder_run_id_with_exit_2(needs_segments: None, tmp_path: Path) -> None:
    """Applied without new-run.sh, every pod stops at once with exit 2 (and the Job's podFailurePolicy fails the Job)."""
    objects = kube.kustomize(kube.BASE)
    pod = kube.pod(objects, 0, {"wefperf-s3": {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}})
    argv = [str(Path(sys.executable).parent / "wefperf"), *kube.localize(pod.argv[1:], kube.volume_dirs(objects, tmp_path))]
    done = subprocess.run(argv, env={**_clean_environ(), **pod.env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PERF_TEST_RUN_ID" in done.stderr and len(done.stderr.strip().splitlines()) == 1
