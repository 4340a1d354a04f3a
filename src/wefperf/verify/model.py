"""What crosses the verifier's boundary: the options a caller gives, the result it gets back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .accounting import Accounting
from .numbering import Numbering

MIB = 1024 * 1024
MAX_PROBLEMS = 1000
# How far a collector's clock may be off: files near midnight UTC may sit under the day before or after.
CLOCK_SKEW = dt.timedelta(minutes=10)


@dataclass
class VerifyOptions:
    endpoint: str
    bucket: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    event_types: list[str] = field(default_factory=list)  # event IDs, e.g. ["4624"]
    dates: list[dt.date] | None = None  # UTC partitions to look in; None = all
    max_file_size_bytes: int = 100 * MIB
    run_id: str | None = None
    batch_size: int | None = None
    sent_batches: int | None = None
    total_events: int | None = None  # count mode: the last batch may be short
    failed_ranges: list[tuple[int, int]] = field(default_factory=list)  # inclusive batch ranges
    # Which events the run sent, numbered densely, with each one's type (a run's own check, --results,
    # the merge); None: contiguous batches from batch_size and sent_batches (or expect_events), types unknown.
    numbering: Numbering | None = field(default=None, repr=False)
    expect_events: int | None = None  # expected rows of this run (or all rows if no run id)
    wait_secs: float = 0.0  # poll until expectations hold or this deadline passes
    poll_interval_secs: float = 1.0
    # Once nothing is missing, poll on until no object appeared or changed for this long (one flush
    # interval: a later flush may still write a duplicate), or the deadline.
    settle_secs: float = 0.0


@dataclass
class VerifyResult:
    passed: bool
    files: int
    total_bytes: int
    rows: int
    sample_keys: list[str]
    problems: list[str]
    accounting: Accounting | None = None
    reasons: list[str] = field(default_factory=list)  # why it failed, one short phrase each
    error: str | None = None  # a failure that stopped the verification (endpoint, bucket, access)
    bucket: str = ""
    event_types: list[str] = field(default_factory=list)
    dates: list[str] | None = None
    max_file_size_bytes: int = 100 * MIB
    run_id: str | None = None
    expect_events: int | None = None
    bytes_fetched: int = 0
    polls: int = 0
    elapsed_secs: float = 0.0

    @property
    def total_mb(self) -> float:
        return self.total_bytes / MIB

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """The results-JSON form: the seed's keys first, then the accounting."""
        return {
            "success": self.passed,
            "files_found": self.files,
            "total_size_mb": round(self.total_mb, 2),
            "sample_files": list(self.sample_keys),
            "total_size_bytes": self.total_bytes,
            "rows": self.rows,
            "reason": self.reason or None,
            "error": self.error,
            "problems": self.problems[:MAX_PROBLEMS],
            "problem_count": len(self.problems),
            "bucket": self.bucket,
            "event_types": list(self.event_types),
            "dates": self.dates,
            "max_file_size_mb": round(self.max_file_size_bytes / MIB, 3),
            "run_id": self.run_id,
            "expect_events": self.expect_events,
            "accounting": self.accounting.to_dict() if self.accounting else None,
            "bytes_fetched": self.bytes_fetched,
            "polls": self.polls,
            "elapsed_secs": round(self.elapsed_secs, 3),
        }


def run_dates(started: dt.datetime, until: dt.datetime) -> list[dt.date]:
    """The UTC date partitions a run's files may sit in: its window padded at both ends by CLOCK_SKEW."""
    return dates_covered(started - CLOCK_SKEW, until + CLOCK_SKEW)


def dates_covered(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """The UTC dates from start to end inclusive (naive times are taken as UTC)."""

    def utc(t: dt.datetime) -> dt.date:
        return (t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)).date()

    first, last = utc(start), utc(end)
    if last < first:
        first, last = last, first
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

