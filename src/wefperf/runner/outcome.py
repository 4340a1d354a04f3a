"""How a run ends: one result, built one way, whichever phase ends it.

`RunContext` holds what every phase of one run shares (its settings, reporter, ids, payload and the
server's figures so far), so a phase that ends the run early hands over only what it knows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ..config.settings import Settings
from ..judge.verdict import judge
from ..measure.recorder import Recorder
from ..model import Deliveries, ExitCode, LoadSummary, RunResult, S3Figures, SegmentInfo, ServerStats, ShardData
from ..payload import PayloadPool
from ..payload.hosts import HostPayload
from .reporter import RunReporter
from .segments import judged_alone


def empty_load() -> LoadSummary:
    now = time.perf_counter()
    return Recorder(now).summary(now)


@dataclass
class RunContext:
    settings: Settings
    rep: RunReporter
    profile: str | None
    run_id: str
    started_at: datetime
    pool: PayloadPool | HostPayload
    server: ServerStats = field(default_factory=ServerStats)

    def stopped_before_load(self, phase: str) -> RunResult:
        """A stop before anything was sent: partial results, no verdict shown."""
        self.rep.line(f"Interrupted while {phase}: nothing was sent, writing partial results")
        return self.finish(replace(empty_load(), interrupted=True), stopped_in=phase, show=False)

    def unavailable(self, reason: str, code: ExitCode = ExitCode.FAILED, load: LoadSummary | None = None,
                    sender: str = "") -> RunResult:
        """The run could not go on (the collector, its certificates, S3): `reason` is already said."""
        return self.finish(load or empty_load(), sender=sender, unavailable=reason, show=False,
                           unavailable_code=code)

    def finish(
        self,
        load: LoadSummary,
        *,
        s3: Any = None,
        sender: str = "",
        unavailable: str | None = None,
        stopped_in: str | None = None,
        show: bool = True,
        shard: ShardData | None = None,
        unavailable_code: ExitCode = ExitCode.FAILED,
        deliveries: Deliveries | None = None,
    ) -> RunResult:
        settings = self.settings
        figures = None
        if s3 is not None:
            acct = s3.accounting
            figures = S3Figures(bool(s3.passed),
                                acct.missing if acct is not None and acct.expected is not None else None,
                                acct.duplicated if acct is not None else None)
        if shard is None and settings.segment:  # stopped or failed before the load: still a segment's results
            index, count = settings.segment_of
            shard = ShardData(SegmentInfo(index, count, settings.start_at or None))
        # A segment is judged on its own share of the plan; the run's verdict comes from the merge.
        judged = judged_alone(settings) if settings.segment else settings
        verdict = judge(judged, load, figures, server=self.server, unavailable=unavailable)
        if unavailable and verdict.exit_code != unavailable_code:
            verdict = replace(verdict, exit_code=unavailable_code)
        result = RunResult(
            run_id=self.run_id,
            test_name=settings.test_name,
            timestamp=self.started_at.isoformat(),
            profile=self.profile,
            configuration=settings.public_dict(),
            load=load,
            server=self.server,
            verdict=verdict,
            s3=s3,
            sender=sender,
            payload_build_s=self.pool.build_seconds,
            payload_seed=self.pool.seed,
            stopped_in=stopped_in,
            shard=shard,
            deliveries=deliveries,
        )
        if show:
            self.rep.results(result)
        return result


def empty_result(settings: Settings, profile: str | None, stopped_in: str) -> RunResult:
    """An interrupted run that never reached its load: for a stop during start-up."""
    load = replace(empty_load(), interrupted=True)
    return RunResult(
        run_id="", test_name=settings.test_name, timestamp=datetime.now(timezone.utc).isoformat(), profile=profile,
        configuration=settings.public_dict(), load=load, server=ServerStats(),
        verdict=judge(settings, load, None), stopped_in=stopped_in,
    )


def refused_result(settings: Settings, profile: str | None, run_id: str, reason: str) -> RunResult:
    """A run refused before its load by a check of its configuration (exit 2): nothing was sent."""
    load = empty_load()
    verdict = replace(judge(settings, load, None, unavailable=reason), exit_code=ExitCode.USAGE)
    return RunResult(
        run_id=run_id, test_name=settings.test_name, timestamp=datetime.now(timezone.utc).isoformat(),
        profile=profile, configuration=settings.public_dict(), load=load, server=ServerStats(), verdict=verdict,
    )
