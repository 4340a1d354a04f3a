"""soak-1h, shortened to seconds, with the collector stopped (SIGTERM) in the middle and started again
on the same port: wefperf's memory does not grow from the outage, its senders are back within a
second of the collector's return, and the figures hold as in a run without one (S3 missing 0,
the server's count summed across the restart)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import tracemalloc
from typing import Any, Callable

import pytest

import wefperf
from conftest import TargetProcess
from test_restart_e2e import _Reporter
from wefperf.runner import phases as runner
from wefperf.runner import settle

pytestmark = pytest.mark.slow

RECEIVED = re.compile(r"stopped: received (\d+) events")
# Generous for a busy 2-core machine; the measured figures are in the assertion messages.
RECONNECT_WITHIN_S = 1.0
OUTAGE_GROWTH_BYTES = 8 * 1024 * 1024


def test_soak_survives_a_collector_restart(wef_target: Callable[..., TargetProcess], s3_client: Any, bucket: str,
                                           moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle, "FLUSH_MARGIN_S", 3.0)  # moto on 127.0.0.1 needs no 15 s margin
    first = wef_target("--flush-interval-secs", "1")
    port = first.base.rsplit(":", 1)[1]
    # The soak profile's own settings (batches of 1,000, the weighted mix, S3 verification), for
    # 11 s at 4,000 events/s instead of an hour at 10,000, the collector flushing every second. It is
    # stopped 5 s in: its successor counts less than those 20,000 until the load ends, so even a busy
    # machine's slow reads see the counters fall.
    settings = wefperf.load_settings("soak-1h", {
        "wef_endpoint": first.base, "duration_secs": 11, "target_eps": 4000, "timeout_secs": 60,
        "flush_interval_secs": 1, "processing_wait_secs": 2, "request_timeout_secs": 5, "stats_interval_secs": 0.5,
        "s3_endpoint": moto_endpoint, "s3_bucket": bucket, "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }, environ={})
    assert settings.batch_size == 1000 and settings.verify_s3 and settings.duration_mode
    rep = _Reporter()
    memory: list[tuple[float, int]] = []

    async def measure() -> None:
        while True:
            memory.append((time.perf_counter(), tracemalloc.get_traced_memory()[0]))
            await asyncio.sleep(0.1)

    async def scenario() -> tuple[wefperf.RunResult, str, float, float, float]:
        run = asyncio.create_task(runner.run_test(settings, reporter=rep))
        await asyncio.wait_for(rep.began.wait(), 30)
        began = time.perf_counter()  # the load's start, to a few ms (the recorder's clock)
        sampling = asyncio.create_task(measure())
        await asyncio.sleep(5.0)
        down_at = time.perf_counter()
        _, err = await asyncio.to_thread(first.stop, signal.SIGTERM)
        await asyncio.sleep(max(0.0, 2.5 - (time.perf_counter() - down_at)))
        await asyncio.to_thread(wef_target, "--flush-interval-secs", "1", "--port", port)
        back_at = time.perf_counter()
        result = await asyncio.wait_for(run, 90)
        sampling.cancel()
        return result, err, began, down_at, back_at

    tracemalloc.start()
    try:
        result, first_log, began, down_at, back_at = asyncio.run(scenario())
    finally:
        tracemalloc.stop()
    out = rep.text.getvalue()
    load, server = result.load, result.server

    # The same figures: every acknowledged event in S3, the server's count summed across the restart.
    assert result.s3 is not None and result.s3.accounting is not None, out
    assert result.s3.accounting.missing == 0 and result.s3.accounting.duplicated == 0, out
    assert len(server.restarts) == 1, (server.restarts, server.notes, out)
    (restart,) = server.restarts
    (first_count,) = (int(n) for n in RECEIVED.findall(first_log))
    assert restart.counted_before is not None and server.events_received is not None
    assert server.events_received + first_count - restart.counted_before == load.events_ok, out
    assert load.events_ok > 0 and load.batches_failed > 0

    # Reconnection: the first acknowledgement after the outage, against the new process's ready line
    # (read by this test a little after the collector printed it, so it may even come first).
    assert restart.back_at_seconds is not None, out
    late = began + restart.back_at_seconds - back_at
    assert late < RECONNECT_WITHIN_S, f"acknowledged again {late:.3f} s after the collector's return"
    print(f"soak restart: acknowledged again {late:+.3f} s after the return;"
          f" out of reach {restart.unreachable_seconds:.2f} s")

    # Memory: what wefperf holds (Python allocations, traced) from just before the stop until a
    # second after the collector's return does not grow by more than a generous bound.
    before = max(m for t, m in memory if t <= down_at)
    during = max(m for t, m in memory if down_at <= t <= back_at + 1.0)
    assert during - before < OUTAGE_GROWTH_BYTES, f"grew {(during - before) / 1e6:.1f} MB over the outage"
    print(f"soak restart: traced memory {before / 1e6:.1f} MB before the stop, at most {during / 1e6:.1f} MB"
          " until a second after the return")
