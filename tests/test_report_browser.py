"""The HTML reports in a real browser: headless Chromium opens them offline, draws every chart, no script error.

Chromium comes from Debian's package; when it is missing the test installs it with apt-get (as root),
as the compose tests install docker-compose, and skips with the reason only where it cannot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fake_collector import FakeCollector
from helpers import wefperf
from test_report_html import capacity_dict
from wefperf.report.compare import Run, render_compare_html
from wefperf.report.html import render_html

# Records every script error and console.error into the page, where --dump-dom shows it.
CATCHER = """<script>
window.__wefperfErrors = [];
window.addEventListener("error", function (e) { window.__wefperfErrors.push("error: " + e.message); });
window.addEventListener("unhandledrejection", function (e) { window.__wefperfErrors.push("rejection: " + e.reason); });
(function () { var log = console.error; console.error = function () {
  window.__wefperfErrors.push("console.error: " + Array.prototype.join.call(arguments, " ")); log.apply(console, arguments); }; })();
window.addEventListener("load", function () { setTimeout(function () {
  var out = document.createElement("pre"); out.id = "wefperf-test-errors";
  out.textContent = JSON.stringify(window.__wefperfErrors); document.body.appendChild(out); }, 500); });
</script>"""


def _chromium() -> tuple[str | None, str]:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found, ""
    if os.environ.get("WEFPERF_NO_APT"):
        return None, "chromium is not on PATH and WEFPERF_NO_APT is set"
    if not shutil.which("apt-get"):
        return None, "chromium is not on PATH and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "chromium is not on PATH; install it: sudo apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"apt-get install chromium failed: {tail[0]}"
    return found, ""


@pytest.fixture(scope="session")
def chromium_bin() -> str:
    path, reason = _chromium()
    if path is None:
        pytest.skip(reason)
    return path


def _headless(chromium: str, profile: Path, *args: str) -> list[str]:
    # The flags that work on this machine kind; every host name resolves nowhere, so nothing can be fetched.
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}", "--hide-scrollbars",
            "--virtual-time-budget=20000", *args]


class _Charts(HTMLParser):
    """Each chart div's classes (plotly adds js-plotly-plot once it has drawn), and the SVG layers."""

    def __init__(self) -> None:
        super().__init__()
        self.classes: dict[str, str] = {}
        self.svgs = 0
        self.traces = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "div" and (a.get("id") or "").startswith("chart-"):
            self.classes[a["id"] or ""] = cls
        if tag == "svg" and "main-svg" in cls:
            self.svgs += 1
        if tag == "g" and "trace" in cls.split():
            self.traces += 1


def open_in_chromium(chromium: str, page: str, tmp_path: Path, name: str) -> tuple[_Charts, list[str], Path]:
    """Load the page from a file:// URL, let its scripts run, and read back the drawn DOM and the errors."""
    assert "<head>" in page
    path = tmp_path / f"{name}.html"
    path.write_text(page.replace("<head>", "<head>\n" + CATCHER, 1), encoding="utf-8")
    done = subprocess.run(_headless(chromium, tmp_path / f"profile-{name}", "--dump-dom", path.as_uri()),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'id="wefperf-test-errors"' in dom, "the page's load handler never ran"
    errors = json.loads(dom.split('id="wefperf-test-errors">', 1)[1].split("</pre>", 1)[0])
    charts = _Charts()
    charts.feed(dom)
    shot = tmp_path / f"{name}.png"
    snap = subprocess.run(_headless(chromium, tmp_path / f"profile-{name}-shot", "--window-size=1280,1600",
                                    f"--screenshot={shot}", path.as_uri()),
                          capture_output=True, text=True, timeout=180)
    assert snap.returncode == 0 and shot.is_file(), snap.stderr[-2000:]
    return charts, errors, shot


def _expect_drawn(page: str, charts: _Charts, errors: list[str], shot: Path) -> None:
    wanted = [part.split('"', 1)[0] for part in page.split('data-chart="')[1:]]
    assert wanted, "the page has no charts"
    assert errors == []
    for div in wanted:
        assert "js-plotly-plot" in charts.classes.get(div, ""), f"{div} was not drawn"
    assert charts.svgs >= 2 * len(wanted)  # plotly draws a main and an overlay SVG per chart
    assert charts.traces >= len(wanted)
    # Charts compress far worse than text alone (the page without plotly.js: about 50 kB).
    assert shot.stat().st_size > 80_000


@pytest.fixture
def failing_collector():
    c = FakeCollector(fail_every=7, fail_status=503).start()
    yield c
    c.stop()


def test_a_run_report_renders_offline_with_every_chart(chromium_bin: str, failing_collector: FakeCollector,
                                                        tmp_path: Path) -> None:
    report = tmp_path / "run.html"
    done = wefperf("run", "--stages", "2:3000,2:6000", "--event-type", "4624", "--results", str(tmp_path / "r.json"),
                   "--report", str(report), env={"WEF_ENDPOINT": failing_collector.url,
                                                 "PERF_TEST_PROCESSING_WAIT_SECS": "2"})
    assert done.code == 1, done.out + done.err  # the 503s fail it, and are drawn
    page = report.read_text(encoding="utf-8")
    charts, errors, shot = open_in_chromium(chromium_bin, page, tmp_path, "run")
    _expect_drawn(page, charts, errors, shot)
    assert set(charts.classes) >= {"chart-rates", "chart-latency", "chart-lag", "chart-errors", "chart-inflight"}


def test_a_capacity_report_and_a_comparison_render(chromium_bin: str, tmp_path: Path) -> None:
    data = capacity_dict()
    page = render_html(data)
    charts, errors, shot = open_in_chromium(chromium_bin, page, tmp_path, "capacity")
    _expect_drawn(page, charts, errors, shot)
    assert "chart-capacity" in charts.classes

    other = json.loads(json.dumps(data))
    other["capacity"]["events_per_second"] = 6000.0
    page = render_compare_html([Run("a.json", data), Run("b.json", other)])
    charts, errors, shot = open_in_chromium(chromium_bin, page, tmp_path, "compare")
    _expect_drawn(page, charts, errors, shot)
    assert set(charts.classes) == {"chart-compare-rates", "chart-compare-latency", "chart-compare-capacity"}
