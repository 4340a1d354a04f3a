"""The benchmark's peak RSS is the client's own, not the benchmark's: `make bench` once reported
206.8 MB for a wefperf that peaks near 125 MB, because a child's ru_maxrss keeps the spawning
process's high-water mark across exec. The benchmark reads the child's VmHWM instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bench_sink import PeakRss

MB = 1 << 20
# Touches 60 MB, holds it a moment so the watcher sees it, then exits.
CHILD = "import time; b = bytearray(60 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5)"


def test_peak_rss_is_the_childs_own_not_its_parents() -> None:
    ballast = bytearray(300 * MB)
    ballast[::4096] = b"y" * len(ballast[::4096])  # this process holds 300 MB when it spawns the child
    proc = subprocess.Popen([sys.executable, "-c", CHILD])
    peak = PeakRss(proc.pid)
    try:
        _, status, _usage = os.wait4(proc.pid, 0)
    finally:
        peak_mb = peak.stop()
    assert os.waitstatus_to_exitcode(status) == 0
    assert 60 <= peak_mb < 150, peak_mb  # the child's 60 MB and its interpreter, not the 300 MB beside it
    del ballast
