"""What a run returns to Python callers, and what the reports render."""

from __future__ import annotations

import base64
import socket
import zlib
from array import array
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .metrics import LoadSummary, Percentiles
from .restarts import Restart
from .segments import SegmentInfo
from .verdict import Verdict

if TYPE_CHECKING:
    from .verify.model import VerifyResult


@dataclass(frozen=True)
class EventIdCount:
    """One EventID: what the server counted (under any of its labels) against what the run expects."""

    event_id: int | None  # None: labels that name no EventID (`unknown`)
    counted: int
    expected: int | None  # acknowledged events of this ID; None when the run sent none
    labels: tuple[str, ...]


@dataclass
class ServerStats:
    """What the collector's own counters say, before and after the load."""

    baseline_total: int | None = None
    final_total: int | None = None
    per_type_delta: dict[str, int] = field(default_factory=dict)  # by the server's own labels
    expected_per_type: dict[int, int] = field(default_factory=dict)  # by EventID
    sampler_samples: int = 0
    notes: list[str] = field(default_factory=list)
    # The server's own totals per label before and after (a merge of segments takes the earliest
    # baseline and the latest final read: each segment saw the whole server, not its share).
    baseline_per_type: dict[str, int] = field(default_factory=dict)
    final_per_type: dict[str, int] = field(default_factory=dict)
    # Where the count came from when not /stats/throughput: {"format": "prometheus", "metric", "url"}.
    source: dict[str, str] | None = None
    # Each time the counters fell during the run (a collector restart): the totals above are summed across.
    restarts: list[Restart] = field(default_factory=list)

    @property
    def events_received(self) -> int | None:
        if self.baseline_total is None or self.final_total is None:
            return None
        return self.final_total - self.baseline_total

    @property
    def counts_known(self) -> bool:
        """Both stats reads worked, so the per-type deltas mean something."""
        return self.events_received is not None

    @property
    def per_type_known(self) -> bool:
        """A Prometheus counter is a total: the server's counts by event type are not known then."""
        return self.source is None

    def per_type_unavailable(self) -> str:
        """Why there are no per-type counts, in words for the reports."""
        if self.source is None:
            return ""
        return (f"not available: the server's count is the Prometheus counter {self.source['metric']},"
                " a total over every event type (PERF_TEST_STATS_FORMAT=prometheus)")

    def per_event_id(self) -> list[EventIdCount]:
        """One row per EventID, the server's labels for it merged (most counted first)."""
        from .observe import event_id_of

        counted: dict[int | None, int] = {}
        labels: dict[int | None, list[str]] = {}
        for label, n in self.per_type_delta.items():
            eid = event_id_of(label)
            counted[eid] = counted.get(eid, 0) + n
            labels.setdefault(eid, []).append(label)
        rows = [
            EventIdCount(eid, counted.get(eid, 0), self.expected_per_type.get(eid) if eid is not None else None,
                         tuple(sorted(labels.get(eid, []))))
            for eid in set(counted) | set(self.expected_per_type)
        ]
        return sorted(rows, key=lambda r: (r.event_id is None, -max(r.counted, r.expected or 0), r.event_id or 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline_total": self.baseline_total,
            "final_total": self.final_total,
            "per_type_delta": self.per_type_delta,
            "expected_per_type": {str(k): v for k, v in sorted(self.expected_per_type.items())},
            "per_event_id": [
                {"event_id": r.event_id, "counted": r.counted if self.counts_known and self.per_type_known else None,
                 "expected": r.expected, "labels": list(r.labels)}
                for r in self.per_event_id()
            ],
            "counts_known": self.counts_known,
            "per_type_known": self.per_type_known,
            "source": self.source or {"format": "json"},
            "restarts": [r.to_dict() for r in self.restarts],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class ShardData:
    """What only a segment's results carry: its place in the run and what the S3 merge needs."""

    segment: SegmentInfo
    delivery_sizes: "array[int] | None" = None  # simulated hosts: events per delivery, in its order

    def to_dict(self, load: LoadSummary, server: ServerStats) -> dict[str, Any]:
        sizes = None
        if self.delivery_sizes is not None:
            packed = array("H", self.delivery_sizes).tobytes()
            sizes = base64.b64encode(zlib.compress(packed)).decode("ascii")
        return {
            "histograms": load.histograms,
            "second_histograms": {str(t): h for t, h in sorted((load.second_histograms or {}).items())},
            "batches_sent": load.batches_sent,
            "delivery_sizes": sizes,
            "server_baseline_per_type": server.baseline_per_type,
            "server_final_per_type": server.final_per_type,
        }


def unpack_sizes(text: str) -> "array[int]":
    """The inverse of ShardData's delivery_sizes encoding."""
    sizes: array[int] = array("H")
    sizes.frombytes(zlib.decompress(base64.b64decode(text)))
    return sizes


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
    s3: VerifyResult | None = None
    sender: str = ""
    payload_build_s: float = 0.0
    stopped_in: str | None = None  # the phase a stop request ended, if one did
    payload_seed: int | None = None
    shard: ShardData | None = None  # a segment of a run (issue 11): what its merge needs
    merged: dict[str, Any] | None = None  # a merged run: its segments, and what the merge noted

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
                # Ingested = acknowledged, over the load window (drain_seconds after it are not load
                # time); the attempted and server-counted rates are over the same window.
                "events_per_second_overall": round(load.acked_rate_eps, 2),
                "events_per_second_attempted": round(load.sent_rate_eps, 2),
                "events_per_second_processed": (
                    round(load.per_window_s(received), 2) if received is not None else None
                ),
                "events_acknowledged": load.events_ok,
                "events_failed": load.events_failed,
                "late_batches": load.late_batches,
                "due_not_sent": load.due_not_sent,
                "timed_out": load.timed_out,
                "interrupted": load.interrupted,
                "cut_short": load.cut_short,
                "aborted": load.aborted,
                "load_window_seconds": round(load.window_s, 3),
                "drain_seconds": round(load.drain_s, 3),
                "events_due_in_window": load.due_events,
            },
            "s3_verification": self.s3.to_dict() if self.s3 is not None else None,
            "server_stats": self.server.to_dict(),
            "stopped_in": self.stopped_in,
            "wefperf_version": _version(),
            "host": socket.gethostname(),
            "run_id": self.run_id,
            "profile": self.profile,
            "sender": self.sender,
            "latency_ms": {
                # Every batch that fell due: acknowledged, failed (until its failure), never sent
                # (until the window's end).
                "from_intended_send": _pct(load.latency),
                "from_intended_send_acknowledged_only": (
                    _pct(load.latency_acked) if load.latency_acked is not None else None
                ),
                "service_time": _pct(load.service),
                "schedule_lag": _pct(load.schedule_lag),
                # Simulated hosts: from when each event became due to its delivery's reply.
                "event": _pct(load.event_latency) if load.event_latency is not None else None,
            },
            "hosts": asdict(load.hosts) if load.hosts is not None else None,
            "wsman": asdict(load.wsman) if load.wsman is not None else None,
            "errors": {
                name: {"batches": c.batches, "events": c.events, "samples": c.samples}
                for name, c in sorted(load.errors.items())
            },
            "failed_batch_ranges": [list(r) for r in load.failed_ranges],
            "payload": {"seed": self.payload_seed, "batches_sent": load.batches_sent},
            "timeline": [asdict(row) for row in load.timeline],
            **self._scale_out(),
            "verdict": {
                "passed": self.verdict.passed,
                "exit_code": self.verdict.exit_code,
                "reasons": self.verdict.reasons,
                "target_ratio": self.verdict.target_ratio,
                "thresholds": [
                    {"name": j.name, "bound": j.bound, "limit": j.limit, "measured": j.measured, "passed": j.passed}
                    for j in self.verdict.thresholds
                ],
            },
        }


    def _scale_out(self) -> dict[str, Any]:
        """A segment's or a merged run's own keys (issue 11); nothing for a plain run."""
        if self.shard is not None:
            seg = self.shard.segment
            return {"segment": {"index": seg.index, "count": seg.count}, "start_at": seg.start_at,
                    "shard": self.shard.to_dict(self.load, self.server)}
        if self.merged is not None:
            return {"merged": self.merged}
        return {}


def _version() -> str:
    from . import __version__

    return __version__


def _pct(p: Percentiles) -> dict[str, float]:
    return {"count": p.count, "p50": p.p50, "p90": p.p90, "p99": p.p99, "p99_9": p.p999, "max": p.max, "mean": round(p.mean, 3)}
