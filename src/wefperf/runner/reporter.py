"""What a run tells as it goes: the protocol the core speaks (runner/, scaleout/, capacity/) and its silent default.

report/ implements it (ConsoleReporter, LiveReporter); the core never imports report/. Anything with
these methods and a `live` flag will do; `Reporter` is the base that says nothing, to subclass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..model import ProgressInfo

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..model import RunResult, Snapshot


class RunReporter(Protocol):
    """The events of one run, in order: banner, lines, progress or snapshots, the waits, the results."""

    live: bool

    def banner(self, settings: Settings, run_id: str) -> None: ...
    def line(self, text: str = "") -> None: ...
    def progress(self, info: ProgressInfo) -> None: ...
    def error(self, text: str) -> None: ...
    def results(self, result: RunResult) -> None: ...
    def load_started(self) -> None: ...
    def snapshot(self, snap: Snapshot) -> None: ...
    def load_ended(self) -> None: ...
    def waiting(self, what: str, limit_s: float) -> None: ...
    def count_waiting(self, counted: int, expected: int) -> None: ...
    def s3_waiting(self, text: str) -> None: ...
    def close(self) -> None: ...


class Reporter:
    """What the runner tells the user as it goes. The base class says nothing (the API's default).

    A reporter with `live = True` is also handed a `Snapshot` of the recorder once a second during
    the load, read by a task beside the senders; the hooks after `results` mark the load and the
    waits after it, for a view that redraws (report/live.py). Plain reporters ignore them.
    """

    live = False

    def banner(self, settings: Settings, run_id: str) -> None: ...
    def line(self, text: str = "") -> None: ...
    def progress(self, info: ProgressInfo) -> None:
        """A plain progress line, every PERF_TEST_PROGRESS_SECS of load, when there is no live view."""

    def error(self, text: str) -> None: ...
    def results(self, result: RunResult) -> None: ...

    def load_started(self) -> None: ...
    def snapshot(self, snap: Snapshot) -> None: ...
    def load_ended(self) -> None: ...

    def waiting(self, what: str, limit_s: float) -> None:
        """A wait after the load begins: "count" (the server's count) or "s3" (the parquet files)."""

    def count_waiting(self, counted: int, expected: int) -> None: ...

    def s3_waiting(self, text: str) -> None:
        """The verifier's line while it polls S3: printed as it is, unless a view shows it another way."""
        self.line(text)

    def close(self) -> None:
        """Give the terminal back; called once the run is over, however it ended."""


def progress_info(snap: Snapshot, remaining_s: float | None = None) -> ProgressInfo:
    """A plain progress line's figures from the live view's snapshot: the same counts, rates since the start."""
    elapsed = max(snap.elapsed_s, 1e-9)
    last = snap.last
    return ProgressInfo(
        events_sent=snap.events_sent, elapsed_s=snap.elapsed_s, rate_eps=snap.events_sent / elapsed,
        remaining_s=remaining_s,
        events_acked=snap.events_ok, acked_rate_eps=snap.events_ok / elapsed, events_failed=snap.events_failed,
        in_flight=snap.in_flight, p99_ms=last.p99_ms if last is not None else None,
    )
