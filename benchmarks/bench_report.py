"""docs/benchmarks.md from one run's measurements: every figure and verdict is computed here."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench_clients import ATTEMPTS, NOISY_CORES, QUIET_WAIT_S, Run, versions

GOAL_CAPACITY_VS_WRK = 1.0
GOAL_RATE_TOLERANCE = 0.005
GOAL_LAG_P99_MS = 2.0
GOAL_PEAK_RSS_MB = 150.0
GOAL_RSS_SAME_MB = 10.0  # "the same for both": within this much of each other
GOAL_VS_NAIVE = 20.0
# Pacing (section 2b): a 10 s run at 5,000 events/s in 10-event batches, start-up included.
GOAL_PACING_EPS = 5_000
GOAL_PACING_CPU_S = 2.0
PACING_BATCH = 10
# nginx has one worker: above this share of a core it could be what limits a client.
SINK_BUSY_LIMIT = 0.9

CLIENTS = ("wrk", "hey", "h2load", "locust", "wefperf fast", "wefperf aiohttp", "naive")
WRITE_MODES = ("join", "writelines", "static")
CLIENT_NAMES = {"locust": "Locust FastHttpUser"}


@dataclass(frozen=True)
class Plan:
    rounds: int
    capacity_secs: float
    rate_secs: float
    memory_short_secs: float
    memory_long_secs: float
    write_secs: float
    conns: int
    rates: tuple[int, ...]
    pacing_secs: float = 10.0
    pacing_rates: tuple[int, ...] = (GOAL_PACING_EPS, 10_000, 100_000)


@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values)) if values else cls(0.0, 0.0, 0.0)


def fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def stat_cell(s: Stat, digits: int = 0, unit: str = "") -> str:
    return f"{fmt(s.median, digits)}{unit} ({fmt(s.low, digits)}–{fmt(s.high, digits)})"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def by(runs: list[Run], client: str, batch_size: int | None = None) -> list[Run]:
    return [r for r in runs if r.client == client and (batch_size is None or r.batch_size == batch_size)]


def median_of(runs: list[Run], attr: str) -> float:
    return Stat.of([getattr(r, attr) for r in runs]).median


def machine() -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import uvloop

    return {
        "CPU": f"{model}, {os.cpu_count()} logical cores",
        "Kernel": platform.release(),
        "Python": f"{platform.python_version()} (uvloop {uvloop.__version__})",
        **versions(),
    }


class Report:
    """Collects lines and goals while the sections are written."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.goals: list[tuple[str, bool, str]] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def goal(self, name: str, ok: bool, value: str) -> None:
        self.goals.append((name, ok, value))


