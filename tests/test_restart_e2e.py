"""The reference collector stopped mid-run and started again on the same port a few seconds later.

SIGTERM: it flushes on the way down, so S3 misses nothing, and its counts summed across the
restart account for every acknowledged event. SIGKILL: S3 misses exactly the acknowledged batches
the dead process still held after its last flush, and the report says the collector restarted.
Each run is ~2,000 events/s for a few seconds, the collector flushing every second; S3 via moto.
"""

from __future__ import annotations

import asyncio
import io
import re
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow.parquet as pq
import pytest

import wefperf
from conftest import TargetProcess
from wefperf.payload.marker import find_markers
from wefperf.report.console import ConsoleReporter, result_lines
from wefperf.runner import phases as runner
from wefperf.runner import settle

pytestmark = pytest.mark.slow

BATCH = 100
RECEIVED = re.compile(r"stopped: received (\d+) events")


class _Reporter(ConsoleReporter):
    """Plain lines into a buffer; says when the load has begun."""

    def __init__(self) -> None:
        self.text = io.StringIO()
        super().__init__(self.text, io.StringIO())
        self.began = asyncio.Event()

    def load_started(self) -> None:
        self.began.set()


@dataclass
class Restarted:
    result: wefperf.RunResult
    out: str
    first_err: str  # the first collector's log
    stored_at_death: set[int]  # sequence numbers in S3 once the first collector was gone
    down_at: float  # load clock: the signal
    back_at: float  # load clock: the second collector listening


def _stored(s3_client: Any, bucket: str, run_id: str) -> set[int]:
    """Every sequence number of this run in the bucket now."""
    seqs: set[int] = set()
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    for page in pages:
        for obj in page.get("Contents", []):
            body = s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            for text in pq.read_table(io.BytesIO(body)).column("event_data").to_pylist():
                seqs.update(m.seq(BATCH) for m in find_markers(text) if m.run_id == run_id)
    return seqs


def _restart_run(sig: int, wef_target: Callable[..., TargetProcess], s3_client: Any, bucket: str,
                 moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, *first_args: str) -> Restarted:
    # The S3 wait is twice the flush interval plus a margin for slow uploads: moto on 127.0.0.1
    # needs little, and a SIGKILL run waits all of it for events that are gone.
    monkeypatch.setattr(settle, "FLUSH_MARGIN_S", 3.0)
    first = wef_target("--flush-interval-secs", "1", *first_args)
    port = first.base.rsplit(":", 1)[1]
    settings = wefperf.load_settings(None, {
        "wef_endpoint": first.base, "event_type": "4624", "target_eps": 2000, "batch_size": BATCH,
        # 14 s of load: the new process is up well before its end even when a busy machine takes
        # seconds to start it (8 s was too short with two CPU burners beside the suite), so the
        # stats reads during the load see its counters fall.
        "duration_secs": 14, "stats_interval_secs": 0.5, "request_timeout_secs": 5, "processing_wait_secs": 5,
        "verify_s3": True,
        "s3_endpoint": moto_endpoint, "s3_bucket": bucket, "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing", "flush_interval_secs": 1, "run_id": "restart" + str(sig),
    }, environ={})
    rep = _Reporter()

    async def scenario() -> Restarted:
        run = asyncio.create_task(runner.run_test(settings, reporter=rep))
        await asyncio.wait_for(rep.began.wait(), 30)
        # 3.5 s in (7,000 counted): its successor counts fewer until the load ends, so even a busy
        # machine's slow stats reads see the counters fall.
        await asyncio.sleep(3.5)
        down_at = time.perf_counter()
        _, err = await asyncio.to_thread(first.stop, sig)
        await asyncio.sleep(0.5)  # an upload moto had whole when the process died lands now, or never
        stored = await asyncio.to_thread(_stored, s3_client, bucket, settings.run_id)
        await asyncio.sleep(max(0.0, 2.5 - (time.perf_counter() - down_at)))
        await asyncio.to_thread(wef_target, "--flush-interval-secs", "1", "--port", port)
        back_at = time.perf_counter()
        assert not run.done(), "the load ended before the new collector was up: lengthen duration_secs"
        result = await asyncio.wait_for(run, 60)
        return Restarted(result, rep.text.getvalue(), err, stored, down_at, back_at)

    return asyncio.run(scenario())


def _acked_seqs(result: wefperf.RunResult) -> set[int]:
    failed = {b for lo, hi in result.load.failed_ranges for b in range(lo, hi + 1)}
    return {b * BATCH + i for b in range(result.load.batches_sent) if b not in failed for i in range(BATCH)}


def _seqs(ranges: list[tuple[int, int]]) -> set[int]:
    return {s for lo, hi in ranges for s in range(lo, hi + 1)}


