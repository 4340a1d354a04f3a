"""The benchmark's sink (nginx as our own child) and the CPU accounting around each run.

nginx reads every request body whole (see nginx.conf.template) and logs one line per
events request; the rates in the report are counted from that log, the same yardstick
for every client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_busy_s() -> float:
    """CPU-seconds spent busy by all cores since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def vm_kb(pid: int | str, field: str = "VmHWM") -> int:
    """A memory figure of the process's own from /proc (VmHWM: its peak RSS; VmRSS: now), in KiB;
    0 once it has exited.

    Not ru_maxrss: on Linux a child's maxrss keeps the high-water mark of the memory it had before
    exec, the spawning process's (a 13 MB `python -c pass` reports 213 MB from a 200 MB parent), so
    it measured the benchmark itself. VmHWM belongs to the memory the program has after exec.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(field + ":")), 0)
    except OSError:
        return 0


class PeakRss:
    """VmHWM of a child, read every `every_s` until it exits: a high-water mark, so the last
    reading is its peak but for what it may add in its last `every_s`. Its VmRSS each `sample_s`
    beside it: the level it holds, which a peak lasting milliseconds does not show."""

    def __init__(self, pid: int, every_s: float = 0.01, sample_s: float = 0.1) -> None:
        self.pid, self.every_s, self.sample_s, self.peak_kb = pid, every_s, sample_s, 0
        self.samples_kb: list[tuple[float, int]] = []  # (seconds since the start, VmRSS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        t0 = next_sample = time.monotonic()
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, vm_kb(self.pid))
            now = time.monotonic()
            if now >= next_sample:
                rss = vm_kb(self.pid, "VmRSS")
                if rss:
                    self.samples_kb.append((now - t0, rss))
                next_sample = now + self.sample_s
            self._stop.wait(self.every_s)

    def held_mb(self, start_s: float, end_s: float) -> float:
        """The median RSS sampled between `start_s` and `end_s` after the start; 0 without samples."""
        inside = sorted(kb for t, kb in self.samples_kb if start_s <= t < end_s)
        return inside[len(inside) // 2] / 1024 if inside else 0.0

    def stop(self) -> float:
        """The peak seen, in MiB (call once the child has exited)."""
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def wait_for_quiet(max_wait_s: float, threshold_cores: float) -> float:
    """Wait (a while) for other processes to leave the CPU alone; returns the load last seen."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy0 = system_busy_s()
        time.sleep(0.5)
        load = (system_busy_s() - busy0) / 0.5
        if load <= threshold_cores or time.monotonic() >= deadline:
            return load


@dataclass
class SinkCount:
    """What nginx logged for one client's run."""

    requests: int
    ok: int
    body_bytes: int
    first: float
    last: float

    @property
    def span_s(self) -> float:
        return max(self.last - self.first, 0.0)

    def rate(self) -> float:
        """Requests per second between the first and the last logged request."""
        span = self.span_s
        return (self.requests - 1) / span if self.requests > 1 and span > 0 else 0.0


class Nginx:
    """nginx as our own child: own prefix, config and port; not the system service."""

    def __init__(self, workdir: Path, workers: int = 1) -> None:
        self.workers = workers
        self.prefix = workdir / f"nginx-{workers}w"
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = (HERE / "nginx.conf.template").read_text()
        conf = conf.replace("${PREFIX}", str(self.prefix)).replace("${PORT}", str(self.port))
        conf = conf.replace("${WORKERS}", str(workers))
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(conf)
        self.log = self.prefix / "events.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/wsman/events"

    def start(self) -> None:
        with (self.prefix / "stderr.log").open("wb") as stderr:
            self.proc = subprocess.Popen(["nginx", "-p", str(self.prefix), "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.prefix / 'stderr.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=1) as r:
                    if r.status == 200:
                        self._check_reads_bodies()
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not answer /health within 10 s")

    def _check_reads_bodies(self) -> None:
        """One POST must come back 200 and be logged with its length, or the config is wrong."""
        self.mark()
        body = b"x" * 100_000
        req = urllib.request.Request(self.url, data=body, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status != 200:
                raise RuntimeError(f"nginx answered {r.status} to a POST; check nginx.conf.template")
        got = self.count()
        if (got.requests, got.ok, got.body_bytes) != (1, 1, len(body)):
            raise RuntimeError(f"nginx logged {got} for one 100 kB POST; check nginx.conf.template")

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True,
                             check=False)
        return [int(x) for x in out.stdout.split()]

    def mark(self) -> None:
        """Start counting from here."""
        self._flush()
        self._offset = self.log.stat().st_size if self.log.exists() else 0

    def _flush(self) -> None:
        """Make nginx write out its log buffer (USR1 reopens logs, flushing them first)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGUSR1)
        size, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 0.3:
            time.sleep(0.05)
            now_size = self.log.stat().st_size if self.log.exists() else 0
            if now_size != size:
                size, stable_since = now_size, time.monotonic()

    def count(self) -> SinkCount:
        """Requests nginx logged since the last mark()."""
        self._flush()
        with self.log.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        n = ok = body = 0
        first = last = 0.0
        for line in data.splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            t = float(parts[0])
            # Several workers buffer their own log lines, so the file is not in time order.
            first = t if n == 0 else min(first, t)
            last = max(last, t)
            n += 1
            ok += parts[1].startswith(b"2")
            body += int(parts[2]) if parts[2].isdigit() else 0
        return SinkCount(n, ok, body, first, last)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
