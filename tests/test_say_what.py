"""Issue 21, section 2: say what is happening. Each item a user saw, with a test."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fake_collector import FakeCollector
from helpers import wefperf
from wefperf.config.loading import load_settings
from wefperf.model import Second, ServerStats, Snapshot
from wefperf.report.console import per_type_lines, progress_line
from wefperf.report.html import render_html
from wefperf.runner.reporter import progress_info


def _progress(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  Progress: ")]


def _env(c: FakeCollector) -> dict[str, str]:
    return {"WEF_ENDPOINT": c.url, "PERF_TEST_PROCESSING_WAIT_SECS": "2"}


# --- progress when not on a terminal: a line every N seconds, in every mode ---------------------------


@pytest.mark.slow
def test_a_piped_hosts_run_of_6_s_prints_progress(collector: FakeCollector, tmp_path: Path) -> None:
    """Before: nothing at all in hosts runs until the results (the cadence was 100,000 events)."""
    done = wefperf("run", "--hosts", "50", "--target-eps", "300", "--duration-secs", "6", "--max-latency-secs", "1",
                   "--results", str(tmp_path / "r.json"), env=_env(collector), timeout=90)
    assert done.code == 0, done.out + done.err
    lines = _progress(done.out)
    assert lines, done.out  # the default, every 5 s: at least one line in a 6 s load
    assert " events sent - Current rate: " in lines[0] and " events/sec - Remaining: " in lines[0]
    assert "Acknowledged: " in lines[0] and "Failed: 0" in lines[0]


def test_a_piped_batch_run_prints_a_line_every_progress_secs(collector: FakeCollector, tmp_path: Path) -> None:
    """Before: 3 s at 2,000/s (6,000 events) printed no line; the seed's cadence needed 100,000."""
    done = wefperf("run", "--target-eps", "2000", "--duration-secs", "3", "--progress-secs", "1",
                   "--results", str(tmp_path / "r.json"), env=_env(collector), timeout=90)
    assert done.code == 0, done.out + done.err
    lines = _progress(done.out)
    # one a second over a 3 s load: 2 or 3 by the timers; 1 at the least on a machine that stalls
    assert 1 <= len(lines) <= 4, done.out
    sent = [int(line.split(" events sent")[0].split()[-1].replace(",", "")) for line in lines]
    assert sent == sorted(sent) and sent[-1] > 0
    assert "Remaining: " in lines[0] and "Remaining: unknown" not in lines[0]  # a duration run knows


def test_progress_secs_is_a_setting_with_an_environment_name() -> None:
    assert load_settings(environ={}).progress_secs == 5
    assert load_settings(environ={"PERF_TEST_PROGRESS_SECS": "2.5"}).progress_secs == 2.5
    assert load_settings(None, {"progress_secs": 10}, environ={}).progress_secs == 10


def test_the_plain_line_keeps_the_seeds_format_and_adds_the_live_views_figures() -> None:
    last = Second(t=9, sent_events=900, acked_events=800, p50_ms=3.0, p99_ms=12.5, max_ms=20.0)
    snap = Snapshot(elapsed_s=10.0, events_sent=100_000, events_ok=99_000, events_failed=1_000, in_flight=4,
                    server_events=0, errors={"timeout": 1}, last=last)
    line = progress_line(progress_info(snap, remaining_s=49.4))
    assert line.startswith("  Progress: 100,000 events sent - Current rate: 10000.0 events/sec - Remaining: 49s")
    assert "Acknowledged: 99,000 (9900.0/sec)" in line and "Failed: 1,000" in line
    assert "In flight: 4" in line and "p99 (last second): 12.5 ms" in line and "Processes" not in line
    # A run over several processes: the parent hands the reporter the same figures plus how many still send.
    several = progress_line(replace(progress_info(snap, remaining_s=49.4), processes_running=3, processes=4))
    assert several == line + " - Processes running: 3 of 4"


# --- the Endpoint line names the URL the run uses ---------------------------------------------------------


def test_a_wsman_runs_endpoint_line_is_the_subscription_manager() -> None:
    """Before: `Endpoint: http://127.0.0.1:5985/wsman/events`, a URL a WS-Man run never calls."""
    from wefperf.report.console import banner_lines

    s = load_settings(None, {"protocol": "wsman", "hosts": 10, "target_eps": 100, "wef_endpoint": "http://127.0.0.1:5985"}, environ={})
    assert "Endpoint: http://127.0.0.1:5985/wsman/SubscriptionManager/WEC" in banner_lines(s, "r1")
    plain = load_settings(None, {"wef_endpoint": "http://127.0.0.1:5985"}, environ={})
    assert "Endpoint: http://127.0.0.1:5985/wsman/events" in banner_lines(plain, "r1")


