"""Peak RSS of `wefperf run --profile soak-1h`, measured on shortened runs and extrapolated to the hour.

An hour on the shared 2-core machine is too long to run often, so this runs the profile
(10,000 events/s, 1,000-event batches, S3 verification) for a few shorter durations, one
after the other, against the embedded collector, and fits the peak RSS against the
duration. Each run is a child Python that runs the CLI in-process and reports its own peak
RSS (VmHWM of itself: the embedded collector and S3 are processes of their own) and its
RSS once a second, so the load phase and the S3 check can be told apart. Beside them, a
Recorder is fed an hour of the profile's batches without a network (seconds, not an hour)
and tracemalloc counts what it keeps, per second of run.

    PYTHONPATH=src .venv/bin/python benchmarks/soak_memory.py [--durations 60,120,240] [--repeat N]
        [--write docs/benchmarks.md]

With --write the Markdown section replaces the one between its markers in that file (or is
appended); `make bench` keeps it when it rewrites the rest.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

BEGIN, END = "<!-- soak-memory: begin -->", "<!-- soak-memory: end -->"
PROFILE_EPS, PROFILE_BATCH, HOUR = 10_000, 1_000, 3600

# The child: the CLI in this process, a thread sampling VmRSS each second, and the peak at exit.
CHILD = r"""
import json, runpy, sys, threading, time
out, argv = sys.argv[1], sys.argv[2:]
samples = []
def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
def sample():
    while True:
        samples.append((time.monotonic(), rss_kb()))
        time.sleep(1.0)
