"""SLO thresholds: parse them, and judge them on a whole run or on a window of it.

Each threshold is a bound on one measured figure; a run passes when every bound holds.
The seed's rule "at least 95 % of the target rate, no failed batch" is the default set:
`achieved_ratio >= 0.95` and `error_ratio <= 0`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import Bound as Bound
from ..model import Judged as Judged


@dataclass(frozen=True)
class Spec:
    bound: Bound
    meaning: str
    windowed: bool = False  # can be judged on a sliding window during the run (--abort-on-fail)


SPECS: dict[str, Spec] = {
    "latency_p50_ms": Spec("max", "latency p50 from the intended send time (event latency with --hosts), ms", True),
    "latency_p99_ms": Spec("max", "latency p99 from the intended send time (event latency with --hosts), ms", True),
    "latency_p999_ms": Spec("max", "latency p99.9 from the intended send time (event latency with --hosts), ms", True),
    "schedule_lag_p99_ms": Spec("max", "p99 of how late batches left after their intended time, ms"),
    "error_ratio": Spec("max", "failed events / sent events", True),
    "achieved_ratio": Spec("min", "acknowledged events / events the plan had due (PERF_TEST_PASS_RATIO)"),
    "server_missing_events": Spec("max", "acknowledged events the server's stats never counted"),
    "s3_missing_events": Spec("max", "acknowledged events of this run missing from the parquet files"),
    "s3_duplicated_events": Spec("max", "extra copies of this run's events in the parquet files"),
}


def parse_thresholds(given: str | Iterable[str] | Mapping[str, Any]) -> dict[str, float]:
    """`a=1,b=2`, a list of `NAME=VALUE`, or a profile's table; ValueError names the bad one."""
    if isinstance(given, Mapping):
        pairs = [(str(k), v) for k, v in given.items()]
    else:
        items = given.split(",") if isinstance(given, str) else list(given)
        pairs = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"threshold {item!r} is not NAME=VALUE (e.g. latency_p99_ms=500)")
            pairs.append((name.strip(), value.strip()))
    out: dict[str, float] = {}
    for name, value in pairs:
        if name not in SPECS:
            raise ValueError(f"unknown threshold {name!r} (known: {', '.join(SPECS)})")
        try:
            number = float(str(value).replace("_", ""))
        except ValueError:
            raise ValueError(f"threshold {name}: {value!r} is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"threshold {name}: must be a number of 0 or more (got {value!r})")
        out[name] = number
    return out


@dataclass(frozen=True)
class Measures:
    """The figures thresholds look at; None where the run could not measure one."""

    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_p999_ms: float | None = None
    schedule_lag_p99_ms: float | None = None
    error_ratio: float | None = None
    achieved_ratio: float | None = None
    server_missing_events: float | None = None
    s3_missing_events: float | None = None
    s3_duplicated_events: float | None = None


def judge(limits: Mapping[str, float], measures: Measures, *, windowed_only: bool = False) -> list[Judged]:
    """Every threshold with its measured value; one that could not be measured fails."""
    out = []
    for name, limit in limits.items():
        spec = SPECS[name]
        if windowed_only and not spec.windowed:
            continue
        value = getattr(measures, name)
        ok = value is not None and (value <= limit if spec.bound == "max" else value >= limit)
        out.append(Judged(name, spec.bound, limit, value, ok))
    return out
