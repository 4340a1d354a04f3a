"""Parquet uploads to S3 with aiobotocore: retried through outages, bounded, and every loss counted.

Files wait in a queue whose bytes are bounded (`max_pending_bytes`). While S3 is down the
workers retry the file in hand with capped backoff; when the queue outgrows its bound the
oldest waiting file is dropped and its events are counted, never lost silently.

No hash of a file is computed on the event loop: botocore would otherwise checksum each body
(CRC32) and, over plain http, SHA-256 it for the signature, tens of milliseconds for a file of
tens of MB, with every request waiting. The CRC32 comes with the file from the worker thread
that built it (`crc32_of`) and goes out as `x-amz-checksum-crc32`, which S3 checks on receipt;
the signature covers the headers and says UNSIGNED-PAYLOAD for the body.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

log = logging.getLogger("wefperf.collector")


class S3ConfigError(Exception):
    """S3 is unusable at start-up (endpoint down, bucket missing, credentials refused)."""


@dataclass(frozen=True)
class S3Target:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def crc32_of(data: bytes) -> str:
    """S3's `ChecksumCRC32` of a body (base64 of the big-endian CRC32); zlib releases the GIL while it runs."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


@dataclass(frozen=True)
class PendingFile:
    key: str
    data: bytes
    rows: int
    crc32: str = ""  # crc32_of(data), computed off the loop; empty: botocore computes it (on the loop)


@dataclass
class UploadCounters:
    uploaded_files: int = 0
    uploaded_events: int = 0
    uploaded_bytes: int = 0
    upload_retries: int = 0
    dropped_files: int = 0
    dropped_events: int = 0
    unexpected_errors: int = 0  # failures that are not S3 or network trouble: a bug, shown, never silent
    last_error: str = ""


def client_config(connect_timeout: float = 3.0) -> Config:
    """Short timeouts and no botocore retries: an outage shows up fast and our own loop retries.
    No SHA-256 of the body for the signature (see the module docstring): the CRC32 guards it."""
    return Config(
        connect_timeout=connect_timeout, read_timeout=30, retries={"max_attempts": 1},
        s3={"addressing_style": "path", "payload_signing_enabled": False},
    )


@contextlib.asynccontextmanager
async def s3_client(target: S3Target):  # type: ignore[no-untyped-def]
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=target.endpoint, region_name=target.region,
        aws_access_key_id=target.access_key, aws_secret_access_key=target.secret_key,
        config=client_config(),
    ) as client:
        yield client


async def check_bucket(client: Any, target: S3Target) -> None:
    """head_bucket, translated into one sentence that says what to check."""
    where = f"s3://{target.bucket} at {target.endpoint}"
    try:
        await client.head_bucket(Bucket=target.bucket)
    except (EndpointConnectionError, OSError, asyncio.TimeoutError):
        raise S3ConfigError(
            f"S3 endpoint {target.endpoint} is unreachable: check --s3-endpoint / S3_ENDPOINT and that the server is up"
        ) from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket") or status == 404:
            raise S3ConfigError(
                f"bucket {target.bucket!r} does not exist at {target.endpoint}: create it or set --bucket / S3_BUCKET"
            ) from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
            raise S3ConfigError(
                f"S3 refused access to {where}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            ) from None
        raise S3ConfigError(f"S3 check of {where} failed: {code or status}") from None
    except BotoCoreError as exc:
        raise S3ConfigError(f"S3 check of {where} failed: {exc}") from None


class Uploader:
    """A bounded queue of parquet files and a few workers that put them to S3; `start` them first."""

    # An error that is not S3 or network trouble is retried this often, then the file is dropped (counted).
    UNEXPECTED_TRIES = 5

    def __init__(
        self, client: Any, bucket: str, *, max_pending_bytes: int, workers: int = 2,
        backoff_initial: float = 0.2, backoff_max: float = 2.0,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._max_pending = max_pending_bytes
        self._backoff = (backoff_initial, backoff_max)
        self._waiting: collections.deque[PendingFile] = collections.deque()
        self._in_flight: dict[int, PendingFile] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self._failing_since: float | None = None
        self.counters = UploadCounters()
        self._worker_count = workers
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the upload workers (in the running loop; not in the constructor)."""
        if not self._workers:
            self._workers = [asyncio.create_task(self._work(i)) for i in range(self._worker_count)]

    @property
    def pending_bytes(self) -> int:
        return sum(len(f.data) for f in self._waiting) + sum(len(f.data) for f in self._in_flight.values())

    @property
    def pending_files(self) -> int:
        return len(self._waiting) + len(self._in_flight)

    @property
    def pending_events(self) -> int:
        return sum(f.rows for f in self._waiting) + sum(f.rows for f in self._in_flight.values())

    def submit(self, item: PendingFile) -> None:
        self._waiting.append(item)
        while self._waiting and self.pending_bytes > self._max_pending:
            self._drop(self._waiting.popleft(), "the upload queue is full (S3 too slow or down)")
        self._wake.set()

    def record_drop(self, key: str, rows: int, why: str) -> None:
        """Count events that will never reach S3, and say so in the log."""
        self.counters.dropped_files += 1
        self.counters.dropped_events += rows
        log.error("dropped %s (%d events): %s", key, rows, why)

    def _drop(self, item: PendingFile, why: str) -> None:
        self.record_drop(item.key, item.rows, why)

    async def _next(self) -> PendingFile | None:
        while not self._waiting:
            if self._closing:
                return None
            self._wake.clear()
            await self._wake.wait()
        return self._waiting.popleft()

    async def _work(self, slot: int) -> None:
        while (item := await self._next()) is not None:
            self._in_flight[slot] = item
            try:
                await self._put(item)
            finally:
                self._in_flight.pop(slot, None)

    async def _put(self, item: PendingFile) -> None:
        delay = self._backoff[0]
        unexpected = 0
        while True:
            try:
                checksum = {"ChecksumAlgorithm": "CRC32", "ChecksumCRC32": item.crc32} if item.crc32 else {}
                await self._client.put_object(Bucket=self._bucket, Key=item.key, Body=item.data, **checksum)
            except (BotoCoreError, ClientError, OSError, asyncio.TimeoutError) as exc:
                self.counters.upload_retries += 1
                self.counters.last_error = type(exc).__name__
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("S3 upload of %s failed (%s); retrying", item.key, type(exc).__name__)
            except Exception as exc:  # not S3 trouble: a bug; logged, counted, never a silent stall
                unexpected += 1
                self.counters.unexpected_errors += 1
                self.counters.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.exception("unexpected error uploading %s (try %d of %d)", item.key, unexpected,
                              self.UNEXPECTED_TRIES)
                if unexpected >= self.UNEXPECTED_TRIES:
                    self._drop(item, f"upload kept failing with an unexpected error: {self.counters.last_error}")
                    return
            else:
                if self._failing_since is not None:
                    log.warning("S3 uploads recovered after %.1f s", time.monotonic() - self._failing_since)
                    self._failing_since = None
                self.counters.uploaded_files += 1
                self.counters.uploaded_events += item.rows
                self.counters.uploaded_bytes += len(item.data)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def close(self, timeout: float) -> None:
        """Upload what is queued within `timeout`; whatever is left then is counted as dropped."""
        self._closing = True
        self._wake.set()
        _, stuck = await asyncio.wait(self._workers, timeout=timeout)
        leftovers = list(self._in_flight.values()) + list(self._waiting)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        self._waiting.clear()
        for item in leftovers:
            self._drop(item, f"S3 still unavailable {timeout:.0f} s into shutdown")
