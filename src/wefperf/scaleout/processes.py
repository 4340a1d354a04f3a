"""`--processes N`: one run as N segment processes on this machine, merged into one result.

The parent gives every child the same settings, run id, seed and start time, and a segment
i/N; children print their progress as JSON lines on stdout, which the parent merges into one
view of the run: the live view on a terminal, else the plain progress line every
PERF_TEST_PROGRESS_SECS; the children's health and baseline lines are shown once. When they are done the parent merges their results files (histograms merged),
judges the thresholds on the merged result and runs the S3 check once for the whole run.
Children run in their own process group, so a Ctrl-C reaches them once, from the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ..config.loading import GIVEN_ENV
from ..config.settings import ENV_NAMES, Settings
from ..model import ExitCode, RunResult, Snapshot
from ..payload import new_run_id
from ..runner.preflight import check_s3
from ..runner.reporter import Reporter, RunReporter, progress_info
from ..runner.segments import shared_seed
from .merge import MergedRun, rejudge
from .progress_wire import merged_snapshot, snapshot_to_wire
from .shards import Shard, ShardError

# Children print lines starting with this, then one JSON object (see ProgressPrinter).
PROGRESS_PREFIX = "@wefperf-progress "
# ... and the lines before their load a user wants to see once (health, baseline), after this.
LINE_PREFIX = "@wefperf-line "
_FORWARDED = ("WEF server is healthy", "Baseline event count: ")
PROGRESS_ENV = "WEFPERF_PROGRESS_JSON"
# Time the children get to build their payload and pass the health check before the plan starts.
START_MARGIN_S = 2.0
# Settings the parent sets itself for every child.
_CHILD_FIXED = {"segment", "segments", "run_id", "start_at", "processes", "results_path", "results_dir",
                "report_path", "no_live", "verify_s3", "seed"}


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as its environment variable: a child rebuilds exactly these settings."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        if name in _CHILD_FIXED:
            continue
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif name == "stages":
            text = ",".join(f"{s.duration_s!r}:{s.target_eps!r}" for s in value)
        elif name == "thresholds":
            text = ",".join(f"{k}={v!r}" for k, v in value.items())
        else:
            text = str(value)
        env[ENV_NAMES[name]] = text
    env[GIVEN_ENV] = ",".join(sorted(settings.given))  # the children's variables are not all the user's
    return env


@dataclass
class Child:
    index: int
    count: int
    results: Path
    proc: asyncio.subprocess.Process | None = None
    failed_to_start: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        pid = f", pid {self.proc.pid}" if self.proc is not None else ""
        return f"segment {self.index} of {self.count}{pid}"


async def run_processes(
    settings: Settings, *, reporter: RunReporter, stop: asyncio.Event, profile: str | None,
) -> tuple[RunResult, bool]:
    """Run the children and merge their results: (the merged result, interrupted), shown by the reporter.

    The S3 buckets the run needs are checked first: a wrong one is refused (exit 2) before any child starts.
    """
    procs = settings.process_count
    # Within a segment i/S (a pod of an Indexed Job), child j runs segment i + S*j of S*P: together
    # they send exactly segment i/S, and each stores its own shard for `wefperf merge`.
    outer, outer_count = settings.segment_of
    count = outer_count * procs
    segments = [outer + outer_count * j for j in range(procs)]
    run_id = settings.run_id or new_run_id()
    seed = settings.seed or shared_seed(run_id)
    reporter.banner(settings, run_id)
    from ..runner.beside import unless_stopped
    from ..runner.outcome import empty_result, refused_result

    checked = await unless_stopped(check_s3(settings), stop)
    if checked is None:
        reporter.line("Interrupted while checking S3: nothing was sent")
        return empty_result(settings, profile, "checking S3"), True
    if checked.problem:
        reporter.error(f"wefperf: configuration error: {checked.problem}")
        return refused_result(settings, profile, run_id, checked.problem), False
    start_at = settings.start_at or (time.time() + START_MARGIN_S)  # after the check, which may take seconds
    names = ", ".join(f"{i}/{count}" for i in segments)
    reporter.line(f"Processes: {procs} (segments {names}; one run id, plan start at {start_at:.3f});"
                  " the results below are merged")
    for line in checked.checked:
        reporter.line(line)
    base = {k: v for k, v in os.environ.items()
            if k not in ("JOB_COMPLETION_INDEX", "PERF_TEST_PROFILE") and k.upper() not in _fixed_env()}
    base.update(settings_env(settings))
    with tempfile.TemporaryDirectory(prefix="wefperf-processes-") as folder:
        children = [Child(i, count, Path(folder) / f"segment-{i}-of-{count}.json") for i in segments]
        for child in children:
            env = {**base, ENV_NAMES["segment"]: f"{child.index}/{count}", ENV_NAMES["run_id"]: run_id,
                   ENV_NAMES["start_at"]: repr(start_at), ENV_NAMES["seed"]: str(seed),
                   ENV_NAMES["processes"]: "1", ENV_NAMES["results_path"]: str(child.results),
                   ENV_NAMES["verify_s3"]: "false", ENV_NAMES["no_live"]: "true", PROGRESS_ENV: "1"}
            try:
                child.proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "wefperf", "run", env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
                )
            except OSError as exc:
                child.failed_to_start = f"could not start: {exc.strerror or exc}"
        forwarded = asyncio.ensure_future(_forward_stop(stop, children))
        view = _View(children, reporter, settings)
        shown = asyncio.ensure_future(view.show())
        try:
            await asyncio.gather(*(_watch_child(c, view) for c in children if c.proc is not None))
        except asyncio.CancelledError:
            # A second Ctrl-C: the children get their second one too (they give up on the drain).
            _signal_all(children)
            raise
        finally:
            forwarded.cancel()
            shown.cancel()
            view.end()
        interrupted = stop.is_set()
        shards, problems = _collect(children)
        merged = _merged(settings, shards, profile)
    if merged is None:
        from ..runner.outcome import empty_result

        result = _with_problems(empty_result(settings, profile, "running the segment processes"), problems)
        reporter.results(result)
        return result, interrupted
    result = _with_problems(await _after_load(settings, merged, problems, reporter, stop, interrupted), problems)
    reporter.results(result)
    return result, stop.is_set()


def _fixed_env() -> set[str]:
    return {ENV_NAMES[name].upper() for name in _CHILD_FIXED} | {"PERF_TEST_SHARD_RESULTS"}


async def _forward_stop(stop: asyncio.Event, children: list[Child]) -> None:
    """Ctrl-C or SIGTERM on the parent: the same signal, once, to every child still running."""
    await stop.wait()
    _signal_all(children)


def _signal_all(children: list[Child]) -> None:
    for child in children:
        if child.proc is not None and child.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGINT)


async def _watch_child(child: Child, view: _View) -> None:
    proc = child.proc
    assert proc is not None and proc.stdout is not None and proc.stderr is not None

    async def out() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            if text.startswith(PROGRESS_PREFIX):
                with contextlib.suppress(ValueError):
                    child.progress = json.loads(text[len(PROGRESS_PREFIX):])
            elif text.startswith(LINE_PREFIX):
                view.once(text[len(LINE_PREFIX):])

    async def err() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            child.stderr_tail = (child.stderr_tail + [text])[-5:]
            view.reporter.error(f"[segment {child.index}/{child.count}] {text}")

    await asyncio.gather(out(), err())
    await proc.wait()


class _View:
    """What the parent shows while its children send: their lines before the load once each, then
    their snapshots merged into one, fed to the live view each second or printed as the plain
    progress line every PERF_TEST_PROGRESS_SECS, as a one-process run shows its own."""

    def __init__(self, children: list[Child], reporter: RunReporter, settings: Settings) -> None:
        self.children, self.reporter, self.settings = children, reporter, settings
        self._said: set[str] = set()
        self._started = False

    def once(self, text: str) -> None:
        """A child's health or baseline line: every child says it, the user reads it once."""
        if text not in self._said:
            self._said.add(text)
            self.reporter.line(text)

    def merged(self) -> Snapshot | None:
        wires = [c.progress for c in self.children if c.progress]
        return merged_snapshot(wires) if wires else None

    async def show(self) -> None:
        rep = self.reporter
        interval = 1.0 if rep.live else self.settings.progress_secs
        while self.merged() is None:  # the load starts with the first child's first snapshot
            await asyncio.sleep(0.2)
        rep.line("")
        rep.line("Sending events...")
        self._started = True
        rep.load_started()
        started, ticks = time.monotonic(), 0
        while True:
            ticks += 1
            await asyncio.sleep(max(started + ticks * interval - time.monotonic(), 0.0))
            snap = self.merged()
            assert snap is not None
            if rep.live:
                rep.snapshot(snap)
            else:
                running = sum(1 for c in self.children if c.proc is not None and c.proc.returncode is None)
                rep.progress(replace(progress_info(snap, self._remaining(snap)),
                                     processes_running=running, processes=len(self.children)))

    def end(self) -> None:
        """The load is over: the live view keeps its last state on the screen."""
        if not self._started:
            return
        snap = self.merged()
        if self.reporter.live and snap is not None:
            self.reporter.snapshot(snap)
        self.reporter.load_ended()

    def _remaining(self, snap: Snapshot) -> float | None:
        s = self.settings
        return max(s.duration_secs - snap.elapsed_s, 0.0) if s.duration_mode else None


