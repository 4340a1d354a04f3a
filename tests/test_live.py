"""The live view: a rich panel on a terminal (tested under a real pseudo-terminal), plain lines elsewhere."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from rich.console import Console

from fake_collector import FakeCollector
from wefperf.config.loading import load_settings
from wefperf.judge.verdict import judge
from wefperf.measure.recorder import Recorder
from wefperf.model import RunResult, ServerStats
from wefperf.report.console import ConsoleReporter
from wefperf.report.live import LiveReporter
from wefperf.runner.reporter import Reporter

ESC = "\x1b["


def _env(c: FakeCollector, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERF_TEST_", "WEF_", "S3_", "AWS_"))}
    return {**base, "WEF_ENDPOINT": c.url, "PERF_TEST_PROCESSING_WAIT_SECS": "3", "TERM": "xterm-256color",
            **extra}


def in_pty(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """`python -m wefperf ARGS` with a pseudo-terminal (120 x 40) as its stdin, stdout and stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "wefperf", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        else:
            proc.kill()
            raise AssertionError(f"wefperf did not finish within {timeout} s")
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_gets_the_live_panel_and_the_plain_results(collector: FakeCollector, tmp_path: Path) -> None:
    code, out = in_pty(["run", "--duration-secs", "3", "--target-eps", "5000", "--event-type", "4624",
                        "--results", str(tmp_path / "r.json")], _env(collector))
    assert code == 0, out
    assert ESC in out  # a terminal: cursor movement and colour
    assert "wefperf · Target Rate Event Ingestion" in out
    for label in ("Progress", "Events", "Rate", "target 5,000/s", "Latency", "In flight", "Errors"):
        assert label in out, label
    assert "acknowledged" in out and "p99" in out
    assert "  Progress: " not in out  # the panel replaces the timed plain line
    # the banner before and the results after are the plain lines
    assert "PERFORMANCE TEST: Target Rate Event Ingestion" in out
    assert "PERFORMANCE TEST RESULTS" in out and "✓ Performance test completed successfully" in out
    assert (tmp_path / "r.json").is_file()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_live_keeps_plain_lines_on_a_terminal(collector: FakeCollector, tmp_path: Path, how: str) -> None:
    args = ["run", "--total-events", "100000", "--target-eps", "50000", "--progress-secs", "0.5", "--event-type", "4624",
            "--results", str(tmp_path / "r.json")]
    env = _env(collector)
    if how == "flag":
        args.append("--no-live")
    else:
        env["PERF_TEST_NO_LIVE"] = "true"
    code, out = in_pty(args, env)
    assert code == 0, out
    assert ESC not in out and "╭" not in out
    assert "  Progress: " in out and " events sent - Current rate:" in out  # a line every 0.5 s of a 2 s load


def test_a_pipe_gets_plain_lines(collector: FakeCollector, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wefperf", "run", "--total-events", "100000", "--target-eps", "50000",
         "--progress-secs", "0.5", "--event-type", "4624", "--results", str(tmp_path / "r.json")],
        env=_env(collector), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert ESC not in done.stdout + done.stderr and "╭" not in done.stdout
    assert "  Progress: " in done.stdout and " events sent - Current rate:" in done.stdout


def _result(settings) -> RunResult:  # type: ignore[no-untyped-def]
    rec = Recorder(0.0)
    rec.sent(1000, 0.0, 0.0)
    rec.ok(1000, 0.0, 0.0, 0.02)
    load = rec.summary(1.0)
    return RunResult("rid", settings.test_name, "2026-01-01T00:00:00+00:00", None, settings.public_dict(), load,
                     ServerStats(), judge(settings, load, None))


def test_the_plain_reporter_prints_nothing_for_the_live_hooks() -> None:
    """Byte for byte: the hooks the live view needs add nothing to the plain console's output."""
    out, err = io.StringIO(), io.StringIO()
    rep = ConsoleReporter(out, err)
    settings = load_settings(environ={"PERF_TEST_TARGET_EPS": "1000"})
    rec = Recorder(0.0)
    rep.load_started()
    rep.snapshot(rec.snapshot(1.5))
    rep.load_ended()
    rep.waiting("count", 10)
    rep.count_waiting(5, 10)
    rep.waiting("s3", 25)
    rep.close()
    assert out.getvalue() == "" and err.getvalue() == ""
    rep.s3_waiting("  Waiting for S3: 1 files, 10 rows so far; up to 3.0 s more")
    assert out.getvalue() == "  Waiting for S3: 1 files, 10 rows so far; up to 3.0 s more\n"
    assert not ConsoleReporter.live and not Reporter.live and LiveReporter.live
    assert settings.no_live is False


def test_the_live_panel_shows_the_plan_rates_latency_stage_and_errors() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    rep = LiveReporter(console)
    settings = load_settings(environ={"PERF_TEST_STAGES": "10:1000,10:3000"})
    rep.banner(settings, "rid")
    rep.load_started()
    rec = Recorder(0.0)
    for i in range(20):
        rec.sent(100, i * 0.1 + 11, i * 0.1 + 11)
        rec.ok(100, i * 0.1 + 11, i * 0.1 + 11, i * 0.1 + 11.03)
    rec.sent(100, 12.5, 12.5)
    rec.failed(99, 100, "http_503", "HTTP 503", 12.6)
    rec.sent(100, 12.7, 12.7)  # still in flight
    rec.server_sample(11.5, 1000)
    rep.snapshot(rec.snapshot(12.0))
    rec.server_sample(12.5, 1000)
    rep.snapshot(rec.snapshot(13.2))
    rep.load_ended()
    text = buf.getvalue()
    assert "wefperf · Target Rate Event Ingestion" in text
    assert "13 of 20 s" in text and "~25,000 planned" in text
    assert "Stage      2 of 2: 1,000 → 3,000/s over 10 s (7 s left)" in text
    assert "target 1,640/s" in text  # the ramp's rate at 13.2 s
    assert "sent 1,200/s · acknowledged 1,000/s · server counted 833/s" in text  # the last closed second
    assert "p50 30.0 ms" in text and "In flight  1 request (at most 64)" in text
    assert "http_503 1 (failed batches by class)" in text

    buf.truncate(0)
    buf.seek(0)
    rep.waiting("count", 10)
    rep.count_waiting(1500, 2000)
    rep.results(_result(load_settings(environ={})))
    text = buf.getvalue()
    assert "Waiting for the server's count" in text and "1,500 of 2,000 acknowledged events counted" in text
    assert "PERFORMANCE TEST RESULTS" in text
