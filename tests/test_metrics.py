"""The recorder: timeline rows, histograms fed through the pending buffer, failures kept exactly."""

from __future__ import annotations

import gc
import random

import pytest
from hdrh.histogram import HdrHistogram

from wefperf.measure.hdr import histogram
from wefperf.measure.recorder import PENDING_MAX, BatchSet, HostRecorder, Recorder, ranges_count
from wefperf.model import Percentiles, mean_of


def test_timeline_has_one_row_per_second_with_sent_acked_failed_and_p99() -> None:
    rec = Recorder(100.0)
    rec.sent(10, 100.0, 100.1)
    rec.ok(10, 100.0, 100.1, 100.2)  # 200 ms from the intended time
    rec.sent(10, 101.0, 101.0)
    rec.failed(1, 10, "http_500", "HTTP 500", 101.5)
    rec.sent(10, 103.2, 103.2)
    rec.ok(10, 103.2, 103.2, 103.25)
    load = rec.summary(104.0)
    rows = load.timeline
    assert [r.t for r in rows] == [0, 1, 2, 3]
    assert [(r.sent_events, r.acked_events, r.failed_events) for r in rows] == [(10, 10, 0), (10, 0, 10), (0, 0, 0),
                                                                                 (10, 10, 0)]
    assert 199 <= rows[0].p99_ms <= 201 and 49 <= rows[3].p99_ms <= 51
    assert rows[1].p99_ms is None and rows[2].p99_ms is None  # no acknowledged batch: no value, not 0


def test_samples_beyond_the_pending_buffer_all_reach_the_histograms() -> None:
    rec = Recorder(0.0)
    n = PENDING_MAX * 2 + 17  # forces two flushes inside one second, then the final one
    for _ in range(n):
        rec.sent(1, 0.0, 0.0005)
        rec.ok(1, 0.0, 0.0005, 0.003)
    load = rec.summary(0.9)
    assert load.latency.count == n and load.service.count == n and load.schedule_lag.count == n
    assert 2.9 <= load.latency.p50 <= 3.1 and 2.4 <= load.service.p50 <= 2.6
    assert load.timeline[0].p99_ms > 0


def test_failures_are_counted_by_class_with_a_few_samples_and_every_batch_kept() -> None:
    rec = Recorder(0.0)
    shown = [rec.failed(b, 5, "connection_refused", "refused", 0.1) for b in range(250_000)]
    assert shown[:3] == [True, True, True] and not any(shown[3:])
    rec.failed(300_000, 5, "http_503", "HTTP 503", 0.2)
    load = rec.summary(1.0)
    assert load.batches_failed == 250_001 and load.events_failed == 1_250_005
    assert load.errors["connection_refused"].batches == 250_000
    assert len(load.errors["connection_refused"].samples) == 3
    assert load.failed_ranges == [(0, 249_999), (300_000, 300_000)]
    assert ranges_count(load.failed_ranges) == 250_001


def test_batch_set_keeps_each_number_once_and_reads_back_ranges() -> None:
    s = BatchSet()
    for b in (5, 3, 4, 9, 4, 0):
        s.add(b)
    assert s.count == 5
    assert s.ranges() == [(0, 0), (3, 5), (9, 9)]
    assert 4 in s and 6 not in s and 100 not in s


