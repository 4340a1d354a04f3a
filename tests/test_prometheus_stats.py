"""Server-side counting from a Prometheus counter: the parser's use, resets, settings, and runs
against a small OpenWEC-shaped server on 127.0.0.1 (tests/prom_collector.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import wefperf as run_cli
from prom_collector import PromCollector
from wefperf.config.loading import load_settings
from wefperf.config.rules import ConfigError
from wefperf.observe.prometheus import CounterReading, CounterTotal, MetricError, absent_message, read_counter

URL = "http://openwec:9090/metrics"

# As OpenWEC's exporter (metrics-exporter-prometheus) writes it: TYPE under the full `_total` name.
OPENWEC_TEXT = """\
# HELP openwec_input_events_total The total number of events received by openwec
# TYPE openwec_input_events_total counter
openwec_input_events_total{subscription_uuid="a",subscription_name="x",machine="m1"} 1200
openwec_input_events_total{subscription_uuid="b",subscription_name="y"} 34
# TYPE openwec_machines gauge
openwec_machines{state="alive"} 7
# TYPE openwec_http_request_duration_seconds histogram
openwec_http_request_duration_seconds_bucket{le="+Inf"} 5
openwec_http_request_duration_seconds_sum 0.5
openwec_http_request_duration_seconds_count 5
"""

# As prometheus_client writes it: TYPE under the base name, a `_created` sample beside `_total`.
CLIENT_TEXT = """\
# HELP wefperf_collector_events_received WEF events received
# TYPE wefperf_collector_events_received counter
wefperf_collector_events_received_total{event_type="EventID 4624"} 70.0
wefperf_collector_events_received_created{event_type="EventID 4624"} 1.7e9
wefperf_collector_events_received_total{event_type="EventID 4634"} 30.0
"""


def test_a_counter_is_summed_over_its_label_sets() -> None:
    reading = read_counter(OPENWEC_TEXT, "openwec_input_events_total", URL)
    assert reading.present and reading.total == 1234
    assert len(reading.series) == 2


@pytest.mark.parametrize("name", ["openwec_input_events_total", "openwec_input_events"])
def test_the_metric_may_be_named_with_or_without_its_total_suffix(name: str) -> None:
    assert read_counter(OPENWEC_TEXT, name, URL).total == 1234


def test_prometheus_clients_own_layout_is_read_and_created_samples_are_not_counted() -> None:
    reading = read_counter(CLIENT_TEXT, "wefperf_collector_events_received_total", URL)
    assert reading.total == 100


def test_an_untyped_metric_counts() -> None:
    assert read_counter("events_in_total 42\n", "events_in_total", URL).total == 42


def test_a_gauge_is_refused_with_the_metric_and_url_named() -> None:
    with pytest.raises(MetricError) as err:
        read_counter(OPENWEC_TEXT, "openwec_machines", URL)
    text = str(err.value)
    assert "openwec_machines" in text and URL in text and "gauge, not a counter" in text


def test_text_that_is_not_prometheus_is_refused_naming_the_url() -> None:
    json_body = '[{"event_type": "EventID 4624", "total_events": 5}]'
    with pytest.raises(MetricError) as err:
        read_counter(json_body, "openwec_input_events_total", URL)
    assert URL in str(err.value) and "did not answer Prometheus text" in str(err.value)
    assert "WEF_STATS_ENDPOINT" in str(err.value)


def test_an_absent_metric_is_no_error_but_says_which_counters_are_there() -> None:
    reading = read_counter(OPENWEC_TEXT, "openwec_input_evnets_total", URL)
    assert not reading.present
    message = absent_message(reading, URL)
    assert "openwec_input_evnets_total" in message and URL in message
    assert "openwec_input_events_total" in message  # the typo shows against what is there


def _reading(**series: float) -> CounterReading:
    return CounterReading("m", {(("sub", k),): v for k, v in series.items()})


def test_a_counter_that_resets_keeps_what_it_had_counted() -> None:
    total = CounterTotal()
    assert total.update(_reading(a=10, b=5)) == 15
    assert total.update(_reading(a=15, b=5)) == 20
    assert total.update(_reading(a=3, b=6)) == 24  # a restarted from 0 and counted 3 since
    assert total.update(_reading(a=8, b=6)) == 29
    assert total.update(_reading(a=1, b=2)) == 32  # a restart: both fall in one read
    assert total.resets == 2


def test_a_series_that_vanishes_keeps_its_last_value_until_it_comes_back() -> None:
    total = CounterTotal()
    total.update(_reading(a=10, b=5))
    assert total.update(_reading(b=7)) == 17  # a restart: `a` has not counted anything since
    assert total.update(_reading(a=2, b=7)) == 19


def test_prometheus_needs_the_metrics_url() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"PERF_TEST_STATS_FORMAT": "prometheus"})
    assert "WEF_STATS_ENDPOINT" in str(err.value) and "metrics URL" in str(err.value)


def test_a_bad_metric_name_and_format_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"PERF_TEST_STATS_METRIC": "events total"})
    assert str(err.value).startswith("PERF_TEST_STATS_METRIC: not a Prometheus metric name")
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"PERF_TEST_STATS_FORMAT": "xml"})
    assert "PERF_TEST_STATS_FORMAT" in str(err.value)


def test_health_is_the_metrics_url_in_prometheus_mode_unless_set() -> None:
    env = {"WEF_ENDPOINT": "http://openwec:5985/wsman", "PERF_TEST_STATS_FORMAT": "prometheus",
           "WEF_STATS_ENDPOINT": URL}
    s = load_settings(environ=env)
    assert s.health_url == URL and s.stats_metric == "openwec_input_events_total"
    assert load_settings(environ={**env, "PERF_TEST_HEALTH_URL": "http://openwec:5985/x"}).health_url == \
        "http://openwec:5985/x"
    assert load_settings(environ={"WEF_ENDPOINT": "http://h:5985"}).health_url == "http://h:5985/health"


# -- runs against the OpenWEC-shaped server ------------------------------------------------------


@pytest.fixture
def openwec():
    c = PromCollector(reset_at=6_000).start()
    yield c
    c.stop()


def _env(c: PromCollector, **extra: str) -> dict[str, str]:
    return {"WEF_ENDPOINT": c.url, "PERF_TEST_STATS_FORMAT": "prometheus", "WEF_STATS_ENDPOINT": c.metrics_url,
            "PERF_TEST_PROCESSING_WAIT_SECS": "5", "PERF_TEST_HEALTH_TIMEOUT_SECS": "5", **extra}


def test_a_run_counts_from_the_counter_across_a_restart(openwec: PromCollector, tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    # 24,000 events at 8,000/s (two series of 4,000/s), the counter read every 0.25 s: it resets once
    # a series passes 6,000 (about 1.5 s in), and a series regrows past that only after 1.5 s unread.
    done = run_cli("run", "--total-events", "24000", "--batch-size", "500", "--target-eps", "8000",
                   "--stats-interval-secs", "0.25", "--results", str(results), "--report", str(tmp_path / "r.html"),
                   env=_env(openwec))
    assert done.code == 0, done.out + done.err
    assert openwec.resets == 1 and openwec.received == 24_000
    assert "Events received (by server): 24,000" in done.out
    # no per-type figures that look like losses: the report says why there are none
    assert "Server per-type delta: not available" in done.out and "openwec_input_events_total" in done.out
    assert "/ 24,000" not in done.out and " 0 / " not in done.out
    data = json.loads(results.read_text())
    server = data["server_stats"]
    assert data["results"]["events_received"] == 24_000
    assert server["per_type_known"] is False and server["per_type_delta"] == {}
    assert server["source"] == {"format": "prometheus", "metric": "openwec_input_events_total",
                                "url": openwec.metrics_url}
    assert all(r["counted"] is None for r in server["per_event_id"])
    # the counter appeared with the first event: the baseline read said so
    assert any("counted from 0" in n for n in server["notes"])
    assert any("fell 1 time during the run" in n for n in server["notes"])
    # per-second server samples came from the counter, a reset never shows as a negative rate
    samples = [row["server_events"] for row in data["timeline"] if row.get("server_events") is not None]
    assert samples and all(n >= 0 for n in samples)
    # the HTML report says the same, instead of a per-type table of blanks
    page = (tmp_path / "r.html").read_text()
    assert "Counted by the Prometheus counter openwec_input_events_total" in page
    assert "counts by event type are not available" in page


def test_server_missing_events_is_judged_on_the_total(openwec: PromCollector, tmp_path: Path) -> None:
    done = run_cli("run", "--total-events", "2000", "--batch-size", "500", "--threshold", "server_missing_events=0",
                   "--results", str(tmp_path / "r.json"), env=_env(openwec))
    assert done.code == 0, done.out + done.err
    assert "server_missing_events" in done.out


def test_a_gauge_stops_the_run_before_the_load(openwec: PromCollector, tmp_path: Path) -> None:
    done = run_cli("run", "--total-events", "2000", "--stats-metric", "openwec_machines",
                   "--results", str(tmp_path / "r.json"), env=_env(openwec))
    assert done.code == 2, done.out + done.err
    assert "openwec_machines" in done.err and openwec.metrics_url in done.err and "not a counter" in done.err
    assert openwec.received == 0


def test_json_where_prometheus_text_is_expected_stops_the_run(openwec: PromCollector, tmp_path: Path) -> None:
    done = run_cli("run", "--total-events", "2000", "--results", str(tmp_path / "r.json"),
                   env=_env(openwec, WEF_STATS_ENDPOINT=openwec.url + "/api/stats"))
    assert done.code == 2, done.out + done.err
    assert f"{openwec.url}/api/stats did not answer Prometheus text" in done.err
    assert openwec.received == 0


def test_an_absent_metric_leaves_the_count_unknown_and_says_why(openwec: PromCollector, tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    done = run_cli("run", "--total-events", "2000", "--batch-size", "500", "--stats-metric", "openwec_events_total",
                   "--results", str(results), env=_env(openwec, PERF_TEST_PROCESSING_WAIT_SECS="1"))
    assert openwec.received == 2000
    assert "Events received (by server): unknown" in done.out
    notes = json.loads(results.read_text())["server_stats"]["notes"]
    assert any("openwec_events_total is not at " + openwec.metrics_url in n and "openwec_input_events_total" in n
               for n in notes), notes
