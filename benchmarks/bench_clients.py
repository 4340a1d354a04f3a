"""The clients `make bench` runs, each as a child process measured the same way.

wrk, hey and h2load come from Debian's packages; Locust (and py-spy, for the profile)
from PyPI into a virtual environment of the benchmark's own (benchmarks/out/tools-venv),
so the project's environment stays as pyproject.toml makes it. All are installed here
when missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_sink import Nginx, PeakRss, SinkCount, proc_cpu_s, system_busy_s, wait_for_quiet

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
WEFPERF = VENV_BIN / "wefperf"
TOOLS_VENV = HERE / "out" / "tools-venv"
TOOLS_PYPI = ("locust", "py-spy")
APT = {"nginx": "nginx", "wrk": "wrk", "hey": "hey", "h2load": "nghttp2-client"}
CONTENT_TYPE = "application/soap+xml;charset=UTF-8"

# A run during which other processes kept more than this many cores busy is run again
# once (the machine is shared); waiting for quiet before each run comes first.
NOISY_CORES = 0.3
QUIET_WAIT_S = 15.0
ATTEMPTS = 2


def ensure_tools() -> None:
    """Debian packages with apt-get (needs root), Locust and py-spy with pip into TOOLS_VENV."""
    missing = [pkg for cmd, pkg in APT.items() if shutil.which(cmd) is None]
    if missing:
        print(f"bench: installing {' '.join(missing)} with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    tools_bin = TOOLS_VENV / "bin"
    if not all((tools_bin / name).exists() for name in TOOLS_PYPI):
        print(f"bench: installing {' '.join(TOOLS_PYPI)} into {TOOLS_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
        subprocess.run([str(tools_bin / "python"), "-m", "pip", "install", "-q", *TOOLS_PYPI], check=True)


def tool_version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


def package_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                         check=False)
    return f"{package} {out.stdout.strip() or '?'} (Debian package)"


def versions() -> dict[str, str]:
    return {
        "nginx": tool_version(["nginx", "-v"]),
        "wrk": tool_version(["wrk", "-v"]),
        "hey": package_version("hey"),
        "h2load": tool_version(["h2load", "--version"]),
        "Locust": tool_version([str(TOOLS_VENV / "bin" / "locust"), "--version"]).split(" from ")[0],
    }


@dataclass
class Run:
    """One client run: what nginx counted, what the client said, what it cost."""

    client: str
    sink: SinkCount
    batch_size: int
    client_cpu_s: float
    nginx_cpu_s: float
    other_cpu_s: float
    wall_s: float
    peak_rss_mb: float = 0.0
    # The RSS it held (median of 10 Hz VmRSS samples) 5-10 s into the run and in its last 5 s: growth
    # with the run shows here, where the peak (above) also catches sub-second spikes.
    rss_early_mb: float = 0.0
    rss_late_mb: float = 0.0
    startup_cpu_s: float = 0.0  # set for wefperf: CPU of a one-batch run, taken out of cpu_us_per_request
    own: dict[str, float] = field(default_factory=dict)  # the client's own report
    exit_code: int = 0
    attempts: int = 1

    @property
    def rps(self) -> float:
        return self.sink.rate()

    @property
    def eps(self) -> float:
        return self.rps * self.batch_size

    @property
    def mbps(self) -> float:
        per_request = self.sink.body_bytes / self.sink.requests if self.sink.requests else 0.0
        return self.rps * per_request / 1e6

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * (self.client_cpu_s - self.startup_cpu_s) / self.sink.requests if self.sink.requests else 0.0

    @property
    def nginx_us_per_request(self) -> float:
        return 1e6 * self.nginx_cpu_s / self.sink.requests if self.sink.requests else 0.0

    @property
    def nginx_cores(self) -> float:
        """nginx's CPU over the span it was logging requests: 1.0 would be its one worker saturated."""
        return self.nginx_cpu_s / self.sink.span_s if self.sink.span_s else 0.0

    @property
    def other_cores(self) -> float:
        return self.other_cpu_s / self.wall_s if self.wall_s else 0.0


def measured(nginx: Nginx, workdir: Path, client: str, batch_size: int, cmd: list[str],
             env: dict[str, str] | None = None) -> tuple[Run, str]:
    """Run one client child to its end, counting its CPU, nginx's CPU and everyone else's.

    Returns the run and the child's standard output. A run that other processes disturbed
    (more than NOISY_CORES busy beside the client and nginx) is run once more.
    """
    out_path = workdir / "client.out"
    for attempt in range(1, ATTEMPTS + 1):
        workers = nginx.worker_pids()
        wait_for_quiet(QUIET_WAIT_S, NOISY_CORES)
        nginx.mark()
        ngx0 = sum(proc_cpu_s(p) for p in workers)
        busy0, t0 = system_busy_s(), time.monotonic()
        with out_path.open("wb") as out, (workdir / "client.err").open("wb") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
            peak = PeakRss(proc.pid)
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                peak_mb = peak.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        busy = system_busy_s() - busy0
        ngx = sum(proc_cpu_s(p) for p in workers) - ngx0
        cpu = usage.ru_utime + usage.ru_stime
        run = Run(client, nginx.count(), batch_size, cpu, ngx, max(busy - cpu - ngx, 0.0), wall,
                  peak_rss_mb=peak_mb, rss_early_mb=peak.held_mb(5.0, 10.0),
                  rss_late_mb=peak.held_mb(max(wall - 5.0, 5.0), wall), exit_code=proc.returncode, attempts=attempt)
        if run.other_cores <= NOISY_CORES or attempt == ATTEMPTS:
            return run, out_path.read_text(errors="replace")
        print(f"bench: {client}: other processes used {run.other_cores:.2f} cores, running it again", flush=True)
    raise AssertionError("unreachable")