# --- --processes: one view of the merged progress ------------------------------------------------------


def test_the_childrens_snapshots_merge_into_one_for_the_live_view() -> None:
    from rich.console import Console

    from wefperf.report.live import LiveReporter
    from wefperf.scaleout.progress_wire import merged_snapshot, snapshot_to_wire

    def child(sent: int, p99: float, server: int) -> Snapshot:
        last = Second(t=2, sent_events=sent // 3, acked_events=sent // 3, p50_ms=1.0, p99_ms=p99, max_ms=p99 * 2)
        return Snapshot(elapsed_s=3.0, events_sent=sent, events_ok=sent - 10, events_failed=10, in_flight=2,
                        server_events=server, errors={"timeout": 1}, last=last)

    merged = merged_snapshot([snapshot_to_wire(child(3_000, 5.0, 5_000)), snapshot_to_wire(child(6_000, 9.0, 5_900))])
    assert (merged.events_sent, merged.events_ok, merged.events_failed) == (9_000, 8_980, 20)
    assert merged.in_flight == 4 and merged.errors == {"timeout": 2}
    assert merged.server_events == 5_900  # each child reads the same collector: the largest, not the sum
    assert merged.last is not None and merged.last.sent_events == 3_000
    assert merged.last.p99_ms == 9.0 and merged.last.max_ms == 18.0  # the slowest child's

    console = Console(width=160, record=True, color_system=None)
    live = LiveReporter(console)
    live.banner(load_settings(None, {"target_eps": 3000, "duration_secs": 10}, environ={}), "rid")
    live.snapshot(merged)
    console.print(live._load_panel())
    shown = console.export_text()
    assert "9,000 sent · 8,980 acknowledged · 20 failed" in shown
    assert "p99 9.0 ms" in shown and "timeout 2" in shown


@pytest.mark.slow
def test_processes_on_a_terminal_show_one_live_view_and_the_health_and_baseline_lines(
    collector: FakeCollector, tmp_path: Path
) -> None:
    """Before: plain summed lines that wrap on a terminal, and no health or baseline line."""
    from test_live import ESC, in_pty
    from test_live import _env as pty_env

    # 5 s: children that start late on a busy machine (past the parent's 2 s margin) still have load left
    code, out = in_pty(["run", "--processes", "2", "--duration-secs", "5", "--target-eps", "2000", "--event-type",
                        "4624", "--results", str(tmp_path / "r.json")], pty_env(collector), timeout=120)
    assert code == 0, out
    assert ESC in out and "wefperf · Target Rate Event Ingestion" in out  # the panel
    assert "  Progress: " not in out  # no plain progress line beside it
    assert out.count("WEF server is healthy") == 1 and out.count("Baseline event count: ") == 1
    assert out.index("WEF server is healthy") < out.index("Sending events...")
    assert "PERFORMANCE TEST RESULTS" in out


@pytest.mark.slow
def test_a_piped_processes_run_prints_the_timed_line_with_the_processes(collector: FakeCollector,
                                                                         tmp_path: Path) -> None:
    # 5 s: children that start late on a busy machine (past the parent's 2 s margin) still have load left
    done = wefperf("run", "--processes", "2", "--duration-secs", "5", "--target-eps", "2000", "--progress-secs", "1",
                   "--results", str(tmp_path / "r.json"), env=_env(collector), timeout=120)
    assert done.code == 0, done.out + done.err
    lines = _progress(done.out)
    assert lines and all("Processes running: " in line and " of 2" in line for line in lines), done.out
    assert lines[0].startswith("  Progress: ") and " - Remaining: " in lines[0]
    assert done.out.count("WEF server is healthy") == 1


# --- help, choices -----------------------------------------------------------------------------------------


def test_run_and_capacity_help_show_no_pydantic_placeholder() -> None:
    """Before: `--stages` and `--threshold` said `default PydanticUndefined`."""
    for command in ("run", "capacity"):
        done = wefperf(command, "--help")
        assert done.code == 0, done.err
        text = " ".join(done.out.split())  # argparse wraps the help
        assert "PydanticUndefined" not in text, command
        assert "PERF_TEST_STAGES, default none)" in text and "PERF_TEST_THRESHOLDS, default none)" in text


def test_an_unknown_command_lists_the_commands_but_not_the_hidden_alias() -> None:
    """Before: `… (choose from 'run', …, 'collector', 'target', 'report', …)`."""
    done = wefperf("frobnicate")
    assert done.code == 2
    assert "invalid choice: 'frobnicate'" in done.err and "'collector'" in done.err and "'run'" in done.err
    assert "'target'" not in done.err
    assert wefperf("target", "--help").code == 0  # still accepted, as before


# --- the per-type table --------------------------------------------------------------------------------


def _server() -> ServerStats:
    return ServerStats(baseline_total=0, final_total=3_600,
                       per_type_delta={"EventID 4624": 3_000, "Microsoft-Windows-Security-Auditing:4625": 600},
                       expected_per_type={4624: 3_000, 4625: 600})


def test_the_per_type_table_does_not_repeat_the_event_id_as_its_label() -> None:
    """Before: `  EventID 4624        3,000 / 3,000        EventID 4624`."""
    lines = per_type_lines(_server())
    row = next(line for line in lines if line.lstrip().startswith("EventID 4624"))
    assert row.count("EventID 4624") == 1, row
    other = next(line for line in lines if line.lstrip().startswith("EventID 4625"))
    assert other.endswith("Microsoft-Windows-Security-Auditing:4625")  # a label that says more stays


def test_the_html_per_type_table_does_not_repeat_the_event_id_as_its_label() -> None:
    page = render_html({"server_stats": _server().to_dict(), "configuration": {}, "results": {}})
    assert "<td>EventID 4624</td>" not in page
    assert "Microsoft-Windows-Security-Auditing:4625" in page


# --- the HTML report's latency lines ---------------------------------------------------------------------


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def test_the_latency_lines_have_colours_far_apart() -> None:
    """Before: p99 #bf3989 and max #cf222e, two reds ~95 apart in RGB. Each pair now >= 120 apart
    (of 441), so no two lines read as one; max is dotted besides."""
    from itertools import combinations

    from test_report_html import results_dict
    from wefperf.report.html import COLORS

    keys = ("p50", "p90", "p99", "max")
    for a, b in combinations(keys, 2):
        distance = sum((x - y) ** 2 for x, y in zip(_rgb(COLORS[a]), _rgb(COLORS[b]))) ** 0.5
        assert distance >= 120, (a, b, distance)
    page = render_html(results_dict())
    assert all(COLORS[k] in page for k in keys)
    assert '"name":"max"' in page.replace(" ", "") and '"dash":"dot"' in page.replace(" ", "")


# --- compare: the target rate, and the verdict in its HTML page ---------------------------------------------


def _results(tmp_path: Path, name: str, **config: object) -> tuple[str, dict[str, object]]:
    import json

    from test_report_html import results_dict

    data = results_dict()
    data["configuration"].update(config)  # type: ignore[union-attr]
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path), data


