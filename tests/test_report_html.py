"""The HTML report, `wefperf report` and `wefperf compare`: what the page holds, self-contained, and the CLI."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from fake_collector import FakeCollector
from helpers import wefperf
from wefperf.config.loading import load_settings
from wefperf.judge.verdict import S3Figures, judge
from wefperf.measure.recorder import Recorder
from wefperf.model import RunResult, ServerStats
from wefperf.report.html import render_html, report_beside
from wefperf.verify.accounting import Accounting
from wefperf.verify.model import VerifyResult

CHARTS = ("chart-rates", "chart-latency", "chart-lag", "chart-errors", "chart-inflight")


def results_dict(**changes: Any) -> dict[str, Any]:
    """A results JSON of a staged run with failures, a server count and an S3 check with missing events."""
    settings = load_settings(environ={"PERF_TEST_STAGES": "2:2000,2:4000", "PERF_TEST_VERIFY_S3": "true",
                                      "PERF_TEST_THRESHOLDS": "latency_p99_ms=250,s3_missing_events=0"})
    rec = Recorder(0.0)
    batch = 0
    for second in range(4):
        for i in range(3):
            at = second + i * 0.3
            rec.sent(1000, at, at + 0.002)
            if second == 2 and i == 1:
                rec.failed(batch, 1000, "http_503", "HTTP 503", at + 0.05)
            else:
                rec.ok(1000, at, at + 0.002, at + 0.01 * (second + 1))
            batch += 1
        rec.server_sample(second + 0.9, 2000)
    load = rec.summary(4.0, due_events=12_000, window_s=4.0)
    acct = Accounting("r1", 1000, expected=11_000, found=10_990, rows=10_995, missing=10, duplicated=5,
                      missing_ranges=[(4000, 4009)], duplicate_ranges=[(7000, 7004)], missing_range_count=1,
                      duplicate_range_count=1)
    s3 = VerifyResult(False, 3, 3 * 1024 * 1024, 10_995, ["event_type=4624/a.parquet"], ["a problem"], acct,
                      reasons=["10 events missing"], bucket="wef-events")
    server = ServerStats(baseline_total=100, final_total=8100, per_type_delta={"Microsoft:4624": 8000},
                         expected_per_type={4624: 11_000})
    result = RunResult("r1", settings.test_name, "2026-11-28T10:00:00+00:00", "step-load", settings.public_dict(),
                       load, server, judge(settings, load, S3Figures(False, 10, 5), server=server), s3=s3,
                       sender="fast")
    data = json.loads(json.dumps(result.to_dict(), default=str))
    data.update(changes)
    return data


def capacity_dict() -> dict[str, Any]:
    data = results_dict()
    data["capacity"] = {
        "events_per_second": 8000.0, "precision": 0.05, "lowest_broken_eps": 16000.0, "reached_max_eps": False,
        "interrupted": False,
        "steps": [
            {"target_eps": 1000, "achieved_eps": 1000, "passed": True, "latency_p50_ms": 5, "latency_p99_ms": 9,
             "latency_p999_ms": 12, "error_ratio": 0.0, "server_lag_events": 0, "broken": []},
            {"target_eps": 16000, "achieved_eps": 12000, "passed": False, "latency_p50_ms": 300,
             "latency_p99_ms": 900, "latency_p999_ms": 1200, "error_ratio": 0.01, "server_lag_events": 4000,
             "broken": ["latency_p99_ms"]},
            {"target_eps": 8000, "achieved_eps": 8000, "passed": True, "latency_p50_ms": 20, "latency_p99_ms": 180,
             "latency_p999_ms": 220, "error_ratio": 0.0, "server_lag_events": 0, "broken": []},
        ],
    }
    return data


def external_references(page: str) -> list[str]:
    """Anything the browser would fetch: script/img/iframe sources, style sheets, imports, url()."""
    found = re.findall(r"<(?:script|img|iframe|source|embed)\b[^>]*\ssrc\s*=", page, re.I)
    found += re.findall(r"<link\b[^>]*>", page, re.I)
    head_style = "".join(re.findall(r"<style>(.*?)</style>", page, re.S))
    found += re.findall(r"@import|url\(", head_style)
    return found


def test_the_page_is_one_self_contained_file_with_every_chart_and_table() -> None:
    page = render_html(results_dict())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert external_references(page) == []
    assert page.count("<script") >= 1 + len(CHARTS)  # plotly.js inline, then one per chart
    assert len(page.encode()) < 10 * 1024 * 1024
    for div in CHARTS:
        assert f'id="{div}"' in page, div
    assert "chart-capacity" not in page
    # stages on the time axis, the target ramp, the server's counted rate
    assert "stage 1: → 2,000" in page and "stage 2: → 4,000" in page
    assert '"name":"target"' in page and '"name":"counted by the server (per stats read)"' in page
    assert '"name":"http_503"' in page  # errors by class per second
    # verdict: every threshold with its measured value
    assert "latency_p99_ms" in page and "≤ 250" in page and "s3_missing_events" in page
    assert "achieved_ratio" in page and "≥ 0.95" in page and "0.916667" in page
    # the HDR table, the server's per-type counts, the S3 accounting with its ranges
    assert "from the intended send time" in page and "schedule lag" in page
    assert "<td>4624</td>" in page and "Microsoft:4624" in page and "-3,000" in page
    assert "4000–4009" in page and "7000–7004" in page and "a problem" in page
    assert "3.00 MiB (3,145,728 bytes)" in page and " MB (" not in page  # MiB: 2**20 bytes and "event_type=4624/a.parquet" in page
    # settings with the variable each comes from, and the profile
    assert "PERF_TEST_STAGES" in page and "step-load" in page
    assert "FAILED" in page


def test_timeline_rows_carry_what_the_charts_draw() -> None:
    rows = results_dict()["timeline"]
    keys = {"t", "sent_events", "acked_events", "failed_events", "p99_ms", "server_events", "p50_ms", "p90_ms",
            "max_ms", "lag_p99_ms", "errors", "in_flight"}
    assert all(set(row) == keys for row in rows)
    assert rows[2]["errors"] == {"http_503": 1000} and rows[0]["errors"] == {}
    assert all(row["in_flight"] == 0 for row in rows) and rows[3]["p50_ms"] > rows[0]["p50_ms"]


def test_text_is_escaped() -> None:
    page = render_html(results_dict(test_name="<script>alert(1)</script>"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_capacity_search_gets_its_curve_with_each_step_and_the_capacity() -> None:
    page = render_html(capacity_dict())
    assert 'id="chart-capacity"' in page
    assert "capacity 8,000" in page and "broke at 16,000" in page
    assert page.count("✓ pass") >= 2 and "✗ fail" in page and "latency_p99_ms" in page
    assert "8,000 events/s" in page  # the capacity in words


def test_a_wsman_hosts_run_shows_its_hosts_event_latency_and_protocol_counters() -> None:
    data = results_dict(
        hosts={"hosts": 4000, "max_items": 100, "max_latency_s": 30.0, "events_due": 180_000, "events_held": 12,
               "full_deliveries": 7, "timed_deliveries": 8_123, "hosts_delivering": 3_999, "connections": 4000,
               "connect_failures": 1},
        wsman={"enumerations": 4000, "envelopes": 8_131, "retries": 2, "wrong_acks": 1, "heartbeats": 55,
               "heartbeats_acked": 54, "heartbeat_s": 3600.0, "max_time_s": 30.0, "max_envelope": 512_000},
    )
    data["latency_ms"]["event"] = {"count": 179_988, "p50": 15_001.5, "p90": 27_010.0, "p99": 29_950.25,
                                   "p99_9": 30_010.0, "max": 30_200.0, "mean": 15_100.0}
    page = render_html(data)
    section = page[page.index("<h2>Simulated hosts</h2>"):page.index("<h2>Errors by class</h2>")]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", section)
    for shown in ("179,988", "29,950.25", "4,000 (4,000, 3,999)", "8,123", "8,131", "2 / 1", "55 (54)", "deliveries on max latency (30 s)",
                  "3,600 s, 30 s, 512,000 bytes"):
        assert shown in cells, shown
    assert "<h2>Simulated hosts</h2>" not in render_html(results_dict())  # a batch run has no such section


def test_results_of_an_older_wefperf_still_render() -> None:
    """Before the timeline carried latency per second: those charts have gaps, nothing breaks."""
    data = results_dict()
    data["timeline"] = [{k: row[k] for k in ("t", "sent_events", "acked_events", "failed_events", "p99_ms",
                                             "server_events")} for row in data["timeline"]]
    del data["s3_verification"]["accounting"]
    page = render_html(data)
    assert all(f'id="{div}"' in page for div in CHARTS)
    only_results = {"configuration": {}, "results": {"events_sent": 5}}
    assert "<h1>" in render_html(only_results) and "plotly" not in render_html(only_results).lower()


def test_auto_puts_the_report_beside_the_results(tmp_path: Path) -> None:
    assert report_beside(str(tmp_path / "r.json")) == str(tmp_path / "r.html")
    assert report_beside(str(tmp_path / "results")) == str(tmp_path / "results.html")
    assert report_beside(str(tmp_path)) == ""  # a folder (or a device, a pipe): no report beside it


# -- the CLI ------------------------------------------------------------------------------------


def test_run_writes_the_report_beside_the_results(collector: FakeCollector, tmp_path: Path) -> None:
    results = tmp_path / "out" / "r.json"
    done = wefperf("run", "--total-events", "20000", "--event-type", "4624", "--results", str(results),
                   "--report", "auto", env={"WEF_ENDPOINT": collector.url, "PERF_TEST_PROCESSING_WAIT_SECS": "3"})
    assert done.code == 0, done.out + done.err
    report = tmp_path / "out" / "r.html"
    assert f"Report written to {report}" in done.out
    page = report.read_text(encoding="utf-8")
    assert json.loads(results.read_text())["run_id"] in page and 'id="chart-rates"' in page


def test_run_refuses_an_unwritable_report_before_any_load(collector: FakeCollector, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = wefperf("run", "--total-events", "2000", "--results", str(tmp_path / "r.json"),
                   env={"WEF_ENDPOINT": collector.url, "PERF_TEST_REPORT": str(blocker / "r.html")})
    assert done.code == 2, done.out + done.err
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and "PERF_TEST_REPORT / --report: cannot write" in lines[0]
    assert collector.requests == 0


def test_report_command_draws_the_same_page_afterwards(tmp_path: Path) -> None:
    src = tmp_path / "r.json"
    src.write_text(json.dumps(results_dict()))
    done = wefperf("report", str(src), "--html", str(tmp_path / "sub" / "page.html"))
    assert done.code == 0, done.err
    page = (tmp_path / "sub" / "page.html").read_text(encoding="utf-8")
    assert all(f'id="{div}"' in page for div in CHARTS)
    done = wefperf("report", str(src))  # default: beside it
    assert done.code == 0 and (tmp_path / "r.html").is_file()


@pytest.mark.parametrize("content,why", [(None, "no such file"), ("{not json", "not JSON"),
                                         ('{"results": {}}', "not a wefperf results JSON"),
                                         ("[1, 2]", "not a wefperf results JSON")])
def test_report_and_compare_refuse_bad_input_in_one_line(tmp_path: Path, content: str | None, why: str) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(results_dict()))
    for args in (["report", str(bad)], ["compare", str(good), str(bad)]):
        done = wefperf(*args)
        lines = done.err.strip().splitlines()
        assert done.code == 2 and len(lines) == 1 and why in lines[0] and "Traceback" not in done.err, args
    done = wefperf("compare", str(good))
    assert done.code == 2 and "two or more" in done.err


def _write(tmp_path: Path, name: str, data: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_compare_shows_each_figure_with_its_change_from_the_first(tmp_path: Path) -> None:
    a = results_dict()
    b = copy.deepcopy(a)
    b["results"]["events_per_second_overall"] = a["results"]["events_per_second_overall"] * 0.8
    b["latency_ms"]["from_intended_send"]["p99"] = a["latency_ms"]["from_intended_send"]["p99"] * 1.5
    b["s3_verification"]["accounting"]["missing"] = 0
    pa, pb = _write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b)
    done = wefperf("compare", pa, pb)
    assert done.code == 0, done.err
    rows = {line.split("  ")[0]: line for line in done.out.splitlines()}
    assert "a.json" in done.out.splitlines()[0] and "b.json" in done.out.splitlines()[0]
    assert "(-20.0%)" in rows["achieved rate (ev/s)"] and "(+50.0%)" in rows["latency p99 (ms)"]
    assert "(-10)" in rows["S3 missing events"] and "(+0)" in rows["S3 duplicated events"]
    assert "(+0.000 pts)" in rows["error ratio"] and "server lag (acked - counted)" in rows
    assert "capacity (ev/s)" not in rows  # neither file has one

    worse = wefperf("compare", pa, pb, "--fail-if-worse", "10")
    assert worse.code == 1
    assert "b.json: p99 latency" in worse.out and "50.0% higher" in worse.out
    assert "b.json: achieved rate" in worse.out and "20.0% lower" in worse.out
    assert wefperf("compare", pa, pb, "--fail-if-worse", "60").code == 0
    assert wefperf("compare", pb, pa, "--fail-if-worse", "10").code == 0  # better is never worse
    assert wefperf("compare", pa, pb, "--fail-if-worse", "-1").code == 2


def test_compare_judges_capacity_and_draws_the_runs_overlaid(tmp_path: Path) -> None:
    a = capacity_dict()
    b = copy.deepcopy(a)
    b["capacity"]["events_per_second"] = 6000.0
    pa, pb = _write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b)
    out = tmp_path / "cmp.html"
    done = wefperf("compare", pa, pb, "--fail-if-worse", "5", "--html", str(out))
    assert done.code == 1 and "b.json: capacity 6,000 is 25.0% lower" in done.out
    page = out.read_text(encoding="utf-8")
    assert external_references(page) == []
    for div in ("chart-compare-rates", "chart-compare-latency", "chart-compare-capacity"):
        assert f'id="{div}"' in page
    assert '"name":"a.json p99"' in page and '"name":"b.json p99"' in page