def _first_float(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def run_wrk(nginx: Nginx, workdir: Path, body_file: Path, batch_size: int, conns: int, secs: float,
            threads: int = 1, client: str = "wrk") -> Run:
    env = {**os.environ, "WEFPERF_BODY_FILE": str(body_file)}
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs:g}s", "-s", str(HERE / "post.lua"), nginx.url]
    run, out = measured(nginx, workdir, client, batch_size, cmd, env)
    run.own = {"requests_per_s": _first_float(r"Requests/sec:\s*([\d.]+)", out)}
    return run


def run_hey(nginx: Nginx, workdir: Path, body_file: Path, batch_size: int, conns: int, secs: float) -> Run:
    cmd = ["hey", "-z", f"{secs:g}s", "-c", str(conns), "-cpus", "1", "-m", "POST", "-T", CONTENT_TYPE,
           "-D", str(body_file), nginx.url]
    run, out = measured(nginx, workdir, "hey", batch_size, cmd)
    run.own = {"requests_per_s": _first_float(r"Requests/sec:\s*([\d.]+)", out)}
    return run


def run_h2load(nginx: Nginx, workdir: Path, body_file: Path, batch_size: int, conns: int, secs: float) -> Run:
    cmd = ["h2load", "--h1", "-t", "1", "-c", str(conns), "-D", f"{secs:g}", "-d", str(body_file),
           "-H", f"content-type: {CONTENT_TYPE}", nginx.url]
    run, out = measured(nginx, workdir, "h2load", batch_size, cmd)
    run.own = {"requests_per_s": _first_float(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)}
    return run


def run_locust(nginx: Nginx, workdir: Path, body_file: Path, batch_size: int, conns: int, secs: float) -> Run:
    report = workdir / "locust.json"
    report.unlink(missing_ok=True)
    env = {**os.environ, "WEFPERF_BODY_FILE": str(body_file)}
    cmd = [str(TOOLS_VENV / "bin" / "locust"), "-f", str(HERE / "locustfile.py"), "--headless",
           "-u", str(conns), "-r", str(max(conns, 1000)), "-t", f"{secs:g}s", "--host", nginx.base_url,
           "--only-summary", "--skip-log", "--json-file", str(report.with_suffix(""))]
    run, _ = measured(nginx, workdir, "locust", batch_size, cmd, env)
    stats = json.loads(report.read_text()) if report.exists() else []
    if stats:
        s = stats[0]
        span = s["last_request_timestamp"] - s["start_time"]
        run.own = {"requests_per_s": s["num_requests"] / span if span > 0 else 0.0,
                   "failures": float(s["num_failures"])}
    return run


def run_naive(nginx: Nginx, workdir: Path, batch_size: int, secs: float) -> Run:
    cmd = [sys.executable, str(HERE / "naive_client.py"), "--url", nginx.url,
           "--batch-size", str(batch_size), "--duration-secs", str(secs)]
    run, out = measured(nginx, workdir, "naive", batch_size, cmd)
    data = json.loads(out or "{}")
    run.own = {"requests_per_s": data.get("batches", 0) / max(data.get("seconds", 1), 1e-9)}
    return run


def run_wefperf(nginx: Nginx, workdir: Path, *, client: str, batch_size: int, secs: float, target_eps: int,
                profile: str, extra: list[str], total_events: int = 0) -> Run:
    results = workdir / "wefperf.json"
    cmd = [str(WEFPERF), "run", "--profile", profile, "-e", f"WEF_ENDPOINT={nginx.url}",
           "--results", str(results), "--duration-secs", str(secs), "--total-events", str(total_events),
           "--batch-size", str(batch_size), "--target-eps", str(target_eps),
           "--processing-wait-secs", "0", "--no-verify-s3", "--health-timeout-secs", "10", *extra]
    run, _ = measured(nginx, workdir, client, batch_size, cmd)
    if run.exit_code not in (0, 1):
        raise RuntimeError(f"wefperf exited {run.exit_code}: {' '.join(cmd)}")
    data = json.loads(results.read_text())
    res, lag = data["results"], data["latency_ms"]["schedule_lag"]
    run.own = {
        "events_per_s": float(res["events_per_second_overall"]),
        "events_sent": float(res["events_sent"]),
        "batches_ok": float(res["successful_batches"]),
        "batches_failed": float(res["failed_batches"]),
        "elapsed_s": float(res["total_time_seconds"]),
        "lag_p99_ms": float(lag["p99"]),
    }
    results.unlink()
    return run


def run_write_path(nginx: Nginx, workdir: Path, batch_size: int, mode: str, conns: int, secs: float) -> Run:
    """write_paths.py: one way of writing a request (join or writelines), its sending phase's CPU."""
    cmd = [sys.executable, str(HERE / "write_paths.py"), "--url", nginx.url, "--batch-size", str(batch_size),
           "--mode", mode, "--secs", f"{secs:g}", "--conns", str(conns)]
    run, out = measured(nginx, workdir, f"write {mode}", batch_size, cmd)
    if run.exit_code != 0:
        raise RuntimeError(f"write_paths.py exited {run.exit_code}: {' '.join(cmd)}")
    run.own = {k: float(v) for k, v in json.loads(out).items()}
    return run
