"""The uploader never stalls silently: an unexpected error is logged, counted, retried, then dropped."""

from __future__ import annotations

import asyncio
import logging

import pytest

from wefperf.collector.upload import PendingFile, Uploader


class _FlakyStore:
    """A stand-in for the S3 client's put_object (a unit test of the retry policy, not of S3)."""

    def __init__(self, bad_calls: int) -> None:
        self.bad_calls = bad_calls
        self.calls = 0
        self.stored: dict[str, bytes] = {}

    async def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> None:
        self.calls += 1
        if self.calls <= self.bad_calls:
            raise RuntimeError("a bug, not an S3 outage")
        self.stored[Key] = Body


async def test_an_unexpected_error_is_logged_counted_and_the_upload_still_lands(
        caplog: pytest.LogCaptureFixture) -> None:
    store = _FlakyStore(bad_calls=2)
    up = Uploader(store, "b", max_pending_bytes=1 << 20, backoff_initial=0.01, backoff_max=0.02)
    up.start()
    with caplog.at_level(logging.ERROR, logger="wefperf.collector"):
        up.submit(PendingFile("k1.parquet", b"data", 10))
        await up.close(5)
    assert store.stored == {"k1.parquet": b"data"}
    assert up.counters.unexpected_errors == 2 and up.counters.uploaded_events == 10
    assert up.counters.last_error.startswith("RuntimeError: a bug")
    assert caplog.text.count("unexpected error uploading k1.parquet") == 2
    assert up.counters.dropped_events == 0


async def test_an_upload_that_keeps_failing_unexpectedly_is_dropped_and_counted() -> None:
    store = _FlakyStore(bad_calls=10**6)
    up = Uploader(store, "b", max_pending_bytes=1 << 20, backoff_initial=0.001, backoff_max=0.002)
    up.start()
    up.submit(PendingFile("k2.parquet", b"data", 7))
    await asyncio.wait_for(up.close(30), 10)  # ends by the retry limit, not by the close timeout
    assert store.calls == Uploader.UNEXPECTED_TRIES
    assert up.counters.unexpected_errors == Uploader.UNEXPECTED_TRIES
    assert (up.counters.dropped_files, up.counters.dropped_events) == (1, 7)


def test_no_task_is_started_before_start() -> None:
    up = Uploader(_FlakyStore(0), "b", max_pending_bytes=1)
    assert up._workers == []  # constructing it outside a running loop is fine
