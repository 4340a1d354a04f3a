"""The server's counts across a reset of its counters (a collector restart): summed, never subtracted.

Runs use the contract-shaped fake collector with `reset_after_stats_read`, which starts every count
again from 0 right after one /stats/throughput read while it keeps its port: a restart's counters
without its outage (tests/test_restart_e2e.py stops and starts the reference collector).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fake_collector import FakeCollector
from helpers import wefperf as run_cli
from wefperf.measure.reach import Outage
from wefperf.measure.recorder import Recorder
from wefperf.observe.prometheus import CounterTotal
from wefperf.observe.restarts import RestartWatch, unseen_note


def test_one_type_falling_means_every_type_restarted() -> None:
    total: CounterTotal[str] = CounterTotal(whole_resets=True)
    assert total.update_series({"a": 100, "b": 50}) == 150
    assert total.update_series({"a": 120, "b": 50}) == 170
    # a restart: `a` counted 10 since, `b` nothing yet (its row is gone until its first event)
    assert total.update_series({"a": 10}) == 180
    assert total.values() == {"a": 130, "b": 50}
    # `b` comes back above its old value: it restarted with `a`, so all 60 are new
    assert total.update_series({"a": 12, "b": 60}) == 242
    assert total.values() == {"a": 132, "b": 110}
    assert total.resets == 1


def test_the_watch_places_a_restart_between_its_outages() -> None:
    # load starts at 100.0; reads each second; stats fail from 104.0 to 106.5; batches refused 103.8-106.6
    watch = RestartWatch(baseline=1_000)
    watch.read_ok(100.0, 1_000, 0, 0)
    watch.read_ok(103.0, 7_000, 0, 6_000)
    watch.read_failed(104.0, 7_400)
    watch.read_failed(105.0, 7_400)
    watch.read_ok(106.5, 7_100, 1, 7_500)  # the counters fell: the sum goes on from 7,000
    outages = [Outage(103.8, 106.6, 6_900)]
    (r,) = watch.restarts(100.0, outages)
    assert r.at_seconds == pytest.approx(3.8) and r.seen_at_seconds == pytest.approx(6.5)
    assert r.stats_unreachable_seconds == pytest.approx(2.5)
    assert r.events_unreachable_seconds == pytest.approx(2.8)
    assert r.unreachable_seconds == pytest.approx(2.8)
    assert r.counted_before == 6_000  # since the baseline, at the read at 103.0
    assert r.acknowledged_unseen == 900  # acknowledged between that read and the first refused batch
    assert unseen_note([r], acknowledged=7_500, received=6_700) is not None
    assert unseen_note([r], acknowledged=7_500, received=7_500) is None  # nothing short: nothing to explain


def test_a_restart_whose_rows_come_back_a_read_later_keeps_its_outage() -> None:
    # A restarted /stats/throughput lists no rows until the first event: the first good read after
    # the outage shows no fall (the summed count stands still), the next one does.
    watch = RestartWatch(baseline=0)
    watch.read_ok(10.0, 0, 0, 0)
    watch.read_ok(11.0, 3_000, 0, 3_000)
    watch.read_failed(12.0, 3_500)
    watch.read_failed(12.5, 3_500)
    watch.read_ok(13.0, 3_000, 0, 3_500)  # back, no rows yet
    watch.read_ok(13.5, 3_200, 1, 3_700)  # its first rows: lower
    (r,) = watch.restarts(10.0, [])
    assert r.at_seconds == pytest.approx(2.0) and r.seen_at_seconds == pytest.approx(3.5)
    assert r.stats_unreachable_seconds == pytest.approx(1.0)  # from the first failed read to the next good one
    assert r.counted_before == 3_000 and r.acknowledged_unseen == 500


def test_the_recorder_marks_where_batches_could_not_reach_the_collector() -> None:
    rec = Recorder(0.0)
    rec.ok(100, 0.0, 0.0, 0.5)
    rec.failed(1, 100, "http_500", "HTTP 500", 0.6)  # an answer: the collector was there
    rec.failed(2, 100, "connection_refused", "refused", 1.0)
    rec.failed(3, 100, "connection_reset", "reset", 1.5)
    rec.ok(100, 1.9, 1.9, 2.0)
    rec.failed(4, 100, "connection_refused", "refused", 3.0)
    assert rec.reach.spans() == [Outage(1.0, 2.0, 100), Outage(3.0, None, 200)]


def _run(c: FakeCollector, tmp_path: Path) -> tuple[str, dict]:
    results = tmp_path / "r.json"
    done = run_cli("run", "--total-events", "4000", "--batch-size", "100", "--target-eps", "2000",
                   "--stats-interval-secs", "0.25", "--results", str(results), "--report", str(tmp_path / "r.html"),
                   env={"WEF_ENDPOINT": c.url, "PERF_TEST_PROCESSING_WAIT_SECS": "3"})
    assert done.code == 0, done.out + done.err
    return done.out, json.loads(results.read_text())


def _check_summed(c: FakeCollector, out: str, data: dict) -> None:
    assert data["results"]["events_acknowledged"] == 4_000
    assert data["results"]["events_received"] == 4_000
    assert "Events received (by server): 4,000 (summed across 1 collector restart)" in out
    server = data["server_stats"]
    assert all(r["counted"] == r["expected"] > 0 for r in server["per_event_id"]), server["per_event_id"]
    assert sum(server["per_type_delta"].values()) == 4_000
    # the timeline's server column: never negative, and it adds up to what was counted during the load
    samples = [row["server_events"] for row in data["timeline"] if row.get("server_events") is not None]
    assert samples and min(samples) >= 0 and sum(samples) <= 4_000
    assert len(server["restarts"]) == 1
    assert "Collector restarted 1 time during the run" in out


def test_a_reset_between_the_baseline_and_the_load(tmp_path: Path) -> None:
    # A server that had counted 50,000 events restarts right after wefperf's baseline read.
    c = FakeCollector(events=Counter({"EventID 4624": 50_000, "EventID 4688": 7_000}), reset_after_stats_read=1)
    c.start()
    try:
        out, data = _run(c, tmp_path)
    finally:
        c.stop()
    _check_summed(c, out, data)
    assert data["server_stats"]["baseline_total"] == 57_000
    assert data["server_stats"]["final_total"] == 61_000


def test_a_reset_during_the_load(tmp_path: Path) -> None:
    c = FakeCollector(reset_after_stats_read=4)  # the baseline and three reads a quarter second apart
    c.start()
    try:
        out, data = _run(c, tmp_path)
    finally:
        c.stop()
    assert c.stats_reads > 4 and sum(c.events.values()) < 4_000  # the fake did reset mid-load
    _check_summed(c, out, data)
    (r,) = data["server_stats"]["restarts"]
    # no outage: the fake kept its port and answered every read
    assert r["stats_unreachable_seconds"] == 0 and r["events_unreachable_seconds"] is None
    assert 0 < r["counted_before"] < 4_000
    assert "between two stats reads" in out
    page = (tmp_path / "r.html").read_text()
    assert "The collector restarted" in page
