"""Shared fixtures: a real moto S3 server process on 127.0.0.1."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from wefperf.target.s3server import MotoServer


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
