"""The live view on a terminal: a panel redrawn each second from a snapshot of the recorder.

Fed by the same calls as the plain console, plus `snapshot` once a second during the load (read
by a task beside the senders, never by them) and the waits after it. Every line the plain
console prints is printed here too, above the panel; only the periodic progress lines are
replaced by the panel. The results block at the end is the plain one.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..load.shapes import RateCurve
from ..model import ProgressInfo
from ..wording import plural
from .console import ConsoleReporter

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..model import RunResult, Snapshot

BAR_WIDTH = 40
# The server's rate is its count's change over the last few snapshots: the stats sampler and
# the snapshots both tick once a second, so one interval alone would alternate 0 and 2x.
SERVER_RATE_SNAPSHOTS = 3


class LiveReporter(ConsoleReporter):
    live = True

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console(highlight=False)
        self._settings: Settings | None = None
        self._curve: RateCurve | None = None
        self._snap: Snapshot | None = None
        self._server: deque[tuple[float, int]] = deque(maxlen=SERVER_RATE_SNAPSHOTS + 1)
        self._live: Live | None = None
        self._wait: str | None = None
        self._wait_limit = 0.0
        self._wait_started = 0.0
        self._counted: tuple[int, int] | None = None
        self._s3_text = ""

    # -- the plain calls --------------------------------------------------------------------

    def _print(self, text: str = "") -> None:
        self.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def error(self, text: str) -> None:
        if self._live is not None and self.err.isatty():
            # stderr is this terminal too: through the view, so the panel stays whole.
            self.console.print(text, style="red", markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            super().error(text)

    def banner(self, settings: Settings, run_id: str) -> None:
        self._settings = settings
        self._curve = RateCurve.from_stages(settings.stages) if settings.stages else None
        super().banner(settings, run_id)

    def progress(self, info: ProgressInfo) -> None:
        """The panel shows progress; the plain timed line is not needed here (never called: `live`)."""

    def results(self, result: RunResult) -> None:
        self._stop()
        super().results(result)

    def close(self) -> None:
        self._stop()

    # -- the load ---------------------------------------------------------------------------

    def load_started(self) -> None:
        self._stop()
        self._start(Live(get_renderable=self._load_panel, console=self.console, auto_refresh=False,
                         transient=True, redirect_stderr=False))

    def snapshot(self, snap: Snapshot) -> None:
        self._snap = snap
        self._server.append((snap.elapsed_s, snap.server_events))
        if self._live is not None:
            self._live.refresh()

    def load_ended(self) -> None:
        if self._live is None:
            return
        self._stop()
        self.console.print(self._load_panel())  # the last state stays on the screen

    # -- the waits after it -----------------------------------------------------------------

    def waiting(self, what: str, limit_s: float) -> None:
        self._stop()
        self._wait, self._wait_limit, self._wait_started = what, limit_s, time.monotonic()
        self._counted, self._s3_text = None, ""
        self._start(Live(get_renderable=self._wait_panel, console=self.console, auto_refresh=True,
                         refresh_per_second=4, transient=True, redirect_stderr=False))

    def count_waiting(self, counted: int, expected: int) -> None:
        self._counted = (counted, expected)

    def s3_waiting(self, text: str) -> None:
        self._s3_text = text.strip()

    # -- drawing ----------------------------------------------------------------------------

    def _start(self, live: Live) -> None:
        self._live = live
        live.start(refresh=True)

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()  # draws its last state once more (then clears it: transient)
        self._wait = None

    def _load_panel(self) -> RenderableType:
        s, snap = self._settings, self._snap
        title = f"wefperf · {s.test_name}" if s is not None else "wefperf"
        if s is None or snap is None:
            return Panel(Text("starting the load…"), title=title, title_align="left", expand=False)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        fraction, of_plan = self._plan(s, snap)
        grid.add_row("Progress", _bar(fraction, of_plan))
        grid.add_row("Events", f"{snap.events_sent:,} sent · {snap.events_ok:,} acknowledged · "
                               f"{snap.events_failed:,} failed")
        stage = self._stage(snap.elapsed_s)
        if stage:
            grid.add_row("Stage", stage)
        grid.add_row("Rate", self._rates(s, snap))
        last = snap.last
        if last is not None and last.p50_ms is not None:
            grid.add_row("Latency", f"p50 {last.p50_ms:,.1f} ms · p99 {last.p99_ms or 0:,.1f} ms"
                                    f" · max {last.max_ms or 0:,.1f} ms  (last second, from the intended send time)")
        else:
            grid.add_row("Latency", Text("no batch acknowledged in the last second", style="dim"))
        grid.add_row("In flight", f"{plural(snap.in_flight, 'request')} (at most {s.concurrency:,})")
        if snap.errors:
            shown = " · ".join(f"{name} {n:,}" for name, n in sorted(snap.errors.items(), key=lambda kv: -kv[1]))
            grid.add_row("Errors", Text(f"{shown} (failed batches by class)", style="red"))
        else:
            grid.add_row("Errors", Text("none", style="green"))
        return Panel(grid, title=title, title_align="left", subtitle=f"{snap.elapsed_s:,.0f} s", expand=False)

    def _plan(self, s: Settings, snap: Snapshot) -> tuple[float, str]:
        if s.duration_mode:
            planned = f" of ~{self._curve.total_events:,.0f} planned" if self._curve else (
                f" of ~{s.duration_secs * s.target_eps:,.0f} planned" if s.target_eps else "")
            return (min(snap.elapsed_s / s.duration_secs, 1.0),
                    f"{min(snap.elapsed_s, s.duration_secs):,.0f} of {s.duration_secs:g} s · "
                    f"{snap.events_sent:,} events sent{planned}")
        total = s.total_events
        return (min(snap.events_sent / total, 1.0) if total else 0.0,
                f"{snap.events_sent:,} of {total:,} events sent · {snap.elapsed_s:,.0f} s of at most {s.timeout_secs:g} s")

    def _stage(self, elapsed: float) -> str:
        s = self._settings
        if s is None or not s.stages:
            return ""
        start, before = 0.0, 0.0
        for i, stage in enumerate(s.stages, 1):
            if elapsed < start + stage.duration_s or i == len(s.stages):
                return (f"{i} of {len(s.stages)}: {before:,.0f} → {stage.target_eps:,.0f}/s over {stage.duration_s:g} s"
                        f" ({max(start + stage.duration_s - elapsed, 0):,.0f} s left)")
            start += stage.duration_s
            before = stage.target_eps
        return ""

    def _rates(self, s: Settings, snap: Snapshot) -> Text:
        out = Text()
        if self._curve is not None:
            out.append(f"target {self._curve.rate_at(snap.elapsed_s):,.0f}/s · ")
        elif s.target_eps:
            out.append(f"target {s.target_eps:,.0f}/s · ")
        else:
            out.append("target unlimited · ")
        last = snap.last
        if last is None:
            out.append("sent – · acknowledged –")
        else:
            out.append(f"sent {last.sent_events:,}/s · acknowledged {last.acked_events:,}/s")
        if len(self._server) >= 2:
            (t0, n0), (t1, n1) = self._server[0], self._server[-1]
            if t1 > t0:
                out.append(f" · server counted {(n1 - n0) / (t1 - t0):,.0f}/s")
        out.append("  (last second)", style="dim")
        return out

    def _wait_panel(self) -> RenderableType:
        waited = time.monotonic() - self._wait_started
        limit = self._wait_limit
        clock = f"{waited:,.0f} s of up to {limit:,.0f} s"
        body: RenderableType
        if self._wait == "count":
            title = "Waiting for the server's count"
            if self._counted is not None:
                counted, expected = self._counted
                body = _bar(counted / expected if expected else 1.0,
                            f"{counted:,} of {expected:,} acknowledged events counted · {clock}")
            else:
                body = _bar(waited / limit if limit else 1.0, clock)
        else:
            title = "Waiting for the parquet files in S3"
            parts: list[RenderableType] = [_bar(waited / limit if limit else 1.0, clock)]
            if self._s3_text:
                parts.append(Text(self._s3_text.removeprefix("Waiting for S3: "), style="dim"))
            body = Group(*parts)
        return Panel(body, title=title, title_align="left", expand=False)


def _bar(fraction: float, text: str) -> Table:
    row = Table.grid(padding=(0, 1))
    row.add_row(ProgressBar(total=1.0, completed=max(0.0, min(fraction, 1.0)), width=BAR_WIDTH),
                f"{fraction * 100:5.1f} %", text)
    return row
