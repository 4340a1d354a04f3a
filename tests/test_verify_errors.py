"""What the verifier says when S3 is not there, the bucket is missing or access is denied; and the CLI."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import botocore.session
import pytest

from helpers import wefperf
from verify_data import hand_event, key, parquet_bytes, put_all
from wefperf.cli import main
from wefperf.collector.s3server import MotoServer, free_port
from wefperf.verify import VerifyOptions, verify_s3

SECRET = "s3cr3t-do-not-print"


def _opts(endpoint: str, bucket: str, access_key: str = "testing", secret_key: str = SECRET) -> VerifyOptions:
    return VerifyOptions(endpoint=endpoint, bucket=bucket, access_key=access_key, secret_key=secret_key,
                         event_types=["4624"])


async def test_endpoint_down_is_one_clear_line() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    res = await verify_s3(_opts(endpoint, "wef-events"))
    assert time.monotonic() - started < 20
    assert not res.passed
    assert res.error == (f"cannot reach S3 at {endpoint} while listing: "
                         "check S3_ENDPOINT and that the S3 server is running")
    assert res.reason == res.error


async def test_missing_bucket_is_named(moto_endpoint: str) -> None:
    res = await verify_s3(_opts(moto_endpoint, "no-such-bucket-here"))
    assert not res.passed
    assert res.error == f"bucket 'no-such-bucket-here' does not exist at {moto_endpoint}: check S3_BUCKET"


@dataclass
class AuthS3:
    """A moto server of its own with authentication on: keys and policies are enforced."""

    endpoint: str
    bucket: str
    nobody: tuple[str, str]  # a user with no permission at all
    lister: tuple[str, str]  # may list the bucket, not read objects


@pytest.fixture(scope="module")
def auth_s3() -> Iterator[AuthS3]:
    with MotoServer() as server:
        setup_actions = 8  # the requests below; every later request must be signed by a known user
        urllib.request.urlopen(urllib.request.Request(
            server.endpoint + "/moto-api/reset-auth", data=str(setup_actions).encode(), method="POST",
            headers={"Content-Type": "text/plain"})).close()
        session = botocore.session.get_session()
        kw = dict(endpoint_url=server.endpoint, region_name="us-east-1",
                  aws_access_key_id="setup", aws_secret_access_key="setup")
        s3, iam = session.create_client("s3", **kw), session.create_client("iam", **kw)
        s3.create_bucket(Bucket="locked")  # 1
        s3.put_object(Bucket="locked", Key=key("a"), Body=parquet_bytes([hand_event("x1", 0, 0)]))  # 2
        keys = {}
        for user in ("nobody", "lister"):
            iam.create_user(UserName=user)  # 3, 5
            made = iam.create_access_key(UserName=user)["AccessKey"]  # 4, 6
            keys[user] = (made["AccessKeyId"], made["SecretAccessKey"])
        iam.put_user_policy(UserName="lister", PolicyName="list-only", PolicyDocument=json.dumps({  # 7
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}],
        }))
        s3.put_object(Bucket="locked", Key=key("b"), Body=parquet_bytes([hand_event("x1", 0, 1)]))  # 8
        s3.close()
        iam.close()
        yield AuthS3(server.endpoint, "locked", keys["nobody"], keys["lister"])


async def test_access_denied_on_listing(auth_s3: AuthS3) -> None:
    res = await verify_s3(_opts(auth_s3.endpoint, auth_s3.bucket, *auth_s3.nobody))
    assert not res.passed
    assert res.error == ("access denied to bucket 'locked' while listing: check that AWS_ACCESS_KEY_ID "
                         "may list and read it (IAM or bucket policy)")


async def test_access_denied_on_reading_objects(auth_s3: AuthS3) -> None:
    res = await verify_s3(_opts(auth_s3.endpoint, auth_s3.bucket, *auth_s3.lister))
    assert not res.passed
    assert res.error is not None and res.error.startswith("access denied to bucket 'locked' while reading event_type=4624/")


async def test_unknown_access_key_is_rejected(auth_s3: AuthS3) -> None:
    res = await verify_s3(_opts(auth_s3.endpoint, auth_s3.bucket, "AKIAUNKNOWN0000", SECRET))
    assert not res.passed
    assert res.error == (f"S3 at {auth_s3.endpoint} rejected the credentials (InvalidAccessKeyId) while listing: "
                         "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


# -- the CLI, run as a user runs it ------------------------------------------------------

def _env(endpoint: str, bucket: str) -> dict[str, str]:
    return {"S3_ENDPOINT": endpoint, "S3_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": SECRET}


def _clean(out: str, err: str) -> None:
    assert "Traceback" not in out + err
    assert SECRET not in out + err


def test_cli_passes_and_writes_json(moto_endpoint: str, s3_client, bucket: str, tmp_path: Path) -> None:
    put_all(s3_client, bucket, {key("a"): parquet_bytes([hand_event("c1", 0, i) for i in range(3)])})
    out = tmp_path / "s3.json"
    done = wefperf("verify", "--event-type", "4624", "--run-id", "c1", "--expect-events", "3",
                   "--batch-size", "10", "--json", str(out), env=_env(moto_endpoint, bucket))
    _clean(done.out, done.err)
    assert done.code == 0, done.out + done.err
    assert "✓ S3 files verified successfully" in done.out and "  Files found: 1" in done.out
    assert "Events of run c1: expected 3, found 3, missing 0, duplicated 0" in done.out
    data = json.loads(out.read_text())
    assert data["success"] is True and data["files_found"] == 1 and data["accounting"]["found"] == 3
    assert SECRET not in out.read_text()


def test_cli_fails_on_corrupt_and_misplaced_objects(moto_endpoint: str, s3_client, bucket: str) -> None:
    put_all(s3_client, bucket, {key("bad"): b"garbage" * 10, "event_type=4624/loose.parquet": b"x"})
    done = wefperf("verify", "--event-type", "4624", "--bucket", bucket, env=_env(moto_endpoint, "ignored-bucket"))
    _clean(done.out, done.err)
    assert done.code == 1
    assert "✗ S3 verification failed: 2 problems with stored objects" in done.out
    assert f"{key('bad')}: corrupt parquet" in done.out
    assert "event_type=4624/loose.parquet: outside the partition layout" in done.out


@pytest.mark.parametrize("bucket_name, endpoint_kind, expect", [
    ("no-such-bucket-cli", "moto", "does not exist"),
    ("wef-events", "down", "cannot reach S3"),
])
def test_cli_s3_errors_are_one_line_and_exit_1(moto_endpoint: str, bucket_name: str, endpoint_kind: str,
                                              expect: str) -> None:
    endpoint = moto_endpoint if endpoint_kind == "moto" else f"http://127.0.0.1:{free_port()}"
    done = wefperf("verify", "--event-type", "4624", env=_env(endpoint, bucket_name))
    _clean(done.out, done.err)
    assert done.code == 1
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0]


@pytest.mark.parametrize("args, env, expect", [
    ([], {}, "--event-type"),
    (["--event-type", "logon"], {}, "not a Windows event ID"),
    (["--event-type", "4624", "--date", "2026-13-01"], {}, "YYYY-MM-DD"),
    (["--event-type", "4624", "--max-size-mb", "0"], {}, "greater than 0"),
    (["--event-type", "4624", "--expect-events", "-5"], {}, "at least 1"),
    (["--event-type", "4624"], {"S3_ENDPOINT": "minio:9000"}, "S3_ENDPOINT"),
    # the shared S3Settings rules: one URL check, one bucket rule (3 to 63 characters)
    (["--event-type", "4624"], {"S3_ENDPOINT": "http://minio:99999"}, "S3_ENDPOINT: has an invalid port"),
    (["--event-type", "4624", "--s3-endpoint", "minio:9000"], {}, "--s3-endpoint / S3_ENDPOINT"),
    (["--event-type", "4624", "--bucket", "ab"], {}, "--bucket / S3_BUCKET: must be 3 to 63 characters"),
    (["--event-type", "4624"], {"S3_BUCKET": "b" * 64}, "S3_BUCKET: must be 3 to 63 characters"),
    (["--event-type", "4624", "--bucket", ""], {}, "S3_BUCKET"),
    (["--event-type", "٤٦٢٤"], {}, "not a Windows event ID"),
])
def test_cli_bad_arguments_exit_2(args: list[str], env: dict[str, str], expect: str,
                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # In-process: argument errors stop before any S3 traffic, and a child process per case is slow.
    for name in ("S3_ENDPOINT", "S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = main(["verify", *args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    _clean(out, err)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], err
