"""`make bench`: wefperf's speed beside wrk, hey, h2load, Locust and the old suite's client, in one run.

Everything posts to the same sink (nginx on 127.0.0.1, reading every body whole and
dropping it) on this machine. The clients take turns round by round, so background load
hits them alike; each figure is the median of the rounds, with its spread. The rates are
counted from nginx's own access log, the same yardstick for every client; each client's
own report is kept beside it as a cross-check. Writes a Markdown report (docs/benchmarks.md).

    bench_sink.py     nginx and the CPU accounting
    bench_clients.py  the clients, installed when missing, and one measured run
    bench_report.py   the report, every figure computed from the measurements
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from bench_clients import (
    TOOLS_VENV,
    VENV_BIN,
    WEFPERF,
    Run,
    ensure_tools,
    run_h2load,
    run_hey,
    run_locust,
    run_naive,
    run_wefperf,
    run_write_path,
    run_wrk,
)
from bench_report import PACING_BATCH, WRITE_MODES, Plan, write_report
from bench_sink import Nginx, SinkCount

ROOT = Path(__file__).resolve().parent.parent
BATCH_SIZES = (1000, 10)
BODY_CLIENTS: dict[str, Callable[[Nginx, Path, Path, int, int, float], Run]] = {
    "wrk": run_wrk, "hey": run_hey, "h2load": run_h2load, "locust": run_locust,
}


def capacity_phase(plan: Plan, nginx: Nginx, workdir: Path, bodies: dict[int, Path]) -> list[Run]:
    runs: list[Run] = []
    # One batch each: the CPU wefperf spends on start-up and shutdown, to take out of its CPU per request.
    for bs in BATCH_SIZES:
        for sender in ("fast", "aiohttp"):
            runs.append(run_wefperf(nginx, workdir, client=f"startup {sender}", batch_size=bs, secs=0, target_eps=0,
                                    profile="baseline", total_events=bs,
                                    extra=["--event-type", "4624", "--concurrency", str(plan.conns), "--sender", sender]))
    conc = ["--event-type", "4624", "--concurrency", str(plan.conns)]
    for r in range(plan.rounds):
        for bs in BATCH_SIZES:
            steps: list[tuple[str, Callable[[], Run]]] = [
                (name, partial(f, nginx, workdir, bodies[bs], bs, plan.conns, plan.capacity_secs))
                for name, f in BODY_CLIENTS.items()
            ]
            steps += [(f"wefperf {s}", partial(
                run_wefperf, nginx, workdir, client=f"wefperf {s}", batch_size=bs, secs=plan.capacity_secs,
                target_eps=0, profile="baseline", extra=[*conc, "--sender", s])) for s in ("fast", "aiohttp")]
            if bs == 1000:
                steps.append(("naive", partial(run_naive, nginx, workdir, bs, plan.capacity_secs)))
            for name, step in steps:
                run = step()
                runs.append(run)
                print(f"bench: capacity round {r + 1}/{plan.rounds} batch {bs:>4} {name:<16} "
                      f"{run.eps:>12,.0f} events/s {run.rps:>9,.0f} req/s {run.mbps:>8,.0f} MB/s "
                      f"client {run.cpu_us_per_request:>7,.1f} µs/req nginx {run.nginx_cores:.2f} cores "
                      f"other {run.other_cores:.2f}", flush=True)
    return runs


def scale_concurrency(plan: Plan) -> int:
    """`--concurrency` for `--processes 2`: it counts per process, so 2 × this = wrk's `-c`."""
    return plan.conns


def scale_phase(plan: Plan, workdir: Path, bodies: dict[int, Path]) -> list[Run]:
    """Section 6: two sender processes beside wrk with two threads, on an nginx with two workers."""
    runs: list[Run] = []
    nginx = Nginx(workdir, workers=2)
    nginx.start()
    try:
        for r in range(plan.rounds):
            for bs in BATCH_SIZES:
                common = dict(batch_size=bs, secs=plan.capacity_secs, target_eps=0, profile="baseline")
                steps: list[tuple[str, Callable[[], Run]]] = [
                    ("wrk -t2", partial(run_wrk, nginx, workdir, bodies[bs], bs, 2 * plan.conns, plan.capacity_secs,
                                        threads=2, client="scale wrk -t2")),
                    ("wefperf x1", partial(run_wefperf, nginx, workdir, client="scale wefperf x1", **common,
                                           extra=["--event-type", "4624", "--concurrency", str(plan.conns),
                                                  "--sender", "fast"])),
                    ("wefperf x2", partial(run_wefperf, nginx, workdir, client="scale wefperf x2", **common,
                                           extra=["--event-type", "4624", "--concurrency", str(scale_concurrency(plan)),
                                                  "--sender", "fast", "--processes", "2"])),
                ]
                for name, step in steps:
                    run = step()
                    runs.append(run)
                    print(f"bench: scale round {r + 1}/{plan.rounds} batch {bs:>4} {name:<11} "
                          f"{run.eps:>12,.0f} events/s {run.rps:>9,.0f} req/s nginx {run.nginx_cores:.2f} cores "
                          f"other {run.other_cores:.2f}", flush=True)
    finally:
        nginx.stop()
    return runs


