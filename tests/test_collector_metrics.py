"""The reference collector's Prometheus port (--metrics-port), and a run that counts from it."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from helpers import wefperf as run_cli

METRIC = "wefperf_collector_events_received_total"


def _metrics_url(target) -> str:
    line = target.proc.stdout.readline()
    assert line.startswith("wefperf collector metrics on "), line
    return line.split(" on ", 1)[1].strip()


def test_a_run_counts_from_the_reference_collectors_metrics_port(wef_target, tmp_path: Path) -> None:
    target = wef_target("--metrics-port", "0", "--flush-interval-secs", "1")
    metrics = _metrics_url(target)
    assert metrics.endswith("/metrics") and not metrics.startswith(target.base + "/")  # its own port
    results = tmp_path / "r.json"
    done = run_cli("run", "--total-events", "30000", "--batch-size", "1000", "--stats-format", "prometheus",
                   "--wef-stats-endpoint", metrics, "--stats-metric", METRIC, "--results", str(results),
                   env={"WEF_ENDPOINT": target.base, "PERF_TEST_PROCESSING_WAIT_SECS": "10"})
    assert done.code == 0, done.out + done.err
    data = json.loads(results.read_text())
    assert data["results"]["events_sent"] == data["results"]["events_acknowledged"] == 30_000
    assert data["results"]["events_received"] == 30_000  # counted from the Prometheus counter
    assert data["server_stats"]["source"]["metric"] == METRIC

    # The text itself: a counter, one label set per event type, summing to what /stats/throughput says.
    with urllib.request.urlopen(metrics, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
    received = families["wefperf_collector_events_received"]
    assert received.type == "counter"
    by_type = {s.labels["event_type"]: s.value for s in received.samples if s.name == METRIC}
    with urllib.request.urlopen(target.base + "/stats/throughput", timeout=5) as resp:
        rows = json.loads(resp.read())
    assert by_type == {r["event_type"]: r["total_events"] for r in rows}
    assert sum(by_type.values()) == 30_000 and len(by_type) == 5
    assert families["wefperf_collector_requests"].samples[0].value == 30
    code, err = target.stop()
    assert code == 0, err


def test_the_metrics_port_is_off_unless_asked_for(wef_target) -> None:
    target = wef_target()
    target.proc.send_signal(signal.SIGTERM)
    out, _ = target.proc.communicate(timeout=60)
    assert target.proc.returncode == 0 and "metrics on" not in out


def test_a_bad_metrics_port_is_refused_in_one_line() -> None:
    done = run_cli("collector", "--metrics-port", "70000")
    assert done.code == 2
    assert done.err.strip() == "wefperf collector: error: --metrics-port must be between 0 and 65535 (got 70000)"
    done = run_cli("collector", "--port", "5999", "--metrics-port", "5999")
    assert done.code == 2 and "--metrics-port must differ from --port" in done.err


def test_embedded_run_with_prometheus_stats_reads_the_embedded_collectors_metrics(tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    done = run_cli("run", "--embedded", "--stats-format", "prometheus", "--total-events", "10000",
                   "--results", str(results), timeout=120)
    assert done.code == 0, done.out + done.err
    data = json.loads(results.read_text())
    source = data["server_stats"]["source"]
    assert source["metric"] == METRIC and source["url"].endswith("/metrics")
    assert data["results"]["events_received"] == data["results"]["events_sent"] == 10_000
    assert "Server count: Prometheus counter wefperf_collector_events_received_total" in done.out
