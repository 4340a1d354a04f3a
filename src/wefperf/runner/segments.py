"""Segments of one plan (issue 11): what a segment i/N shares with the others, and its own share.

Every segment of a run uses the same run id, payload seed and start time; segment i sends the
batches (or runs the simulated hosts) whose number is i modulo N, at the times the whole plan
gives them. These helpers keep the rules in one place for the runner, `--processes` and merge.
"""

from __future__ import annotations

import hashlib
import time

from ..config.rules import ConfigError
from ..config.settings import Settings
from ..load.shapes import Stage
from ..model import SegmentInfo as SegmentInfo


def shared_seed(run_id: str) -> int:
    """The payload seed every segment derives alike from the run id when PERF_TEST_SEED is unset."""
    digest = hashlib.sha256(run_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") or 1


def plan_length_s(settings: Settings) -> float:
    """How long the plan may last: its duration, or the timeout of a count-mode run."""
    return settings.duration_secs if settings.duration_mode else settings.timeout_secs


def check_start_at(settings: Settings, now: float | None = None) -> None:
    """Refuse a start time further in the past than the whole run would last: nothing of it is left."""
    if not settings.start_at:
        return
    late = (time.time() if now is None else now) - settings.start_at
    if late > plan_length_s(settings):
        raise ConfigError(
            f"PERF_TEST_START_AT / --start-at: {settings.start_at:.3f} is {late:,.0f} s in the past, longer than"
            f" the run lasts ({plan_length_s(settings):g} s): give a time in the future (e.g. `date +%s` + 30)"
        )


def share(settings: Settings) -> float:
    """The part of the whole plan a segment sends: about 1/N (exact for hosts and count mode)."""
    index, count = settings.segment_of
    if count == 1:
        return 1.0
    if settings.hosts:
        return len(range(index, settings.hosts, count)) / settings.hosts
    if not settings.duration_mode and settings.total_events:
        batches = -(-settings.total_events // settings.batch_size)
        mine = len(range(index, batches, count))
        return mine / batches if batches else 0.0
    return 1.0 / count


def judged_alone(settings: Settings) -> Settings:
    """The settings a segment's own verdict uses: its share of the rate and of the events.

    The run's thresholds are judged on the merged result; a segment alone is held to its part of
    the plan, so its exit code says whether it did its part.
    """
    part = share(settings)
    if part == 1.0:
        return settings
    update: dict[str, object] = {"target_eps": settings.target_eps * part}
    if not settings.duration_mode:
        update["total_events"] = round(settings.total_events * part)
    if settings.stages:
        update["stages"] = [Stage(st.duration_s, st.target_eps * part) for st in settings.stages]
    return settings.model_copy(update=update)