def rate_phase(plan: Plan, nginx: Nginx, workdir: Path) -> list[Run]:
    runs: list[Run] = []
    for r in range(plan.rounds):
        for target in plan.rates:
            run = run_wefperf(nginx, workdir, client=f"rate {target}", batch_size=1000, secs=plan.rate_secs,
                              target_eps=target, profile="target-500k", extra=[])
            runs.append(run)
            print(f"bench: rate round {r + 1}/{plan.rounds} target {target:>7,} -> {run.eps:>10,.0f} events/s "
                  f"(nginx), lag p99 {run.own['lag_p99_ms']:.2f} ms, other {run.other_cores:.2f}", flush=True)
    return runs


def pacing_phase(plan: Plan, nginx: Nginx, workdir: Path) -> list[Run]:
    """Section 2b: what pacing costs: fixed rates in 10-event batches, with wefperf's default concurrency.

    Its total CPU, start-up included, is the goal's figure for 5,000 events/s; the report takes the
    start-up (the one-batch run of section 1) out for the CPU per request beside the unlimited rows.
    """
    runs: list[Run] = []
    for r in range(plan.rounds):
        for target in plan.pacing_rates:
            run = run_wefperf(nginx, workdir, client=f"pacing {target}", batch_size=PACING_BATCH,
                              secs=plan.pacing_secs, target_eps=target, profile="baseline",
                              extra=["--event-type", "4624", "--sender", "fast"])
            runs.append(run)
            print(f"bench: pacing round {r + 1}/{plan.rounds} target {target:>7,} -> {run.eps:>9,.0f} events/s "
                  f"(nginx), client CPU {run.client_cpu_s:.2f} s, {run.cpu_us_per_request:.1f} µs/req with start-up, "
                  f"lag p99 {run.own['lag_p99_ms']:.2f} ms, other {run.other_cores:.2f}", flush=True)
    return runs


def memory_phase(plan: Plan, nginx: Nginx, workdir: Path) -> list[Run]:
    runs: list[Run] = []
    for r in range(plan.rounds):
        for secs in (plan.memory_short_secs, plan.memory_long_secs):
            run = run_wefperf(nginx, workdir, client=f"memory {secs:g}", batch_size=1000, secs=secs,
                              target_eps=500_000, profile="target-500k", extra=[])
            runs.append(run)
            print(f"bench: memory round {r + 1}/{plan.rounds} {secs:g} s at 500k events/s: "
                  f"peak RSS {run.peak_rss_mb:.1f} MB", flush=True)
    return runs


def write_phase(plan: Plan, nginx: Nginx, workdir: Path) -> list[Run]:
    """The same requests written joined, as a list of buffers, and as wrk's constant body (section 5)."""
    runs: list[Run] = []
    for r in range(plan.rounds):
        for bs in BATCH_SIZES:
            for mode in WRITE_MODES:
                run = run_write_path(nginx, workdir, bs, mode, plan.conns, plan.write_secs)
                runs.append(run)
                n = run.own["requests"]
                print(f"bench: write round {r + 1}/{plan.rounds} batch {bs:>4} {mode:<10} {run.rps:>9,.0f} req/s "
                      f"user {1e6 * run.own['user_s'] / n:6.1f} sys {1e6 * run.own['sys_s'] / n:6.1f} "
                      f"nginx {run.nginx_us_per_request:6.1f} µs/req other {run.other_cores:.2f}", flush=True)
    return runs


def wsman_phase(plan: Plan) -> list[dict[str, float]]:
    """Section 7: the client's CPU to build one WS-Management envelope beside one batch body."""
    rows: list[dict[str, float]] = []
    for r in range(plan.rounds):
        out = subprocess.run([str(VENV_BIN / "python"), str(ROOT / "benchmarks" / "wsman_cost.py"), "--json"],
                             capture_output=True, text=True, check=True)
        for row in json.loads(out.stdout):
            rows.append({**row, "round": r})
            print(f"bench: wsman cost round {r + 1}/{plan.rounds} {row['events']:>5} events: batch "
                  f"{row['batch_us']:.1f} µs, wsman {row['wsman_us']:.1f} µs", flush=True)
    return rows


