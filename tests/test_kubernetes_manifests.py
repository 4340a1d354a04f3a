"""deploy/kubernetes offline: it builds with `kubectl kustomize`, every object passes the strict
schemas of a pinned Kubernetes version, and the Job is the one the README describes. A broken copy
must fail, or the check proves nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import kube
import wefperf

pytestmark = pytest.mark.skipif(kube.KUBECTL is None, reason="kubectl is not installed: the base cannot be built")

SECRET_NAME = "wefperf-s3"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kube.kustomize(kube.BASE)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of the base to change."""
    dest = tmp_path / "kubernetes"
    shutil.copytree(kube.BASE, dest)
    return dest


def _run_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the ConfigMap generated from run.env."""
    names = [o["metadata"]["name"] for o in kube.only(objects, "ConfigMap") if o["metadata"]["name"].startswith("wefperf-run-")]
    assert len(names) == 1, names
    return kube.config_map(objects, names[0])


def test_the_base_builds_and_every_object_passes_the_pinned_schemas(built: list[dict[str, Any]]) -> None:
    kube.validate(built)
    assert sorted(o["kind"] for o in built) == ["ConfigMap", "ConfigMap", "ConfigMap", "Job"]


def test_the_job_is_indexed_with_completions_equal_to_parallelism_and_n_from_run_env(built: list[dict[str, Any]]) -> None:
    spec = kube.the_job(built)["spec"]
    n = int(_run_env(built)["PERF_TEST_SEGMENTS"])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == n
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_a_failed_segment_is_not_retried_and_a_configuration_error_fails_the_job(built: list[dict[str, Any]]) -> None:
    spec = kube.the_job(built)["spec"]
    assert spec["backoffLimitPerIndex"] == 0
    assert spec["backoffLimit"] == spec["completions"]  # each index may fail once; the others go on
    rules = spec["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "wefperf", "operator": "In", "values": [2]}} in rules


def test_each_pod_runs_segment_job_completion_index_of_n_with_the_shared_run(built: list[dict[str, Any]]) -> None:
    container = kube.the_container(kube.the_job(built))
    index_env = next(e for e in container["env"] if e["name"] == "JOB_COMPLETION_INDEX")
    assert index_env["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{kube.INDEX_ANNOTATION}']"
    run = _run_env(built)
    secrets = {SECRET_NAME: {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}}
    pods = [kube.pod(built, i, secrets) for i in range(int(run["PERF_TEST_SEGMENTS"]))]
    assert [p.env["JOB_COMPLETION_INDEX"] for p in pods] == [str(i) for i in range(len(pods))]
    for p in pods:
        assert p.env["PERF_TEST_SEGMENTS"] == str(kube.the_job(built)["spec"]["completions"])
        assert p.env["PERF_TEST_RUN_ID"] == run["PERF_TEST_RUN_ID"]
        assert p.env["PERF_TEST_START_AT"] == run["PERF_TEST_START_AT"]
        assert p.env["PERF_TEST_SHARD_RESULTS"].startswith("s3://")
        assert "PERF_TEST_SEGMENT" not in p.env  # it would outrank the index
        assert p.argv[:2] == ["wefperf", "run"]


def test_s3_credentials_come_from_a_secret_reference_never_inlined(built: list[dict[str, Any]]) -> None:
    assert kube.only(built, "Secret") == []
    container = kube.the_container(kube.the_job(built))
    creds = {e["name"]: e for e in container["env"] if e["name"].startswith("AWS_")}
    assert set(creds) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for name, item in creds.items():
        assert "value" not in item
        assert item["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": name}
    for cm in kube.only(built, "ConfigMap"):
        assert not [k for k in cm.get("data", {}) if k.startswith("AWS_")], cm["metadata"]["name"]
    text = kube.BASE.joinpath("settings.env").read_text() + kube.BASE.joinpath("job.yaml").read_text()
    assert "miniopassword" not in text


def test_the_image_is_the_wefperf_image_with_a_tag(built: list[dict[str, Any]]) -> None:
    image = kube.the_container(kube.the_job(built))["image"]
    name, _, tag = image.rpartition(":")
    assert name.endswith("/wefperf") and tag and tag != "latest", image


def test_the_profile_is_a_generated_config_map_mounted_and_given_by_path(built: list[dict[str, Any]], tmp_path: Path) -> None:
    job = kube.the_job(built)
    container = kube.the_container(job)
    args = container["args"]
    profile_path = args[args.index("--profile") + 1]
    mounts = kube.volume_dirs(built, tmp_path)
    mount = str(Path(profile_path).parent)
    volume = next(v for v in job["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == mount))
    assert volume["configMap"]["name"].startswith("wefperf-profile-")  # generated: a new profile rolls a new name
    local = kube.localize([profile_path], mounts)[0]
    settings = wefperf.load_settings(local, environ={})  # the same checks `wefperf run --profile` makes
    assert settings.target_eps > 0


def test_every_container_has_cpu_and_memory_requests_and_limits(built: list[dict[str, Any]]) -> None:
    resources = kube.the_container(kube.the_job(built))["resources"]
    for part in ("requests", "limits"):
        assert set(resources[part]) == {"cpu", "memory"}


def test_one_job_per_run_named_after_the_run_id(built: list[dict[str, Any]]) -> None:
    job = kube.the_job(built)
    run_id = _run_env(built)["PERF_TEST_RUN_ID"]
    assert job["metadata"]["name"] == f"wefperf-{run_id}"
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == run_id
    spread = job["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == run_id  # this run's pods only
    assert "RUNID" not in json.dumps(built)  # every placeholder in job.yaml was replaced


def test_new_run_sh_writes_a_fresh_run_id_start_time_and_n_that_reach_the_job(copy: Path) -> None:
    proc = subprocess.run(["sh", str(copy / "new-run.sh"), "-n", "5", "-l", "90"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    run = kube.read_env_file(copy / "run.env")
    assert re.fullmatch(r"[0-9a-f]{12}", run["PERF_TEST_RUN_ID"]), run
    objects = kube.kustomize(copy)
    kube.validate(objects)
    job = kube.the_job(objects)
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == job["spec"]["backoffLimit"] == 5
    assert job["metadata"]["name"] == f"wefperf-{run['PERF_TEST_RUN_ID']}"
    assert f"kubectl apply -k {copy}" in proc.stdout
    again = subprocess.run(["sh", str(copy / "new-run.sh")], capture_output=True, text=True, timeout=30)
    run2 = kube.read_env_file(copy / "run.env")
    assert again.returncode == 0 and run2["PERF_TEST_SEGMENTS"] == "5"  # N is kept
    assert run2["PERF_TEST_RUN_ID"] != run["PERF_TEST_RUN_ID"]


@pytest.mark.parametrize("args", [["-n", "0"], ["-n", "two"], ["-l", "soon"], ["extra"]])
def test_new_run_sh_refuses_bad_arguments_in_one_line(copy: Path, args: list[str]) -> None:
    before = (copy / "run.env").read_text()
    proc = subprocess.run(["sh", str(copy / "new-run.sh"), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("new-run.sh: ")
    assert (copy / "run.env").read_text() == before


def test_new_run_sh_start_time_is_now_plus_the_lead(copy: Path) -> None:
    import time

    t0 = time.time()
    subprocess.run(["sh", str(copy / "new-run.sh"), "-l", "100"], check=True, capture_output=True, timeout=30)
    start_at = float(kube.read_env_file(copy / "run.env")["PERF_TEST_START_AT"])
    assert int(t0) + 100 <= start_at <= time.time() + 100


@pytest.mark.parametrize("run_id", ["123456789012", "1e10", "0x1f"])
def test_a_run_id_that_looks_like_a_number_stays_a_string(copy: Path, run_id: str) -> None:
    run = kube.read_env_file(copy / "run.env")
    kube.write_env_file(copy / "run.env", {**run, "PERF_TEST_RUN_ID": run_id})
    objects = kube.kustomize(copy)
    kube.validate(objects)  # a label or name that became a number fails the schema
    assert kube.the_job(objects)["metadata"]["name"] == f"wefperf-{run_id}"


# -- a broken copy must fail ------------------------------------------------------------------


def test_validation_fails_on_a_misspelled_job_field(copy: Path) -> None:
    job = copy / "job.yaml"
    job.write_text(job.read_text().replace("completionMode: Indexed", "completionsMode: Indexed"))
    with pytest.raises(kube.ManifestError, match=r"Job/wefperf-.* fails the Kubernetes .* schema"):
        kube.validate(kube.kustomize(copy))


def test_a_segment_count_that_is_not_a_number_fails_the_build(copy: Path) -> None:
    run = kube.read_env_file(copy / "run.env")
    kube.write_env_file(copy / "run.env", {**run, "PERF_TEST_SEGMENTS": "two"})
    with pytest.raises(kube.ManifestError, match="two"):
        kube.validate(kube.kustomize(copy))


def test_validation_fails_on_a_field_of_the_wrong_type(copy: Path) -> None:
    job = copy / "job.yaml"
    job.write_text(job.read_text().replace("ttlSecondsAfterFinished: 86400", "ttlSecondsAfterFinished: a day"))
    with pytest.raises(kube.ManifestError, match=r"at spec\.ttlSecondsAfterFinished: 'a day' is not of type 'integer'"):
        kube.validate(kube.kustomize(copy))


def test_validation_fails_on_an_unknown_kind(copy: Path) -> None:
    (copy / "extra.yaml").write_text("apiVersion: batch/v1\nkind: Jobb\nmetadata: {name: x}\n")
    kz = copy / "kustomization.yaml"
    kz.write_text(kz.read_text().replace("  - job.yaml\n", "  - job.yaml\n  - extra.yaml\n"))
    with pytest.raises(kube.ManifestError, match="Jobb"):
        kube.validate(kube.kustomize(copy))


def test_the_build_fails_without_run_env(copy: Path) -> None:
    (copy / "run.env").unlink()
    with pytest.raises(kube.ManifestError, match="run.env"):
        kube.kustomize(copy)
