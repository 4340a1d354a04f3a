"""User-caused start-up errors of `wefperf collector`: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from wefperf.collector.s3server import MotoServer, free_port


def run_target(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **(env or {})}
    return subprocess.run([sys.executable, "-m", "wefperf", "collector", *args],
                          capture_output=True, text=True, timeout=60, env=full_env)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wefperf collector: error: ")
    for word in words:
        assert word in lines[0]
    assert result.stdout == ""  # never announced as listening
    assert "testing" not in result.stderr  # credentials stay out of messages


def test_port_already_in_use(moto_endpoint, bucket):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_target("--port", str(port), "--s3-endpoint", moto_endpoint, "--bucket", bucket)
    assert_one_line_error(result, f"port {port}", "already in use")


def test_s3_endpoint_unreachable():
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = run_target("--port", "0", "--s3-endpoint", endpoint)
    assert_one_line_error(result, endpoint, "unreachable")


def test_s3_endpoint_from_the_environment_is_used(moto_endpoint):
    result = run_target("--port", "0", env={"S3_ENDPOINT": f"http://127.0.0.1:{free_port()}", "S3_BUCKET": "nope-nope"})
    assert_one_line_error(result, "unreachable")


def test_bucket_missing(moto_endpoint):
    result = run_target("--port", "0", "--s3-endpoint", moto_endpoint, "--bucket", "no-such-bucket-here")
    assert_one_line_error(result, "'no-such-bucket-here'", "does not exist")


def test_wrong_credentials():
    # moto checks credentials against its IAM only when told to
    with MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as moto:
        result = run_target("--port", "0", "--s3-endpoint", moto.endpoint, "--bucket", "wef-events")
    assert_one_line_error(result, "AWS_ACCESS_KEY_ID", "refused")


@pytest.mark.parametrize("args, words", [
    (["--s3-endpoint", "minio:9000"], ["http://"]),
    (["--port", "70000"], ["--port"]),
    (["--max-file-size-mb", "0"], ["--max-file-size-mb"]),
    # the shared S3Settings rules: one URL check, one bucket rule (3 to 63 characters)
    (["--s3-endpoint", "http://minio:99999"], ["--s3-endpoint / S3_ENDPOINT", "invalid port"]),
    (["--bucket", "ab"], ["--bucket / S3_BUCKET", "3 to 63 characters"]),
    (["--bucket", "b" * 64], ["--bucket / S3_BUCKET", "3 to 63 characters"]),
])
def test_bad_arguments(args, words):
    assert_one_line_error(run_target(*args), *words)


def test_bucket_from_the_environment_follows_the_same_rule():
    assert_one_line_error(run_target("--port", "0", env={"S3_BUCKET": "ab"}), "S3_BUCKET", "3 to 63 characters")


def test_no_endpoint_anywhere_starts_the_embedded_s3(monkeypatch):
    from conftest import start_target

    monkeypatch.delenv("S3_ENDPOINT", raising=False)
    monkeypatch.delenv("S3_BUCKET", raising=False)
    target = start_target()  # no --s3-endpoint, no S3_ENDPOINT
    with urllib.request.urlopen(target.base + "/health", timeout=30) as answer:  # serving: signals handled
        assert answer.status == 200
    code, err = target.stop()
    assert code == 0, err
    assert "embedded S3 (moto)" in err and "bucket wef-events" in err


def test_collector_help_lists_its_options_and_hides_the_old_name():
    helped = subprocess.run([sys.executable, "-m", "wefperf", "collector", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "--flush-interval-secs" in helped.stdout and "--max-file-size-mb" in helped.stdout
    top = subprocess.run([sys.executable, "-m", "wefperf", "--help"], capture_output=True, text=True, timeout=60)
    assert "collector" in top.stdout
    assert "target" not in top.stdout  # the old name is an unlisted alias


def test_old_target_name_still_runs_the_collector_and_says_it_was_renamed():
    old = subprocess.run([sys.executable, "-m", "wefperf", "target", "--port", "70000"],
                         capture_output=True, text=True, timeout=60)
    assert old.returncode == 2
    lines = old.stderr.strip().splitlines()
    assert "now `wefperf collector`" in lines[0]
    assert lines[1].startswith("wefperf collector: error: --port must be between 0 and 65535")