def profile_wefperf(nginx: Nginx, workdir: Path, batch_size: int, conns: int, secs: float) -> list[tuple[float, str]]:
    """Where wefperf's CPU goes at unlimited rate (py-spy from the benchmark's tools venv)."""
    spy = next((str(p) for p in (TOOLS_VENV / "bin" / "py-spy", VENV_BIN / "py-spy") if p.exists()),
               shutil.which("py-spy"))
    if spy is None:
        return []
    raw = workdir / f"profile-{batch_size}.txt"
    cmd = [spy, "record", "--nonblocking", "-r", "250", "-f", "raw", "-o", str(raw), "--",
           str(WEFPERF), "run", "--profile", "baseline", "-e", f"WEF_ENDPOINT={nginx.url}",
           "--results", str(workdir / "profile.json"), "--duration-secs", str(secs), "--total-events", "0",
           "--batch-size", str(batch_size), "--event-type", "4624", "--concurrency", str(conns),
           "--sender", "fast", "--processing-wait-secs", "0", "--no-verify-s3"]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if not raw.exists():
        return []
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        hot = any(k in f for f in frames for k in ("wefperf/load/", "wefperf/metrics.py", "PayloadPool.request"))
        if not hot and "Runner.run" not in frames[-1]:
            continue  # start-up, imports and idle threads are not the hot path
        total += int(n)
        leaf = re.sub(r"\s*\(.*?([\w/.]+\.py):\d+\)", r" (\1)", frames[-1]).strip()
        own[leaf] = own.get(leaf, 0) + int(n)
    top = sorted(own.items(), key=lambda kv: -kv[1])[:8]
    return [(100 * n / total, name) for name, n in top] if total else []


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_from(d: dict[str, object]) -> Run:
    sink = SinkCount(**d.pop("sink"))  # type: ignore[arg-type]
    return Run(sink=sink, **d)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="short runs to try the script (figures not meaningful)")
    p.add_argument("--conns", type=int, default=16, help="connections per client in the capacity runs")
    p.add_argument("--raw", default=None, metavar="PATH", help="also save the measurements as JSON here")
    p.add_argument("--report-only", default=None, metavar="PATH", help="rewrite the report from saved measurements")
    args = p.parse_args(argv)
    if args.report_only:
        saved = json.loads(Path(args.report_only).read_text())
        plan = Plan(**{**saved["plan"], "rates": tuple(saved["plan"]["rates"]),
                       "pacing_rates": tuple(saved["plan"].get("pacing_rates", Plan.pacing_rates))})
        runs = {k: [_run_from(d) for d in v] for k, v in saved["runs"].items()}
        profiles = {int(k): [(float(x[0]), str(x[1])) for x in v] for k, v in saved["profiles"].items()}
        summary = write_report(Path(args.out), plan, runs["capacity"], runs.get("scale", []), runs["rate"],
                               runs["memory"], runs["writes"], profiles, datetime.fromisoformat(saved["started"]), saved["took_s"],
                               saved.get("wsman", []), runs.get("pacing", []))
        print("\n".join(summary))
        return 0
    plan = (Plan(args.rounds, 2, 3, 2, 4, 2, args.conns, (10_000, 100_000, 500_000), pacing_secs=3) if args.quick
            else Plan(args.rounds, 8, 20, 10, 60, 5, args.conns, (10_000, 100_000, 500_000)))
    ensure_tools()
    # SIGTERM unwinds like Ctrl-C, so nginx and the running client are stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    started, t0 = datetime.now(timezone.utc), time.monotonic()
    sys.path.insert(0, str(ROOT / "src"))
    from wefperf.payload import build_pool

    with tempfile.TemporaryDirectory(prefix="wefperf-bench-") as tmp:
        workdir = Path(tmp)
        bodies: dict[int, Path] = {}
        for bs in BATCH_SIZES:
            bodies[bs] = workdir / f"body-{bs}.xml"
            bodies[bs].write_bytes(build_pool(run_id="bench", batch_size=bs, event_type="4624").body(0))
        nginx = Nginx(workdir)
        try:
            nginx.start()
            cap = capacity_phase(plan, nginx, workdir, bodies)
            scale = scale_phase(plan, workdir, bodies)
            rate = rate_phase(plan, nginx, workdir)
            pacing = pacing_phase(plan, nginx, workdir)
            mem = memory_phase(plan, nginx, workdir)
            writes = write_phase(plan, nginx, workdir)
            wsman = wsman_phase(plan)
            profiles = {bs: profile_wefperf(nginx, workdir, bs, plan.conns, min(plan.capacity_secs, 5))
                        for bs in BATCH_SIZES}
        finally:
            nginx.stop()
    took = time.monotonic() - t0
    if args.raw:
        Path(args.raw).parent.mkdir(parents=True, exist_ok=True)
        Path(args.raw).write_text(json.dumps({
            "plan": asdict(plan), "started": started.isoformat(), "took_s": took, "profiles": profiles,
            "runs": {"capacity": [asdict(r) for r in cap], "scale": [asdict(r) for r in scale], "rate": [asdict(r) for r in rate],
                     "pacing": [asdict(r) for r in pacing],
                     "memory": [asdict(r) for r in mem], "writes": [asdict(r) for r in writes]}, "wsman": wsman,
        }, indent=1))
    summary = write_report(Path(args.out), plan, cap, scale, rate, mem, writes, profiles, started, took, wsman,
                           pacing)
    print("\n".join(summary))
    print(f"bench: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