def test_sigterm_nothing_lost_and_every_acknowledged_event_counted(
        wef_target: Callable[..., TargetProcess], s3_client: Any, bucket: str, moto_endpoint: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = _restart_run(signal.SIGTERM, wef_target, s3_client, bucket, moto_endpoint, monkeypatch)
    result, load, server = run.result, run.result.load, run.result.server
    assert run.result.s3 is not None and run.result.s3.accounting is not None, run.out
    acct = run.result.s3.accounting
    assert acct.missing == 0 and acct.duplicated == 0, run.out
    assert load.batches_failed > 0, run.out  # batches were refused while it was down
    (restart,) = server.restarts
    received = server.events_received
    assert received is not None and restart.counted_before is not None
    # The first collector's own count (its shutdown line) is what it counted from wefperf's
    # baseline (0: it started fresh) to its end; wefperf's sum has its count at the last read
    # before the stop instead. With that difference, the sum is every acknowledged event.
    (first_count,) = (int(n) for n in RECEIVED.findall(run.first_err))
    unseen = first_count - restart.counted_before
    assert received + unseen == load.events_ok, (received, unseen, load.events_ok, run.out)
    # ... and wefperf's bound on that difference holds (a batch or two of slack for a read in flight)
    assert restart.acknowledged_unseen is not None
    assert 0 <= unseen <= restart.acknowledged_unseen + 2 * BATCH
    assert server.per_type_delta == {"EventID 4624": received} or server.per_type_delta == {}
    # when it went and how long: the stop came ~3.5 s into the load, the new process ~2.5 s later
    assert 2.5 < restart.at_seconds < 7.5
    # the 2.5 s pause, then the new process's start-up: seconds more on a busy machine
    assert 1.5 < restart.unreachable_seconds < 12.0, run.out
    lines = "\n".join(result_lines(result))
    assert "(summed across 1 collector restart)" in lines and "Collector restarted 1 time" in lines


def test_sigterm_to_a_draining_collector_counts_every_acknowledged_event(
        wef_target: Callable[..., TargetProcess], s3_client: Any, bucket: str, moto_endpoint: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A collector that keeps answering its stats while it drains (`--drain-secs`, new events 503):
    wefperf's last read before the restart sees its final count, so the count summed across the
    restart is exactly the acknowledged events, and S3 misses nothing."""
    run = _restart_run(signal.SIGTERM, wef_target, s3_client, bucket, moto_endpoint, monkeypatch,
                       "--drain-secs", "2")
    result, load, server = run.result, run.result.load, run.result.server
    assert result.s3 is not None and result.s3.accounting is not None, run.out
    assert result.s3.accounting.missing == 0 and result.s3.accounting.duplicated == 0, run.out
    (restart,) = server.restarts
    assert server.events_received == load.events_ok, (server.events_received, load.events_ok, run.out)
    (first_count,) = (int(n) for n in RECEIVED.findall(run.first_err))
    assert restart.counted_before == first_count  # the read during the drain saw the final count
    assert "http_503" in load.errors  # events offered while it drained were refused, not lost


def test_sigkill_s3_misses_exactly_what_the_dead_process_held(
        wef_target: Callable[..., TargetProcess], s3_client: Any, bucket: str, moto_endpoint: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = _restart_run(signal.SIGKILL, wef_target, s3_client, bucket, moto_endpoint, monkeypatch)
    result, load = run.result, run.result.load
    assert result.s3 is not None and result.s3.accounting is not None, run.out
    acct = result.s3.accounting
    missing = _seqs(acct.missing_ranges)
    acked = _acked_seqs(result)
    assert acct.missing_range_count == len(acct.missing_ranges)  # every range listed
    # Missing: exactly what the first process acknowledged and had not flushed when it died (the
    # second process's batches come after the outage's refused ones, and all of them arrived).
    assert run.stored_at_death, "the first collector flushed nothing before it was killed"
    after_restart = (load.failed_ranges[-1][1] + 1) * BATCH
    held = {s for s in acked if s < after_restart} - run.stored_at_death
    assert missing == held, (sorted(missing)[:3], sorted(held)[:3], len(missing), len(held))
    assert all(lo % BATCH == 0 and (hi + 1) % BATCH == 0 for lo, hi in acct.missing_ranges)  # whole batches
    # ... which is what arrived after its last flush: about a flush interval (1 s) of load, at most
    # two while an upload was under way, and nothing before the last flushed event but stragglers
    assert len(missing) <= 4 * 2000 + 10 * BATCH  # 4 s: a busy machine's flush takes longer
    assert len({s for s in missing if s < max(run.stored_at_death)}) <= 5 * BATCH
    assert acct.duplicated == 0 and not result.passed
    # the report says the collector restarted, and when
    (restart,) = result.server.restarts
    assert 2.5 < restart.at_seconds < 7.5
    lines = "\n".join(result_lines(result))
    assert "Collector restarted 1 time during the run" in lines
