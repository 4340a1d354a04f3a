"""What a run returns to Python callers, and what the reports render."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .metrics import LoadSummary, Percentiles
from .verdict import Verdict


class S3Outcome(Protocol):
    passed: bool

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class ServerStats:
    """What the collector's own counters say, before and after the load."""

    baseline_total: int | None = None
    final_total: int | None = None
    per_type_delta: dict[str, int] = field(default_factory=dict)
    expected_per_type: dict[str, int] = field(default_factory=dict)
    sampler_samples: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def events_received(self) -> int | None:
        if self.baseline_total is None or self.final_total is None:
            return None
        return self.final_total - self.baseline_total


@dataclass
class RunResult:
    run_id: str
    test_name: str
    timestamp: str
    profile: str | None
    configuration: dict[str, Any]
    load: LoadSummary
    server: ServerStats
    verdict: Verdict
    s3: S3Outcome | None = None
    sender: str = ""
    payload_build_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def to_dict(self) -> dict[str, Any]:
        """The results JSON: the seed's keys first, then wefperf's additions."""
        load = self.load
        received = self.server.events_received
        return {
            "timestamp": self.timestamp,
            "test_name": self.test_name,
            "configuration": self.configuration,
            "results": {
                "total_time_seconds": round(load.elapsed_s, 3),
                "events_sent": load.events_sent,
                "events_received": received,
                "successful_batches": load.batches_ok,
                "failed_batches": load.batches_failed,
                "events_per_second_overall": round(load.events_sent / load.elapsed_s, 2),
                "events_per_second_processed": (
                    round(received / load.elapsed_s, 2) if received is not None else None
                ),
                "events_acknowledged": load.events_ok,
                "late_batches": load.late_batches,
                "due_not_sent": load.due_not_sent,
                "timed_out": load.timed_out,
                "interrupted": load.interrupted,
            },
            "s3_verification": self.s3.to_dict() if self.s3 is not None else None,
            "server_stats": {
                "baseline_total": self.server.baseline_total,
                "final_total": self.server.final_total,
                "per_type_delta": self.server.per_type_delta,
                "expected_per_type": self.server.expected_per_type,
                "notes": self.server.notes,
            },
            "run_id": self.run_id,
            "profile": self.profile,
            "sender": self.sender,
            "latency_ms": {
                "from_intended_send": _pct(load.latency),
                "service_time": _pct(load.service),
                "schedule_lag": _pct(load.schedule_lag),
            },
            "errors": {
                name: {"batches": c.batches, "events": c.events, "samples": c.samples}
                for name, c in sorted(load.errors.items())
            },
            "failed_batch_numbers": load.failed_batches,
            "timeline": [asdict(row) for row in load.timeline],
            "verdict": {
                "passed": self.verdict.passed,
                "exit_code": self.verdict.exit_code,
                "reasons": self.verdict.reasons,
                "target_ratio": self.verdict.target_ratio,
            },
        }


def _pct(p: Percentiles) -> dict[str, float]:
    return {"count": p.count, "p50": p.p50, "p90": p.p90, "p99": p.p99, "p99_9": p.p999, "max": p.max, "mean": round(p.mean, 3)}
