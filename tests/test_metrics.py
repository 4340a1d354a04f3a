"""The recorder: timeline rows, histograms fed through the pending buffer, failures kept exactly."""

from __future__ import annotations

from wefperf.metrics import PENDING_MAX, BatchSet, Recorder, ranges_count


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