def _collect(children: list[Child]) -> tuple[list[Shard], list[str]]:
    """The children's results that were written, and one line per child that failed or died."""
    from .shards import parse_shard

    shards: list[Shard] = []
    problems: list[str] = []
    for child in children:
        if child.failed_to_start:
            problems.append(f"{child.name} {child.failed_to_start}")
            continue
        assert child.proc is not None
        code = child.proc.returncode
        if code is not None and code < 0:
            problems.append(f"{child.name} died (signal {-code})" + _tail(child))
            continue
        if not child.results.is_file():
            problems.append(f"{child.name} exited {code} without results" + _tail(child))
            continue
        try:
            shards.append(parse_shard(str(child.results), child.results.read_bytes()))
        except ShardError as exc:
            problems.append(f"{child.name}: {exc}")
            continue
        if code not in (ExitCode.PASSED, ExitCode.FAILED, ExitCode.INTERRUPTED):
            problems.append(f"{child.name} exited {code}" + _tail(child))
    return shards, problems


def _tail(child: Child) -> str:
    return f": {child.stderr_tail[-1]}" if child.stderr_tail else ""


def _merged(settings: Settings, shards: list[Shard], profile: str | None) -> MergedRun | None:
    """The children's results merged once; the parent's own settings recorded as a one-process run records its."""
    from .merge import merge

    if not shards:
        return None
    merged = merge(shards, _judged(settings))
    result = merged.result
    result.profile = profile
    result.configuration = settings.public_dict()  # the run as given, not a child's share of it
    return merged