def write_report(out: Path, plan: Plan, cap: list[Run], scale: list[Run], rate: list[Run], mem: list[Run],
                 writes: list[Run], profiles: dict[int, list[tuple[float, str]]], started: datetime, took_s: float,
                 wsman: list[dict[str, float]] | None = None, pacing: list[Run] | None = None) -> list[str]:
    rep = Report()
    startup = {(r.client.split()[1], r.batch_size): r.client_cpu_s for r in cap if r.client.startswith("startup")}
    cap = [r for r in cap if not r.client.startswith("startup")]
    for r in cap:
        if r.client.startswith("wefperf"):
            r.startup_cpu_s = startup.get((r.client.split()[1], r.batch_size), 0.0)
    pacing = pacing or []
    for r in pacing:
        r.startup_cpu_s = startup.get(("fast", r.batch_size), 0.0)
    _head(rep, plan, cap, rate, mem + writes + scale, started, took_s)
    ratios = _capacity(rep, plan, cap, startup)
    _rate(rep, plan, rate)
    _pacing(rep, plan, pacing, cap)
    _memory(rep, plan, mem)
    _naive(rep, cap, ratios)
    _writes(rep, plan, writes)
    _scale(rep, plan, scale)
    _wsman(rep, wsman or [])
    rep.add("## Goals\n")
    rep.add("| goal | measured | result |")
    rep.add("|---|---|---|")
    for name, ok, value in rep.goals:
        rep.add(f"| {name} | {value} | {verdict(ok)} |")
    rep.add("")
    _analysis(rep, cap, ratios, profiles)
    missed = [g for g in rep.goals if not g[1]]
    if missed:
        rep.add("## What limits the missed goals, and what would close the gap\n")
        rep.add(missed_notes(plan, cap, rate, ratios, profiles, writes, scale, pacing, mem))
    else:
        rep.add("Every goal is met in this run.\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(rep.lines) + "\n" + _kept_sections(out))
    return [f"{'MET   ' if ok else 'MISSED'} {name}: {value}" for name, ok, value in rep.goals]


def _kept_sections(out: Path) -> str:
    """Sections other scripts wrote between their markers (benchmarks/soak_memory.py): kept as they were."""
    old = out.read_text() if out.exists() else ""
    begin, end = "<!-- soak-memory: begin -->", "<!-- soak-memory: end -->"
    if begin not in old or end not in old:
        return ""
    return "\n" + begin + old.split(begin, 1)[1].split(end, 1)[0] + end + "\n"


def _head(rep: Report, plan: Plan, cap: list[Run], rate: list[Run], mem: list[Run],
          started: datetime, took_s: float) -> None:
    add = rep.add
    add("# Benchmarks: wefperf beside wrk, hey, h2load, Locust and the old suite's client\n")
    add(f"Generated by `make bench` (`benchmarks/run.py`) on {started:%Y-%m-%d %H:%M} UTC in {took_s / 60:.1f} min. "
        "Every figure below comes from that run, but for the last section's, which says where its own come"
        " from (benchmarks/soak_memory.py); nothing in this file is typed in by hand.\n")
    add("## Machine\n")
    for k, v in machine().items():
        add(f"- **{k}**: {v}")
    runs = cap + rate + mem
    other = Stat.of([r.other_cores for r in runs])
    redone = sum(r.attempts > 1 for r in runs)
    add(f"- **Other load** (CPU used beside the client and nginx during the runs, in cores: other processes, "
        f"and kernel work charged to neither): median {other.median:.2f}, max {other.high:.2f}. This machine is "
        f"shared; on {os.cpu_count()} cores anything above ~0.1 takes CPU from the client or from nginx.\n")
    add("## Method\n")
    add("- **Sink**: nginx (Debian package) on 127.0.0.1 with one worker, started by the script with its own "
        "config (`benchmarks/nginx.conf.template`). It reads every request body whole into one buffer "
        "(`client_body_buffer_size 16m`; `mirror_request_body on` makes it read the body before anything else, "
        "the mirror subrequest goes to an internal location that answers 204 and is dropped) and then answers "
        "200. The former config answered with `return 200`, which drains the body through a 4 KiB buffer: it "
        "cost nginx more CPU per 1.6 MB request than the clients, so it measured nginx. nginx's own CPU per "
        f"request and its busy share of its one core are in every row below; above {SINK_BUSY_LIMIT:g} of a "
        "core it could be the limit. It logs one line per events request (`$msec $status $content_length`); "
        "the script checks with one POST that a body is read and logged with its length before it starts.")
    add("- **Rates are counted by nginx**: requests logged ÷ time between the first and last logged request, the "
        "same yardstick for every client. MB/s is request bodies (Content-Length) per second. Each client's own "
        "report is kept as a cross-check.")
    add(f"- **Clients**, all posting the identical 1,000- or 10-event batch body that wefperf builds for event "
        f"type 4624 on {plan.conns} keep-alive connections: wrk (`-t1 -c{plan.conns}`, `benchmarks/post.lua`); "
        f"hey (`-c {plan.conns} -cpus 1`, body from a file); h2load (`--h1 -t 1 -c {plan.conns}`, body from a "
        f"file); Locust (`benchmarks/locustfile.py`: FastHttpUser, one process, {plan.conns} users spawned at "
        "once, no wait time; installed by the script into `benchmarks/out/tools-venv`); wefperf via its CLI "
        f"(`wefperf run --concurrency {plan.conns}`, the fast sender and the aiohttp sender; it builds every "
        "batch's own markers, the others repeat one body); the naive client (`benchmarks/naive_client.py`: a "
        "synchronous loop that formats every event's XML per batch and posts it with a keep-alive "
        "`requests.Session`). Every tool but Locust is given one core's worth of threads, as wefperf uses one.")
    add(f"- **Rounds**: {plan.rounds}, with runs of {plan.capacity_secs:g} s (capacity), {plan.rate_secs:g} s (rate), "
        f"{plan.pacing_secs:g} s (pacing) "
        f"and {plan.memory_short_secs:g} s / {plan.memory_long_secs:g} s (memory), chosen to keep the whole "
        "benchmark near 20 minutes. In each round the clients take turns, so background load hits them alike. "
        "Cells show the median and, in brackets, the lowest and highest round.")
    add(f"- **Noise**: before each run the script waits up to {QUIET_WAIT_S:g} s for the machine to go quiet "
        f"(≤ {NOISY_CORES:g} cores busy); a run during which other load exceeded {NOISY_CORES:g} cores is run "
        f"again, {ATTEMPTS - 1} time at most, and the last attempt counts. Runs redone in this report: "
        f"{redone} of {len(runs)}.")
    add("- **CPU per request**: a process's user+system CPU time ÷ requests nginx logged; less sensitive "
        "to background load than a rate.\n")


def _capacity(rep: Report, plan: Plan, cap: list[Run], startup: dict[tuple[str, int], float]
              ) -> dict[tuple[str, int], Stat]:
    add = rep.add
    add(f"## 1. Capacity at unlimited rate ({plan.capacity_secs:g} s per run)\n")
    add("| batch | client | events/s | requests/s | MB/s | client CPU µs/request¹ | nginx CPU µs/request | "
        "nginx busy, cores² | × wrk events/s |")
    add("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios: dict[tuple[str, int], Stat] = {}
    for bs in (1000, 10):
        wrk_runs = by(cap, "wrk", bs)
        for client in CLIENTS:
            runs = by(cap, client, bs)
            if not runs:
                continue
            # Ratio per round (turns taken back to back), then the median of the ratios.
            ratio = Stat.of([r.eps / w.eps for r, w in zip(runs, wrk_runs) if w.eps])
            ratios[(client, bs)] = ratio
            add(f"| {bs:,} | {CLIENT_NAMES.get(client, client)} | {stat_cell(Stat.of([r.eps for r in runs]))} | "
                f"{stat_cell(Stat.of([r.rps for r in runs]))} | {stat_cell(Stat.of([r.mbps for r in runs]))} | "
                f"{fmt(median_of(runs, 'cpu_us_per_request'), 1)} | {fmt(median_of(runs, 'nginx_us_per_request'), 1)} | "
                f"{stat_cell(Stat.of([r.nginx_cores for r in runs]), 2)} | {stat_cell(ratio, 2, '×')} |")
    add("")
    add("¹ Client process CPU (user + system) ÷ requests. For wefperf, the CPU of a one-batch run (start-up and "
        "shutdown: " + ", ".join(f"{k[0]} {k[1]:,}-event {v:.2f} s" for k, v in sorted(startup.items())) +
        ") is taken out first; Locust's and the naive client's start-up is left in. hey's figure counts the CPU "
        "of all its goroutines, on however many threads Go ran them.")
    add("² nginx worker CPU ÷ the span in which it logged requests; its one worker can give 1.0 at most.\n")
    non_2xx = sum(r.sink.requests - r.sink.ok for r in cap)
    add(f"Non-2xx answers logged by nginx during the capacity runs: {non_2xx}.\n")
    own_check = [abs(r.own.get("events_per_s", 0) / r.eps - 1) for r in cap if r.client.startswith("wefperf") and r.eps]
    if own_check:
        add(f"Cross-check: wefperf's own events/s (from its results JSON) differs from nginx's count by at most "
            f"{100 * max(own_check):.1f} % (its figure includes connection set-up and the final drain).\n")
    for bs in (1000, 10):
        r = ratios[("wefperf fast", bs)]
        rep.goal(f"Capacity, {bs:,}-event batches: wefperf ≥ {GOAL_CAPACITY_VS_WRK:.1f}× wrk events/s",
                 r.median >= GOAL_CAPACITY_VS_WRK, f"{r.median:.2f}× (rounds {r.low:.2f}–{r.high:.2f})")
    busiest = max(cap, key=lambda r: r.nginx_cores)
    rep.goal(f"The sink is not the limit: nginx below {SINK_BUSY_LIMIT:g} of its core in every capacity run",
             busiest.nginx_cores < SINK_BUSY_LIMIT,
             f"max {busiest.nginx_cores:.2f} ({CLIENT_NAMES.get(busiest.client, busiest.client)}, "
             f"{busiest.batch_size:,}-event batches)")
    return ratios


def _rate(rep: Report, plan: Plan, rate: list[Run]) -> None:
    add = rep.add
    add(f"## 2. Rate accuracy ({plan.rate_secs:g} s per run, 1,000-event batches, `--profile target-500k` event mix)\n")
    add("| target events/s | achieved ÷ target (nginx) | achieved ÷ target (wefperf's report) | p99 schedule lag ms | "
        "other load, cores | requests nginx logged = wefperf's acknowledged batches = planned | goal |")
    add("|---:|---:|---:|---:|---:|---|---|")
    for target in plan.rates:
        runs = by(rate, f"rate {target}")
        acc = Stat.of([r.eps / target for r in runs])
        own = Stat.of([r.own["events_per_s"] / target for r in runs])
        lag = Stat.of([r.own["lag_p99_ms"] for r in runs])
        planned = int(target * plan.rate_secs // 1000)
        counts = ", ".join(f"{r.sink.requests:,} = {int(r.own['batches_ok']):,} = {planned:,}" for r in runs)
        counts_ok = all(r.sink.requests == r.own["batches_ok"] == planned for r in runs)
        acc_ok = all(abs(a - 1) <= GOAL_RATE_TOLERANCE for a in (acc.low, acc.high))
        lag_ok = lag.high <= GOAL_LAG_P99_MS
        add(f"| {target:,} | {stat_cell(acc, 4)} | {stat_cell(own, 4)} | {stat_cell(lag, 2)} | "
            f"{stat_cell(Stat.of([r.other_cores for r in runs]), 2)} | "
            f"{counts} {'(all match)' if counts_ok else '(**mismatch**)'} | rate {verdict(acc_ok)}, lag {verdict(lag_ok)} |")
        rep.goal(f"Rate {target:,} events/s: achieved within ±{100 * GOAL_RATE_TOLERANCE:.1f} % in every round",
                 acc_ok, f"{acc.low:.4f}–{acc.high:.4f}")
        rep.goal(f"Rate {target:,} events/s: p99 schedule lag ≤ {GOAL_LAG_P99_MS:g} ms in every round",
                 lag_ok, f"{lag.low:.2f}–{lag.high:.2f} ms")
        rep.goal(f"Rate {target:,} events/s: nginx's request count matches wefperf's and the plan", counts_ok,
                 "all rounds" if counts_ok else "see table")
    add("\nwefperf's own figure divides by its whole load phase, including the last reply, so it runs a hair "
        "above 1 at low rates (N batches span N−1 intervals); nginx's figure uses the span between the first "
        "and last request.\n")


def _pacing(rep: Report, plan: Plan, pacing: list[Run], cap: list[Run]) -> None:
    """Section 2b: the client's CPU at fixed rates, beside the unlimited rate's (section 1)."""
    if not pacing:
        return
    add = rep.add
    add(f"## 2b. What pacing costs ({plan.pacing_secs:g} s per run, {PACING_BATCH}-event batches, fast sender, "
        "default concurrency)\n")
    add("Every sender waits for its batch's due time on one shared timer (`load/pacer.py`), so between due times "
        "the event loop sleeps in the kernel. The CPU per request of a paced run, beside the unlimited run's, "
        "is what pacing costs; the whole run's CPU, start-up included, is the goal's figure. Requests as nginx "
        "logged them.\n")
    add("| target events/s | requests/s (nginx) | achieved ÷ target (nginx) | client CPU s, whole run | "
        "client CPU µs/request¹ | × unlimited's µs/request | p99 schedule lag ms | other load, cores |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|")
    unlimited = by(cap, "wefperf fast", PACING_BATCH)
    free_us = median_of(unlimited, "cpu_us_per_request") if unlimited else 0.0
    for target in plan.pacing_rates:
        runs = by(pacing, f"pacing {target}")
        if not runs:
            continue
        per_req = Stat.of([r.cpu_us_per_request for r in runs])
        vs = Stat.of([r.cpu_us_per_request / free_us for r in runs]) if free_us else None
        add(f"| {target:,} | {stat_cell(Stat.of([r.rps for r in runs]))} | {stat_cell(Stat.of([r.eps / target for r in runs]), 4)} | "
            f"{stat_cell(Stat.of([r.client_cpu_s for r in runs]), 2)} | {stat_cell(per_req, 1)} | "
            f"{stat_cell(vs, 1, '×') if vs else '–'} | {stat_cell(Stat.of([r.own['lag_p99_ms'] for r in runs]), 2)} | "
            f"{stat_cell(Stat.of([r.other_cores for r in runs]), 2)} |")
    if unlimited:
        add(f"| unlimited (section 1) | {stat_cell(Stat.of([r.rps for r in unlimited]))} | – | – | "
            f"{fmt(free_us, 1)} | 1.0× | – | {stat_cell(Stat.of([r.other_cores for r in unlimited]), 2)} |")
    add("")
    add("¹ The whole run's CPU less the start-up and shutdown of a one-batch run (section 1's footnote), ÷ "
        "requests. At a low rate the loop's fixed work per second (the progress line, the stats sampler, the "
        "per-second timeline) is shared by few requests, so the figure is highest there.\n")
    goal = by(pacing, f"pacing {GOAL_PACING_EPS}")
    if goal:
        cpu = Stat.of([r.client_cpu_s for r in goal])
        lag = Stat.of([r.own["lag_p99_ms"] for r in goal])
        rep.goal(f"Pacing: {GOAL_PACING_EPS:,} events/s in {PACING_BATCH}-event batches for {plan.pacing_secs:g} s "
                 f"uses ≤ {GOAL_PACING_CPU_S:g} CPU-seconds in all (start-up included), every round",
                 cpu.high <= GOAL_PACING_CPU_S, f"{cpu.low:.2f}–{cpu.high:.2f} s")
        rep.goal(f"Pacing: {GOAL_PACING_EPS:,} events/s in {PACING_BATCH}-event batches: p99 schedule lag ≤ "
                 f"{GOAL_LAG_P99_MS:g} ms, every round", lag.high <= GOAL_LAG_P99_MS, f"{lag.low:.2f}–{lag.high:.2f} ms")


def _memory(rep: Report, plan: Plan, mem: list[Run]) -> None:
    add = rep.add
    add("## 3. Memory at 500,000 events/s\n")
    short = Stat.of([r.peak_rss_mb for r in by(mem, f"memory {plan.memory_short_secs:g}")])
    long = Stat.of([r.peak_rss_mb for r in by(mem, f"memory {plan.memory_long_secs:g}")])
    add("Peak RSS is the wefperf process's own high-water mark (VmHWM, read every 10 ms until it exits). Not"
        " `ru_maxrss`: on Linux a child's keeps the spawning process's high-water mark across exec, which once"
        " reported this benchmark's own 207 MB as wefperf's.\n")
    add("Beside it, the RSS the process holds: the median of its VmRSS sampled ten times a second, 5–10 s into"
        " the run and over its last 5 s. A leak shows as the second above the first; a peak lasting"
        " milliseconds shows only in the peak.\n")
    add("| duration | peak RSS MB (wefperf process) | RSS held 5–10 s in (MB) | RSS held, last 5 s (MB) |"
        " achieved events/s (nginx) |")
    add("|---:|---:|---:|---:|---:|")
    for secs, s in ((plan.memory_short_secs, short), (plan.memory_long_secs, long)):
        runs = by(mem, f"memory {secs:g}")
        eps = Stat.of([r.eps for r in runs])
        early, late = Stat.of([r.rss_early_mb for r in runs]), Stat.of([r.rss_late_mb for r in runs])
        add(f"| {secs:g} s | {stat_cell(s, 1)} | {stat_cell(early, 1)} | {stat_cell(late, 1)} | {stat_cell(eps)} |")
    add("")
    rep.goal(f"Peak RSS ≤ {GOAL_PEAK_RSS_MB:g} MB at 500k events/s", max(short.high, long.high) <= GOAL_PEAK_RSS_MB,
             f"max {max(short.high, long.high):.1f} MB")
    rep.goal(f"Peak RSS the same for {plan.memory_long_secs:g} s and {plan.memory_short_secs:g} s "
             f"(within {GOAL_RSS_SAME_MB:g} MB)", abs(long.median - short.median) <= GOAL_RSS_SAME_MB,
             f"{long.median:.1f} vs {short.median:.1f} MB")
    longs = by(mem, f"memory {plan.memory_long_secs:g}")
    if any(r.rss_late_mb for r in longs):  # measurements saved before the samples were taken have none
        growth = max(r.rss_late_mb - r.rss_early_mb for r in longs)
        rep.goal(f"RSS held does not grow: the last 5 s of the {plan.memory_long_secs:g} s run within "
                 f"{GOAL_RSS_SAME_MB:g} MB of 5–10 s in, every round", growth <= GOAL_RSS_SAME_MB,
                 f"at most {growth:+.1f} MB")


def _naive(rep: Report, cap: list[Run], ratios: dict[tuple[str, int], Stat]) -> None:
    rep.add("## 4. The old client\n")
    naive = ratios.get(("naive", 1000))
    fast = ratios[("wefperf fast", 1000)]
    vs_naive = Stat.of([f.eps / n.eps for f, n in zip(by(cap, "wefperf fast", 1000), by(cap, "naive", 1000)) if n.eps])
    rep.add(f"With 1,000-event batches wefperf (fast sender) sends {stat_cell(vs_naive, 1, '×')} the naive client's "
            f"events/s (naive: {naive.median if naive else 0:.3f}× wrk, wefperf: {fast.median:.2f}× wrk).\n")
    rep.goal(f"wefperf ÷ naive client ≥ {GOAL_VS_NAIVE:g}× (1,000-event batches)", vs_naive.median >= GOAL_VS_NAIVE,
             f"{vs_naive.median:.1f}×")


def _writes(rep: Report, plan: Plan, writes: list[Run]) -> None:
    """Section 5: what the per-event markers cost, and whether avoiding the copy of the body pays."""
    add = rep.add
    add(f"## 5. What the per-event markers cost: three ways to write a request ({plan.write_secs:g} s per run)\n")
    add("`benchmarks/write_paths.py` sends requests three ways, with everything else equal (uvloop, "
        f"{plan.conns} keep-alive connections, one request at a time each): "
        "**join** copies the pool's parts and a fresh batch number into one buffer and writes it (what the fast "
        "sender does); **writelines** hands the transport the parts and the batch number as a list, which uvloop "
        "writes with writev straight from the pool's bytes, so nothing is copied in user space; **static** writes "
        "one constant body again and again, as wrk does. Only the first two give every event a unique marker, "
        "which the S3 accounting needs; the gap between *join* and *static* is what the markers cost. CPU is the "
        "sending phase's alone (start-up excluded).\n")
    add("| batch | write path | buffers per request | requests/s | client user µs/request | client system µs/request "
        "| nginx CPU µs/request | client + nginx µs/request |")
    add("|---:|---|---:|---:|---:|---:|---:|---:|")
    totals: dict[tuple[int, str], float] = {}
    for bs in (1000, 10):
        for mode in WRITE_MODES:
            runs = by(writes, f"write {mode}", bs)
            if not runs:
                continue
            user = Stat.of([1e6 * r.own["user_s"] / r.own["requests"] for r in runs])
            system = Stat.of([1e6 * r.own["sys_s"] / r.own["requests"] for r in runs])
            both = Stat.of([1e6 * (r.own["user_s"] + r.own["sys_s"]) / r.own["requests"] + r.nginx_us_per_request
                            for r in runs])
            totals[(bs, mode)] = both.median
            add(f"| {bs:,} | {mode} | {runs[0].own['buffers']:,.0f} | {stat_cell(Stat.of([r.rps for r in runs]))} | "
                f"{stat_cell(user, 1)} | {stat_cell(system, 1)} | "
                f"{stat_cell(Stat.of([r.nginx_us_per_request for r in runs]), 1)} | {stat_cell(both, 1)} |")
    add("")
    for bs in (1000, 10):
        if (bs, "join") in totals and (bs, "writelines") in totals:
            j, w = totals[(bs, "join")], totals[(bs, "writelines")]
            cheaper = "join" if j <= w else "writelines"
            add(f"- {bs:,}-event requests: **{cheaper}** is cheaper, by {abs(w - j):.0f} µs of client and nginx CPU per "
                f"request (medians: join {j:.0f}, writelines {w:.0f}).")
        if (bs, "join") in totals and (bs, "static") in totals:
            j, c = totals[(bs, "join")], totals[(bs, "static")]
            add(f"- {bs:,}-event requests: unique markers cost {j - c:.0f} µs of client and nginx CPU per request "
                f"against a constant body ({100 * (j - c) / c:.0f} %; medians: join {j:.0f}, static {c:.0f}).")
    add("")


SCALE_CLIENTS = (("scale wrk -t2", "wrk -t2"), ("scale wefperf x1", "wefperf, 1 process"),
                 ("scale wefperf x2", "wefperf `--processes 2`"))


def _scale(rep: Report, plan: Plan, scale: list[Run]) -> None:
    """Section 6: more than one core: two sender processes beside wrk's two threads."""
    if not scale:
        return
    add = rep.add
    add(f"## 6. Two processes: `--processes 2` beside `wrk -t2` ({plan.capacity_secs:g} s per run)\n")
    add(f"The same bodies as section 1, on an nginx with **two** workers (one could not keep up with two clients' "
        f"worth of small requests). wrk runs `-t2 -c{2 * plan.conns}`; wefperf runs `--processes 2` with "
        f"{2 * plan.conns} connections in all, and, for comparison, one process with {plan.conns}. On this "
        f"{os.cpu_count()}-core machine the client and nginx share the cores, so this shows where adding "
        "processes stops paying, not a second machine's worth.\n")
    add("| batch | client | events/s | requests/s | client CPU, cores | nginx busy, cores | × wrk -t2 | × one process |")
    add("|---:|---|---:|---:|---:|---:|---:|---:|")
    ratios: dict[tuple[str, int], Stat] = {}
    for bs in (10, 1000):
        wrk, one = by(scale, "scale wrk -t2", bs), by(scale, "scale wefperf x1", bs)
        for client, name in SCALE_CLIENTS:
            runs = by(scale, client, bs)
            if not runs:
                continue
            vs_wrk = Stat.of([r.eps / w.eps for r, w in zip(runs, wrk) if w.eps])
            vs_one = Stat.of([r.eps / o.eps for r, o in zip(runs, one) if o.eps])
            ratios[(client, bs)], ratios[(client + " /1", bs)] = vs_wrk, vs_one
            cores = Stat.of([r.client_cpu_s / r.wall_s for r in runs if r.wall_s])
            add(f"| {bs:,} | {name} | {stat_cell(Stat.of([r.eps for r in runs]))} | "
                f"{stat_cell(Stat.of([r.rps for r in runs]))} | {stat_cell(cores, 2)} | "
                f"{stat_cell(Stat.of([r.nginx_cores for r in runs]), 2)} | {stat_cell(vs_wrk, 2, '×')} | "
                f"{stat_cell(vs_one, 2, '×')} |")
    add("")
    if ("scale wefperf x2", 10) in ratios:
        r = ratios[("scale wefperf x2", 10)]
        rep.goal(f"`--processes 2`, 10-event batches: ≥ {GOAL_CAPACITY_VS_WRK:.1f}× `wrk -t2 -c{2 * plan.conns}`",
                 r.median >= GOAL_CAPACITY_VS_WRK, f"{r.median:.2f}× (rounds {r.low:.2f}–{r.high:.2f})")
    if ("scale wefperf x2 /1", 1000) in ratios:
        r = ratios[("scale wefperf x2 /1", 1000)]
        rep.goal("`--processes 2`, 1,000-event batches: not slower than one process",
                 r.median >= 1.0, f"{r.median:.2f}× one process (rounds {r.low:.2f}–{r.high:.2f})")


def _wsman(rep: Report, rows: list[dict[str, float]]) -> None:
    """Section 7: what speaking real WS-Management costs the client per request."""
    if not rows:
        return
    add = rep.add
    add("## 7. WS-Management beside the batch body: the client's CPU per request\n")
    add("`benchmarks/wsman_cost.py` times the per-request part of building one delivery of a simulated host "
        "(the pieces are made before the clock in both cases): for the batch protocol, patching the batch's "
        "record ids, host name and batch number into the pre-built body and joining it; for `--protocol wsman`, "
        "the same for a UTF-16LE Events envelope (markers patched in UTF-16 code units) with its SOAP header "
        "(MessageID, bookmark, ReferenceParameters). No network: this is the client's own cost, the part that "
        "decides how many hosts one process can simulate. Medians of the rounds, with the spread.\n")
    add("| events per delivery | batch body µs | wsman envelope µs | wsman ÷ batch | batch bytes | wsman bytes |")
    add("|---:|---:|---:|---:|---:|---:|")
    for k in sorted({int(r["events"]) for r in rows}):
        mine = [r for r in rows if int(r["events"]) == k]
        b, w = Stat.of([r["batch_us"] for r in mine]), Stat.of([r["wsman_us"] for r in mine])
        ratio = Stat.of([r["wsman_us"] / r["batch_us"] for r in mine])
        add(f"| {k:,} | {stat_cell(b, 1)} | {stat_cell(w, 1)} | {stat_cell(ratio, 2, '×')} | "
            f"{int(mine[0]['batch_bytes']):,} | {int(mine[0]['wsman_bytes']):,} |")
    add("")
    add("UTF-16 doubles the bytes of every event, and each envelope carries its own SOAP header; the per-event "
        "work stays out of the request path in both cases, so the cost per request grows with the bytes, not "
        "with Python work per event.\n")


def _analysis(rep: Report, cap: list[Run], ratios: dict[tuple[str, int], Stat],
              profiles: dict[int, list[tuple[float, str]]]) -> None:
    add = rep.add
    add("## Analysis\n")
    for bs in (1000, 10):
        others = ", ".join(f"{CLIENT_NAMES.get(c, c)} {ratios[(c, bs)].median:.2f}×"
                           for c in ("hey", "h2load", "locust", "wefperf aiohttp") if (c, bs) in ratios)
        cpu = ", ".join(f"{CLIENT_NAMES.get(c, c)} {median_of(by(cap, c, bs), 'cpu_us_per_request'):.0f} µs"
                        for c in CLIENTS if by(cap, c, bs) and c != "naive")
        add(f"- **{bs:,}-event batches**: the fast sender reaches {ratios[('wefperf fast', bs)].median:.2f}× wrk "
            f"({others}). Client CPU per request: {cpu}. nginx spends "
            f"{median_of(by(cap, 'wrk', bs), 'nginx_us_per_request'):.0f} µs per request with wrk and "
            f"{median_of(by(cap, 'wefperf fast', bs), 'nginx_us_per_request'):.0f} µs with wefperf fast.")
    add("- **How the fast sender writes**: a request under 64 KB is the pool's pre-built pieces joined around the "
        "10-digit batch number into one buffer (one C-level copy); from 64 KB the pieces and the batch number go "
        "to the transport unjoined (`writelines`, which uvloop turns into writev from the pool's own bytes), so a "
        "1,000-event body is never copied in user space (section 5 compares the two ways). When every channel is "
        "mid-request (a run at full speed) the request goes in one call; when some channel is idle, a batch may "
        "fall due while this one writes, so the request goes in slices of at most 256 KiB (memoryviews of one "
        "joined buffer), the next only after the kernel has taken the last and the loop has had a turn.")
    add("- **Why two senders**: `--sender auto` (the default) picks the fast sender for `http://` and aiohttp for "
        "`https://`. The fast sender writes pre-framed requests on one keep-alive connection per worker and parses "
        "replies with httptools; aiohttp stays for what it does that the fast path does not: TLS, proxies "
        "(`trust_env`) and redirects. Both are exercised by `tests/test_senders.py`.")
    for bs, prof in profiles.items():
        if prof:
            add(f"- **Where wefperf's CPU goes** ({bs:,}-event batches, unlimited rate, py-spy, share of samples in the "
                "event loop (Runner.run is uvloop's own C code: polling, socket I/O), by innermost frame): "
                + "; ".join(f"{name} {pct:.0f} %" for pct, name in prof) + ".")
    add("")


def write_cost(writes: list[Run], bs: int, mode: str) -> float | None:
    """Median client + nginx CPU µs per request of one write path (section 5), None if not measured."""
    runs = by(writes, f"write {mode}", bs)
    if not runs:
        return None
    return Stat.of([1e6 * (r.own["user_s"] + r.own["sys_s"]) / r.own["requests"] + r.nginx_us_per_request
                    for r in runs]).median


def missed_notes(plan: Plan, cap: list[Run], rate: list[Run], ratios: dict[tuple[str, int], Stat],
                 profiles: dict[int, list[tuple[float, str]]], writes: list[Run] | None = None,
                 scale: list[Run] | None = None, pacing: list[Run] | None = None,
                 mem: list[Run] | None = None) -> str:
    """Explanations for missed goals, built from this run's measurements."""
    notes: list[str] = []
    for bs in (1000, 10):
        if ratios[("wefperf fast", bs)].median >= GOAL_CAPACITY_VS_WRK:
            continue
        wrk, fast = by(cap, "wrk", bs), by(cap, "wefperf fast", bs)
        text = (f"- **Capacity, {bs:,}-event batches** ({ratios[('wefperf fast', bs)].median:.2f}× wrk). On this "
                f"{os.cpu_count()}-core machine the client, nginx and everything else share the cores, so the client's "
                f"CPU per request decides the rate: wefperf spends {median_of(fast, 'cpu_us_per_request'):.0f} µs per "
                f"request, wrk {median_of(wrk, 'cpu_us_per_request'):.0f} µs; other load during these runs: wrk "
                f"{median_of(wrk, 'other_cores'):.2f} cores, wefperf {median_of(fast, 'other_cores'):.2f} (medians). ")
        if bs >= 100:
            join, lines, static = (write_cost(writes or [], bs, m) for m in ("join", "writelines", "static"))
            text += ("wrk writes one constant buffer again and again; wefperf gives each of the "
                     f"{bs:,} events in a request its own marker (run id, batch, index), without which the S3 "
                     "accounting could not find lost or duplicated events. ")
            if join is not None and static is not None and lines is not None:
                text += (f"Section 5 measures it: a constant body costs {static:.0f} µs of client and nginx CPU "
                         f"per request, the same requests with fresh markers {join:.0f} µs joined and "
                         f"{lines:.0f} µs as writev from the unjoined pieces ({2 * bs + 1:,} buffers), which is how "
                         "the fast sender writes a request from 64 KB. ")
            text += ("The rest is the per-request work (the httptools callback, the claim, the "
                     "recorder). To close it on one machine: `--processes 2` (section 6), where a core is free.")
        else:
            text += ("Each request is small, so the fixed cost per request dominates. No task wakes and no "
                     "future is made per request any more (a clean reply's callback records it, claims the next "
                     "batch and writes it on the same connection); what is left in Python is the httptools "
                     "callback, the claim, the two recorder calls (sent, acknowledged) and the join of the "
                     "request, beside the write, read and epoll system calls wrk also makes, one of each per "
                     "request. To close it: keep several requests in flight per connection (HTTP pipelining, "
                     "which Windows does not do) so one read serves many replies, or `--processes N` (section "
                     "6), one sender process per free core.")
        notes.append(text)
    lagging = [t for t in plan.rates if Stat.of([r.own["lag_p99_ms"] for r in by(rate, f"rate {t}")]).high > GOAL_LAG_P99_MS]
    if lagging:
        parts = []
        for t in lagging:
            runs = by(rate, f"rate {t}")
            worst = max(runs, key=lambda r: r.own["lag_p99_ms"])
            calm = min(runs, key=lambda r: r.own["lag_p99_ms"])
            parts.append(f"{t:,}: p99 {calm.own['lag_p99_ms']:.2f} ms with {calm.other_cores:.2f} cores of other "
                         f"load, {worst.own['lag_p99_ms']:.2f} ms with {worst.other_cores:.2f}")
        notes.append(
            "- **p99 schedule lag** (" + "; ".join(parts) + "). wefperf runs one event loop; a batch goes late "
            "when that loop is off the CPU when the batch falls due, or busy. The loop's own share is bounded: "
            "while other senders are idle a request is written in slices of at most 256 KiB, so a due batch waits "
            "behind one slice, not a 1.6 MB body. The senders wait on one timer (`load/pacer.py`) that libuv keeps "
            "in whole milliseconds: it releases every batch due within a millisecond of its firing, so on a quiet "
            "loop a batch goes within about half a millisecond of its time either way, and the loop sleeps in the "
            "kernel in between. What is left is the scheduler: when other processes want the "
            f"{os.cpu_count()} cores, wefperf can be off the CPU for a time slice of a few milliseconds when a batch "
            "falls due. To close it: run on an otherwise idle machine, or pin wefperf and the server to separate "
            "cores (`taskset`).")
    pacing_runs = by(pacing or [], f"pacing {GOAL_PACING_EPS}")
    if pacing_runs and max(r.client_cpu_s for r in pacing_runs) > GOAL_PACING_CPU_S:
        worst = max(pacing_runs, key=lambda r: r.client_cpu_s)
        notes.append(
            f"- **Pacing CPU** ({worst.client_cpu_s:.2f} s in the costliest round, of which start-up and shutdown "
            f"{worst.startup_cpu_s:.2f} s, with {worst.other_cores:.2f} cores of other load): the rest is per "
            "request (the write, the reply's parse, the recorder) and per timer firing; section 2b's CPU per "
            "request shows which grew.")
    rates_off = [t for t in plan.rates
                 if any(abs(r.eps / t - 1) > GOAL_RATE_TOLERANCE for r in by(rate, f"rate {t}"))]
    if rates_off:
        notes.append("- **Rate accuracy** at " + ", ".join(f"{t:,}" for t in rates_off) + " events/s: the open-model "
                     "schedule never slows down, so a shortfall means the sender fell behind the plan (see the lag "
                     "column) and caught up later; the causes and remedies are those of the lag above.")
    two, wrk2 = by(scale or [], "scale wefperf x2", 10), by(scale or [], "scale wrk -t2", 10)
    if two and wrk2 and Stat.of([t.eps / w.eps for t, w in zip(two, wrk2) if w.eps]).median < GOAL_CAPACITY_VS_WRK:
        def cores(runs: list[Run]) -> float:
            return Stat.of([r.client_cpu_s / r.wall_s for r in runs if r.wall_s]).median
        notes.append(
            f"- **`--processes 2`, 10-event batches**. Two sender processes, their parent and nginx's two workers "
            f"share {os.cpu_count()} cores: the two processes together got {cores(two):.2f} cores and nginx "
            f"{median_of(two, 'nginx_cores'):.2f}, so a second process found no free core to use; wrk -t2 got "
            f"{cores(wrk2):.2f} cores and spends less of it per request (section 1). Where each process has a "
            "core of its own (a bigger machine, or pods on several nodes), processes add up as section 6's "
            "1,000-event rows show.")
    busy_sink = sorted({(r.batch_size, r.client) for r in cap if r.nginx_cores >= SINK_BUSY_LIMIT})
    if busy_sink:
        which = ", ".join(f"{CLIENT_NAMES.get(c, c)} at {bs:,}-event batches" for bs, c in busy_sink)
        notes.append(f"- **Sink**: nginx's one worker reached {SINK_BUSY_LIMIT:g} of its core or more with {which}: "
                     "there nginx, not the client, set the rate, so that client's figure is the sink's ceiling and "
                     "a ratio against it compares wefperf with the sink. On 2 cores a second nginx worker would "
                     "take the CPU the client needs; a faster sink needs a bigger machine.")
    if mem:
        longs = by(mem, f"memory {plan.memory_long_secs:g}")
        shorts = by(mem, f"memory {plan.memory_short_secs:g}")
        long_peak = Stat.of([r.peak_rss_mb for r in longs]).median
        short_peak = Stat.of([r.peak_rss_mb for r in shorts]).median
        growth = max((r.rss_late_mb - r.rss_early_mb for r in longs), default=0.0)
        if long_peak - short_peak > GOAL_RSS_SAME_MB and any(r.rss_late_mb for r in longs):
            held = (f"{Stat.of([r.rss_early_mb for r in longs]).median:.1f} MB 5–10 s in and "
                    f"{Stat.of([r.rss_late_mb for r in longs]).median:.1f} MB in its last 5 s")
            if growth <= GOAL_RSS_SAME_MB:
                notes.append(f"- **Peak RSS, {plan.memory_long_secs:g} s against {plan.memory_short_secs:g} s** "
                             f"({long_peak:.1f} vs {short_peak:.1f} MB): the {plan.memory_long_secs:g} s run held "
                             f"{held}, so its higher peak is brief, not held: VmHWM keeps a peak however short, "
                             "and a longer run meets more of them; the process does not grow. What the spike holds, this benchmark does not say (one candidate: "
                             "requests the kernel could not take yet, waiting in the sender's buffers, up to one "
                             "per connection).")
            else:
                notes.append(f"- **RSS grows with the run**: the {plan.memory_long_secs:g} s run held {held}.")
        peak = max(r.peak_rss_mb for r in mem)
        if peak > GOAL_PEAK_RSS_MB:
            notes.append(f"- **Peak RSS** ({peak:.1f} MB, goal {GOAL_PEAK_RSS_MB:g} MB): the same at "
                         f"{plan.memory_short_secs:g} s and {plan.memory_long_secs:g} s, so it is reached in the first "
                         "seconds and does not grow with the run (no leak); this benchmark does not say which "
                         "start-up allocation raised it above the goal.")
    return "\n".join(notes) + "\n"