def test_compare_shows_each_runs_target_rate(tmp_path: Path) -> None:
    """Before: the table had the achieved rate only; a 5,000/s run beside an unlimited one looked alike."""
    pa, _ = _results(tmp_path, "a.json", target_eps=5000, stages=[])
    pb, _ = _results(tmp_path, "b.json", target_eps=0, stages=[])
    pc, _ = _results(tmp_path, "c.json")  # the stages 2 s to 2,000/s, 2 s to 4,000/s
    done = wefperf("compare", pa, pb, pc)
    assert done.code == 0, done.err
    row = next(line for line in done.out.splitlines() if line.startswith("target rate"))
    assert "5,000" in row and "unlimited" in row and "stages to 4,000" in row


def test_compare_html_carries_the_fail_if_worse_verdict(tmp_path: Path) -> None:
    """Before: the page had the figures and the curves, not whether the gate passed."""
    import json

    pa, a = _results(tmp_path, "a.json")
    b = json.loads(json.dumps(a))
    b["latency_ms"]["from_intended_send"]["p99"] *= 1.5
    pb = str(tmp_path / "b.json")
    Path(pb).write_text(json.dumps(b))
    out = tmp_path / "cmp.html"
    done = wefperf("compare", pa, pb, "--fail-if-worse", "10", "--html", str(out))
    assert done.code == 1
    page = out.read_text(encoding="utf-8")
    assert "--fail-if-worse 10%" in page and "✗ b.json: p99 latency" in page and "50.0% higher" in page
    assert "target rate" in page
    done = wefperf("compare", pa, pb, "--fail-if-worse", "60", "--html", str(out))
    assert done.code == 0
    assert "✓ p99 latency, achieved rate and capacity: none more than 60% worse than a.json" in out.read_text()
    done = wefperf("compare", pa, pb, "--html", str(out))
    assert "--fail-if-worse" not in out.read_text()  # no gate asked for, none shown
