"""Shared fixtures: a real moto S3 server process on 127.0.0.1, and `wefperf collector` as a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Iterator

import pytest

from fake_collector import FakeCollector
from wefperf.collector.s3server import MotoServer
from wefperf.load.fast_sender import ReplyProtocol


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    """The contract-shaped fake collector (tests/fake_collector.py), on its own port for one test."""
    c = FakeCollector().start()
    yield c
    c.stop()


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fast sender's pause_writing calls: proof that a test filled the socket (a body still being written)."""
    seen: list[int] = []
    original = ReplyProtocol.pause_writing

    def pause_writing(self: ReplyProtocol) -> None:
        seen.append(1)
        original(self)

    monkeypatch.setattr(ReplyProtocol, "pause_writing", pause_writing)
    return seen


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the whole session; tests use their own buckets."""
    with MotoServer() as server:
        yield server.endpoint


@pytest.fixture
def s3_client(moto_endpoint: str):
    """A synchronous boto3-style client (botocore) for tests to build and inspect buckets."""
    import botocore.session

    session = botocore.session.get_session()
    client = session.create_client(
        "s3", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    yield client
    client.close()


@pytest.fixture
def bucket(s3_client) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


# --- `wefperf collector` as a child process (added for issue 3: tests/test_collector_*.py) -------------


@dataclass
class TargetProcess:
    """A running `python -m wefperf collector`; `base` is its http://127.0.0.1:PORT."""

    proc: subprocess.Popen
    base: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
        """Signal it, wait, and return (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def start_target(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> TargetProcess:
    """Start the collector and wait for its `listening on` line; fail the test with its stderr if it dies."""
    full_env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wefperf", "collector", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if "listening on " not in line:
        proc.kill()
        _, err = proc.communicate(timeout=timeout)
        raise AssertionError(f"wefperf collector did not start: {line!r} {err}")
    return TargetProcess(proc, line.split("listening on ", 1)[1].strip())


@pytest.fixture
def wef_target(moto_endpoint: str, bucket: str):
    """Factory: `wef_target(*extra_args)` starts a collector writing to this test's bucket; killed at teardown."""
    started: list[TargetProcess] = []

    def factory(*args: str, **kw) -> TargetProcess:
        t = start_target("--s3-endpoint", moto_endpoint, "--bucket", bucket, *args, **kw)
        started.append(t)
        return t

    yield factory
    for t in started:
        if t.proc.poll() is None:
            t.proc.kill()
            t.proc.communicate()