async def _after_load(settings: Settings, merged: MergedRun, problems: list[str], reporter: RunReporter,
                      stop: asyncio.Event, interrupted: bool) -> RunResult:
    """What a one-process run does after its load, once for the whole run: wait until the server
    counted every segment's acknowledged events, check S3, read the count again; then judge."""
    from ..runner.beside import unless_stopped
    from ..runner.settle import FLUSH_MARGIN_S
    from .recount import recount

    result = merged.result
    s3 = None
    if not interrupted:
        reporter.line("")
        reporter.line("Waiting for event processing to complete...")
        reporter.waiting("count", settings.processing_wait_secs)
        await unless_stopped(recount(settings, result.server, result.load.events_ok, reporter.count_waiting), stop)
        result.stopped_in = "waiting for the server's count" if stop.is_set() else result.stopped_in
        if settings.verify_s3 and settings.segment:
            reporter.line("S3 verification: once for the whole run, after the segments are merged"
                          " (`wefperf merge --verify-s3`)")
        elif settings.verify_s3 and not problems and not stop.is_set():
            from ..verify import verify_s3
            from .merge import verify_options

            wait = settings.flush_interval_secs * 2 + FLUSH_MARGIN_S
            reporter.line("Waiting for S3 parquet file flush (parquet files may take time to write)...")
            reporter.waiting("s3", wait)
            s3 = await unless_stopped(verify_s3(verify_options(merged, settings, wait),
                                                 progress=reporter.s3_waiting), stop)
            result.stopped_in = "verifying S3" if stop.is_set() else result.stopped_in
            if s3 is not None:  # the count after the S3 wait, as a one-process run reads it again
                await unless_stopped(recount(settings, result.server, 0), stop)
        if stop.is_set():
            # Ctrl-C while waiting: the load is complete, the checks after it are not.
            reporter.line("Interrupted while waiting: S3 verification skipped, writing partial results")
            result.load = replace(result.load, interrupted=True)
            s3 = None
    return rejudge(merged, s3)


def _judged(settings: Settings) -> Settings:
    """The whole plan's settings, or within a segment its share of them (the run is judged at the merge)."""
    from ..runner.segments import judged_alone

    return judged_alone(settings).model_copy(update={"processes": "1"})


def _with_problems(result: RunResult, problems: list[str]) -> RunResult:
    if not problems:
        return result
    verdict = result.verdict
    code = verdict.exit_code if verdict.exit_code == ExitCode.INTERRUPTED else ExitCode.FAILED
    result.verdict = replace(verdict, passed=False, exit_code=code, reasons=[*problems, *verdict.reasons])
    if result.merged is not None:
        result.merged["problems"] = problems
    return result


class ProgressPrinter(Reporter):
    """A child's reporter: its figures once a second as a JSON line for the parent; its health and
    baseline lines for the parent to show once; nothing else."""

    live = True

    def __init__(self) -> None:
        self._out = sys.stdout

    def snapshot(self, snap: Snapshot) -> None:
        print(PROGRESS_PREFIX + json.dumps(snapshot_to_wire(snap)), file=self._out, flush=True)

    def error(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def line(self, text: str = "") -> None:
        if text.startswith("Started "):  # a late start: the parent shows it, prefixed with the segment
            self.error(text)
        elif text.startswith(_FORWARDED):
            print(LINE_PREFIX + text, file=self._out, flush=True)