def test_timeline_rows_carry_what_the_report_draws() -> None:
    """p50/p90/p99/max, schedule-lag p99, errors by class and requests in flight, per second; None without data."""
    rec = Recorder(0.0)
    for i in range(100):  # second 0: 100 batches, latency 1..100 ms; 10 of them sent 30 ms late
        rec.sent(1, 0.0, 0.030 if i < 10 else 0.0)
        rec.ok(1, 0.0, 0.0, 0.001 * (i + 1))
    rec.sent(5, 0.5, 0.5)  # still in flight when second 0 ends
    rec.sent(5, 1.1, 1.1)
    rec.sent(5, 1.15, 1.15)
    rec.failed(7, 5, "timeout", "read timed out", 1.2)
    rec.failed(8, 5, "http_503", "HTTP 503", 1.3)
    rec.ok(5, 0.5, 0.5, 3.4)  # seconds 1..2 pass with it still in flight
    load = rec.summary(4.0)
    rows = load.timeline
    assert [r.t for r in rows] == [0, 1, 2, 3]
    first = rows[0]
    assert 49 <= first.p50_ms <= 51 and 89 <= first.p90_ms <= 91 and 98 <= first.p99_ms <= 100
    assert 99.9 <= first.max_ms <= 100.1
    assert 29 <= first.lag_p99_ms <= 31
    assert first.in_flight == 1 and first.errors == {}
    assert rows[1].errors == {"timeout": 5, "http_503": 5} and rows[1].failed_events == 10 == rows[1].sent_events
    assert rows[1].p50_ms is None and rows[1].max_ms is None  # nothing acknowledged: no value, not 0
    assert rows[1].in_flight == 1 and rows[2].in_flight == 1  # an idle second keeps the count
    assert rows[2].lag_p99_ms is None and rows[2].sent_events == 0
    assert rows[3].in_flight == 0 and 2895 <= rows[3].max_ms <= 2905  # three significant figures


def test_snapshot_reads_the_counters_and_the_last_closed_second() -> None:
    rec = Recorder(10.0)
    assert rec.snapshot(10.5).last is None
    rec.sent(3, 10.0, 10.0)
    rec.ok(3, 10.0, 10.0, 10.2)
    rec.sent(3, 10.4, 10.4)
    rec.failed(1, 3, "connection_reset", "reset", 10.6)
    rec.sent(3, 10.9, 10.9)
    rec.server_sample(10.95, 3)
    snap = rec.snapshot(11.3)
    assert (snap.events_sent, snap.events_ok, snap.events_failed, snap.in_flight) == (9, 3, 3, 1)
    assert snap.errors == {"connection_reset": 1} and snap.server_events == 3
    assert snap.last is not None and snap.last.t == 0 and snap.last.acked_events == 3
    assert snap.last.errors == {"connection_reset": 3} and abs(snap.elapsed_s - 1.3) < 1e-9
    snap.last.errors.clear()  # a copy: the timeline keeps its own
    assert rec.summary(12.0).timeline[0].errors == {"connection_reset": 3}


def test_the_mean_is_hdrs_own_for_recorded_merged_and_decoded_histograms() -> None:
    rng = random.Random(5)
    for n in (1, 7, 300, 20_000):
        h = histogram()
        for _ in range(n):
            h.record_value(int(rng.lognormvariate(rng.uniform(0, 12), rng.uniform(0.1, 3))) + 1)
        merged = histogram()
        merged.add(h)
        for x in (h, merged, HdrHistogram.decode(h.encode())):
            assert mean_of(x) == x.get_mean_value()
            p = Percentiles.of(x)
            assert (p.p50, p.p99, p.mean) == (x.get_value_at_percentile(50) / 1000,
                                              x.get_value_at_percentile(99) / 1000, x.get_mean_value() / 1000)
    assert mean_of(histogram()) == 0.0


@pytest.mark.parametrize("window_secs", [0, 5])
@pytest.mark.parametrize("hosts", [False, True])
def test_a_long_run_keeps_no_dead_histograms_waiting_for_the_cyclic_gc(window_secs: int, hosts: bool) -> None:
    """Each closed second's histogram is freed at once (hdrh's histogram and encoder refer to each
    other): with the cyclic GC off, 120 seconds leave a handful alive, not one per second. (Before:
    124 alive after 120 s, about 57 KB each; `make bench` saw peak RSS grow with the run.)"""
    rec: Recorder = HostRecorder(0.0, window_secs) if hosts else Recorder(0.0, window_secs)
    gc.collect()
    gc.disable()
    try:
        for second in range(120):
            for i in range(50):
                t = second + i / 50
                rec.sent(100, t, t)
                rec.ok(100, t, t, t + 0.002)
            rec.snapshot(second + 0.999)
            if window_secs:
                assert second < window_secs or rec.window() is not None
        alive = sum(isinstance(o, HdrHistogram) for o in gc.get_objects())
    finally:
        gc.enable()
    assert alive <= 6 + 2 * window_secs + 4, alive
    load = rec.summary(120.0)
    assert load.latency.count == 120 * 50 and load.latency.p50 >= 1.9  # the run's own histograms whole