threading.Thread(target=sample, daemon=True).start()
sys.argv = ["wefperf", *argv]
code = 0
try:
    runpy.run_module("wefperf", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
finally:
    # VmHWM, not ru_maxrss: that keeps the spawning process's high-water mark across exec
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(out, "w") as f:
        json.dump({"peak_kb": peak, "samples": samples, "code": code}, f)
"""


@dataclass(frozen=True)
class Measured:
    duration_s: int
    verify: bool
    peak_mb: float  # the whole process, start to exit
    load_peak_mb: float  # the highest 1-second sample until the load phase ended (its "Duration completed" line)
    load_early_mb: float  # RSS 30 s into the load (its "Sending events..." line), or its first sample
    load_mid_mb: float  # RSS half way through the load
    load_end_mb: float  # RSS at the load's end: the last sample before its "Duration completed" line
    events_acked: int
    exit_code: int
    command: str


def measure(duration: int, verify: bool, workdir: Path) -> Measured:
    """One run of the profile for `duration` seconds; the caller runs them one at a time."""
    results = workdir / f"soak-{duration}-{int(verify)}.json"
    stats = workdir / f"rss-{duration}-{int(verify)}.json"
    args = ["run", "--profile", "soak-1h", "--embedded", "--duration-secs", str(duration), "--no-live",
            "--verify-s3" if verify else "--no-verify-s3", "--results", str(results)]
    lines: list[tuple[float, str]] = []
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(stats), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.monotonic(), line.rstrip()))
    proc.wait()
    data = json.loads(stats.read_text())
    # The load phase runs from its "Sending events..." line to its "Duration completed" line.
    load_at = next((t for t, text in lines if text.startswith("Sending events")), 0.0)
    verify_at = next((t for t, text in lines if text.startswith("Duration completed")), None)
    load = [kb for t, kb in data["samples"] if verify_at is None or t < verify_at]
    during = [(t, kb) for t, kb in data["samples"] if t >= load_at and (verify_at is None or t < verify_at)]
    early = next((kb for t, kb in during if t >= load_at + 30), during[0][1] if during else 0)
    mid = next((kb for t, kb in during if t >= load_at + duration / 2), during[-1][1] if during else 0)
    acked = 0
    if results.exists():
        acked = int(json.loads(results.read_text()).get("results", {}).get("events_acknowledged") or 0)
    if data["code"] not in (0, 1):
        tail = "\n".join(text for _, text in lines[-20:])
        raise SystemExit(f"soak_memory: the {duration} s run exited {data['code']}:\n{tail}")
    return Measured(duration, verify, data["peak_kb"] / 1024, max(load, default=0) / 1024, early / 1024,
                    mid / 1024, (during[-1][1] if during else 0) / 1024, acked, data["code"],
                    "wefperf " + " ".join(a for a in args if not a.startswith(str(workdir))).replace("--results", "")
                    .rstrip())


@dataclass(frozen=True)
class Kept:
    seconds: int
    recorder_mb: float  # what a Recorder keeps after this many seconds of the profile's batches
    summary_mb: float  # with its summary, the timeline as dicts and as JSON text, built at the end


def recorder_kept(checkpoints: tuple[int, ...] = (900, 1800, HOUR)) -> list[Kept]:
    """Feed a Recorder the profile's batches (10 a second, 2 ms replies) and measure what it keeps."""
    from wefperf.measure.recorder import Recorder

    out = []
    per_second = PROFILE_EPS // PROFILE_BATCH
    tracemalloc.start()
    rec = Recorder(0.0)
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    done = 0
    for stop in checkpoints:
        for second in range(done, stop):
            for i in range(per_second):
                at = second + i / per_second
                rec.sent(PROFILE_BATCH, at, at + 0.0001)
                rec.ok(PROFILE_BATCH, at, at + 0.0001, at + 0.002)
        done = stop
        rec.tick(float(stop))
        gc.collect()  # what is kept, not the garbage of a closed second's histogram
        kept = tracemalloc.get_traced_memory()[0] - base
        summary = rec.summary(float(stop), window_s=float(stop), due_events=stop * PROFILE_EPS)
        rows = [asdict(r) for r in summary.timeline]  # what the results JSON's timeline holds, as dicts
        text = json.dumps(rows)
        with_summary = tracemalloc.get_traced_memory()[0] - base
        out.append(Kept(stop, kept / 2**20, with_summary / 2**20))
        del summary, rows, text
    tracemalloc.stop()
    return out


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares: (intercept, slope)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - slope * mx, slope


def section(runs: list[Measured], kept: list[Kept], when: str, took_s: float, load_avg: str) -> list[str]:
    verified = [r for r in runs if r.verify]
    lines = [BEGIN, "## Memory of a one-hour soak (`soak-1h`, 10,000 events/s)", "",
             f"Generated by `benchmarks/soak_memory.py` on {when} in {took_s / 60:.1f} min (not part of `make bench`;"
             f" load average before it: {load_avg}). Shortened runs of the profile against `--embedded`, one at a"
             " time; peak RSS is the wefperf process's own (VmHWM; the embedded collector and S3 are other"
             " processes), the load phase's from a once-a-second sample of VmRSS until its \"Duration completed\" line.", "",
             "| run | events acknowledged | RSS 30 s into the load (MB) | half way (MB) | at the load's end (MB) |"
             " peak RSS, load phase (MB) | peak RSS, whole run (MB) | exit |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| `{r.command}` | {r.events_acked:,} | {r.load_early_mb:.1f} | {r.load_mid_mb:.1f} |"
                     f" {r.load_end_mb:.1f} | {r.load_peak_mb:.1f} | {r.peak_mb:.1f} | {r.exit_code} |")
    lines.append("")
    lines += ["What a Recorder keeps, fed the profile's batches (10 a second) without a network, counted by"
              " tracemalloc after a garbage collection: the per-second timeline is what grows.", "",
              "| seconds of run | kept by the Recorder (MB) | with the summary, the timeline as dicts and as JSON (MB) |",
              "|---:|---:|---:|"]
    for k in kept:
        lines.append(f"| {k.seconds:,} | {k.recorder_mb:.2f} | {k.summary_mb:.2f} |")
    lines.append("")
    _, rec_slope = fit([(k.seconds, k.recorder_mb) for k in kept])
    hour = next((k for k in kept if k.seconds == HOUR), None)
    measured = verified or runs
    durations = sorted({r.duration_s for r in measured})
    if len(durations) >= 2:
        a, b = durations[-2:]
        at_a = [r for r in measured if r.duration_s == a]
        at_b = [r for r in measured if r.duration_s == b]
        # The second half of the longest runs: past the allocator's warm-up, the growth an hour would keep.
        within = max((r.load_end_mb - r.load_mid_mb) / max(b / 2, 1) for r in at_b)
        load_slope = (_mean(r.load_peak_mb for r in at_b) - _mean(r.load_peak_mb for r in at_a)) / (b - a)
        b_load = max(r.load_peak_mb for r in at_b)
        _, per_event_mb = fit([(r.events_acked, r.peak_mb) for r in measured])
        per_event = per_event_mb * 2**20
        hour_events = HOUR * PROFILE_EPS
        b_events = max(r.events_acked for r in at_b)
        b_peaks = [r.peak_mb for r in at_b]
        lines += [
            f"- **Load phase**: the Recorder keeps {rec_slope * 1024:.2f} KB per second of run (a timeline row),"
            f" {hour.recorder_mb if hour else rec_slope * HOUR:.1f} MB after an hour"
            + (f", {hour.summary_mb:.1f} MB while the results are built at the end" if hour else "") + "."
            f" In the second half of the {b} s runs' load RSS grew {within * 1024:+.1f} KB/s at most; between"
            f" the {a} s and {b} s runs the mean load-phase peak moved {load_slope * 1024:+.1f} KB/s. At the"
            f" largest of these three rates the rest of an hour adds"
            f" {max(within, load_slope, rec_slope) * (HOUR - b):.1f} MB to the {b} s runs' {b_load:.0f} MB.",
            f"- **Whole run**: the peak is the S3 check's ({min(b_peaks):.0f} to {max(b_peaks):.0f} MB after"
            f" {b_events:,} events), which grows with the events it accounts for, unevenly from run to run: a"
            f" least-squares line through every run's peak gives {per_event:.1f} bytes per event, so about"
            f" {max(b_peaks) + max(per_event, 0) * (hour_events - b_events) / 2**20:.0f} MB for the hour's"
            f" {hour_events / 1e6:.0f} million events.",
        ]
    lines += ["", END]
    return lines


def write_section(path: Path, lines: list[str]) -> None:
    text = path.read_text() if path.exists() else ""
    block = "\n".join(lines)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--durations", default="60,120,240", help="seconds of load per run, comma-separated")
    p.add_argument("--no-verify", action="store_true", help="leave out the S3 check (the profile has it on)")
    p.add_argument("--repeat", type=int, default=1, help="run every duration this many times (in turn)")
    p.add_argument("--write", default=None, metavar="FILE.md", help="put the section into this Markdown file")
    args = p.parse_args()
    started, clock = datetime.now(timezone.utc), time.monotonic()
    load_avg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    kept = recorder_kept()
    runs = []
    with tempfile.TemporaryDirectory(prefix="soak-memory-") as tmp:
        for duration in [int(d) for _ in range(args.repeat) for d in args.durations.split(",")]:
            run = measure(duration, not args.no_verify, Path(tmp))
            print(f"soak_memory: {duration} s: load peak {run.load_peak_mb:.1f} MB, whole run {run.peak_mb:.1f} MB",
                  file=sys.stderr, flush=True)
            runs.append(run)
    lines = section(runs, kept, started.strftime("%Y-%m-%d %H:%M UTC"), time.monotonic() - clock, load_avg)
    print("\n".join(lines))
    if args.write:
        write_section(Path(args.write), lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
