"""What every load engine shares: stopping, the drain after a stop, waiting for a due time, time left.

The batch engine (engine.py) and the simulated hosts (hosts.py, wsman_hosts.py) differ in what
they send and when; how a run is stopped, how long in-flight work may drain, and how the load
window is cut when a stop comes are the same, so they live here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Coroutine
from typing import Any, Callable

from .pacer import Pacer


class EngineBase:
    """Stop, drain and due-time waits, for an engine whose workers are asyncio tasks."""

    def __init__(
        self, *, clock: Callable[[], float], drain_timeout_s: float,
        on_error: Callable[[str], None] | None,
        freeze_gc: bool, window_secs: int, segment: tuple[int, int], start_at: float | None,
        second_histograms: bool,
    ) -> None:
        self.clock, self.drain_timeout_s = clock, drain_timeout_s
        self.on_error = on_error
        # gc.freeze() changes the whole process: only the CLI, which owns the process, asks for it.
        self.freeze_gc = freeze_gc
        self.window_secs = window_secs  # > 0: the recorder keeps a sliding window for --abort-on-fail
        # A segment i/N runs its share of the plan; `start_at` (this clock) is the plan's shared start.
        self.segment, self.start_at = segment, start_at
        self.second_histograms = second_histograms  # a segment keeps each second's histogram for the merge
        # Every worker waiting for its due time waits on this one timer (pacer.py): no spinning.
        self.pacer = Pacer(clock)
        self._interrupted = False
        self._aborted: str | None = None
        self._stopped_at: float | None = None
        self._stopped = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    @property
    def stopped_early(self) -> bool:
        """Interrupted by the user or aborted by a threshold: judged on what was due by the stop."""
        return self._interrupted or self._aborted is not None

    def stop(self, interrupted: bool = True, aborted: str | None = None) -> None:
        """Start no more work; workers waiting for their time give it up at once.

        `interrupted`: the user asked (Ctrl-C, a host program); `aborted`: a threshold broke.
        """
        self._interrupted = self._interrupted or interrupted
        if aborted is not None and self._aborted is None:
            self._aborted = aborted
        if self._stopped_at is None:
            self._stopped_at = self.clock()
        self._on_stop()
        self.pacer.stop()
        self._stopped.set()

    async def _wait_for_start(self) -> None:
        """Until the shared plan start (`start_at`, this clock), unless a stop comes first."""
        if self.start_at is None:
            return
        await self._wait_until(self.start_at)

    def _on_stop(self) -> None:
        """What an engine does first when stopped (the batch engine stops its scheduler)."""

    async def _run_workers(self, work: list[Coroutine[Any, Any, None]], plan_end: float | None) -> None:
        """Run every worker with the drain guard beside them; then, unless stopped, idle until the
        plan's end. A worker's bug surfaces as itself, not as an ExceptionGroup."""
        if self.freeze_gc:
            # Everything built so far (payload, modules, sessions) lives for the whole run: keep the
            # cyclic GC from rescanning it while the workers allocate a future per request.
            gc.freeze()
        try:
            async with asyncio.TaskGroup() as group:
                workers = [group.create_task(w) for w in work]
                guard = group.create_task(self._drain_guard(workers))
                if workers:
                    await asyncio.wait(workers)
                if plan_end is not None:
                    await self._idle_until(plan_end)
                guard.cancel()
        except* Exception as failures:
            raise failures.exceptions[0] from None
        finally:
            if self.freeze_gc:
                gc.unfreeze()

    async def _wait_until(self, when: float) -> bool:
        """Wait until `when` (clock time) on the shared pacer; False when stop() gave the wait up first.

        True at once when `when` is due within the loop's timer resolution (pacer.py).
        """
        waiter = self.pacer.wait(when)
        if waiter is None:
            return True
        return await waiter

    async def _drain_guard(self, workers: list[asyncio.Task[None]]) -> None:
        """After a stop, work in flight gets `drain_timeout_s` to finish, then is cancelled."""
        await self._stopped.wait()
        _, pending = await asyncio.wait(workers, timeout=self.drain_timeout_s)
        for task in pending:
            task.cancel()

    async def _idle_until(self, when: float) -> None:
        """A plan lasts its length: after its last send, wait for its end (or a stop), so the
        run's time is never shorter than the window its rates are measured over."""
        left = when - self.clock()
        if left > 0 and not self.stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):  # not wait_for: it may swallow a cancel on 3.11
                    await self._stopped.wait()

    def remaining_s(self, now: float, rate_eps: float) -> float | None:
        """Seconds of load left, for the progress line; None when the plan does not say."""
        return None

    def _stop_window_end(self, start: float, end: float) -> float | None:
        """Where a stopped run's load window ends: at the stop, never before the start
        (a stop while waiting for --start-at is a window of 0 s, not a negative one)."""
        if not self.stopped_early or self._stopped_at is None:
            return None
        return max(min(end, self._stopped_at), start)
