"""The stats sampler ends when its task is cancelled, whatever moment the cancel comes at."""

from __future__ import annotations

import asyncio
from typing import Any

from wefperf.observe.stats import StatsSampler, StatsSnapshot


class _Instant:
    """A stats reader that answers at once: its reads complete in the very step a cancel may come in."""

    url = "http://127.0.0.1/stats/throughput"
    per_type = True
    resets = 0

    async def read(self, session: Any) -> StatsSnapshot:
        return StatsSnapshot(0)


async def test_a_cancel_at_any_moment_ends_the_sampler() -> None:
    """On Python 3.11 a read bounded by asyncio.wait_for could swallow the cancel when it completed
    at that moment: the sampler went on, and the run waiting for it never ended."""
    for step in range(300):
        sampler = StatsSampler(None, _Instant(), 0.0, lambda _t, _d: None)  # type: ignore[arg-type]
        task = asyncio.create_task(sampler.run(None))
        for _ in range(step % 11):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert task in done and task.cancelled(), f"the sampler outlived its cancel (step {step})"
