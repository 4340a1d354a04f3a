"""A collector's event count from its Prometheus metrics: one counter, summed over its label sets.

OpenWEC (and the real collector's `/metrics`) count received events in a Prometheus counter,
not in `/stats/throughput`. The text is parsed with `prometheus_client`'s parser; this module
only picks the counter out of it, says plainly when it cannot, and keeps the sum monotonic
across counter resets (a restarted collector starts its counters at 0 again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Generic, Hashable, Mapping, TypeVar

from prometheus_client.parser import text_string_to_metric_families

# Types a received-events count may have: a counter, or a metric with no # TYPE line at all.
_COUNTING_TYPES = frozenset({"counter", "unknown"})

LabelSet = tuple[tuple[str, str], ...]
K = TypeVar("K", bound=Hashable)


class MetricError(ValueError):
    """The metric cannot be read as a counter: its text is not Prometheus', or it has another type.

    Unlike a network error, this does not mend itself: the run stops before the load (exit 2).
    """


class MetricAbsent(ValueError):
    """The counter is not in the text (after the load, when it should be): counts are unknown."""


@dataclass(frozen=True)
class CounterReading:
    """One scrape of one counter: its value per label set; no series at all when it is absent."""

    metric: str
    series: dict[LabelSet, float] = field(default_factory=dict)
    # Counters present in the same text, for a message when `metric` is not among them.
    counters: tuple[str, ...] = ()

    @property
    def present(self) -> bool:
        return bool(self.series)

    @property
    def total(self) -> float:
        return sum(self.series.values())


def sample_names(metric: str) -> tuple[str, ...]:
    """The sample names that carry `metric`: with or without the counter's `_total` suffix."""
    return tuple(dict.fromkeys((metric, metric.removesuffix("_total") + "_total")))


def read_counter(text: str, metric: str, url: str) -> CounterReading:
    """Pick `metric` out of Prometheus text; MetricError when the text or the metric's type is wrong.

    `openwec_input_events_total` and `openwec_input_events` both name the counter whose samples
    are `openwec_input_events_total`. An absent metric is not an error here: a counter with
    labels appears only with its first event, so the caller decides what absence means.
    """
    wanted = set(sample_names(metric))
    declared: dict[str, str] = {}
    series: dict[LabelSet, float] = {}
    counters: list[str] = []
    kinds: set[str] = set()
    try:
        for family in text_string_to_metric_families(text):
            declared[family.name] = family.type
            if family.type == "counter":
                counters.append(family.name + "_total")
            for sample in family.samples:
                if sample.name not in wanted:
                    continue
                kind = _type_of(family.name, family.type, declared)
                kinds.add(kind)
                if kind not in _COUNTING_TYPES:
                    continue
                if not math.isfinite(sample.value):
                    raise MetricError(f"{metric} at {url} has the value {sample.value}, not a count")
                key = tuple(sorted(sample.labels.items()))
                series[key] = series.get(key, 0.0) + float(sample.value)
    except MetricError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MetricError(
            f"{url} did not answer Prometheus text ({_short(exc)}); WEF_STATS_ENDPOINT must be the metrics URL"
            f" when PERF_TEST_STATS_FORMAT=prometheus (e.g. http://openwec:9090/metrics)"
        ) from None
    bad = sorted(kinds - _COUNTING_TYPES)
    if bad and not series:
        raise MetricError(
            f"{metric} at {url} is a {bad[0]}, not a counter: PERF_TEST_STATS_METRIC must name the counter of"
            " received events (e.g. openwec_input_events_total)"
        )
    return CounterReading(metric, series, tuple(sorted(set(counters))))


def _type_of(family: str, kind: str, declared: dict[str, str]) -> str:
    """A sample's type: its family's, or for `x_total` parsed as untyped, that of a `# TYPE x counter`."""
    if kind != "unknown":
        return kind
    return declared.get(family.removesuffix("_total"), kind) if family.endswith("_total") else kind


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def absent_message(reading: CounterReading, url: str) -> str:
    """Why no count could be read, with the counters that are there (a typo shows at once)."""
    there = ", ".join(reading.counters[:8]) + (" ..." if len(reading.counters) > 8 else "")
    found = f"; counters there: {there}" if there else "; it has no counters at all"
    return (f"the counter {reading.metric} is not at {url}{found}"
            " (set PERF_TEST_STATS_METRIC / --stats-metric to the collector's received-events counter)")


class CounterTotal(Generic[K]):
    """Counters kept monotonic across resets, as Prometheus' increase() does: a sum and each series.

    A series whose value falls has restarted from 0: what it had counted before stays counted.
    A series that vanishes keeps its last value (a restarted server shows a series again only
    after its first event). `whole_resets`: one source (a collector's /stats/throughput) counts
    every series, so when one falls they all restarted, the vanished ones included; each then
    counts again from 0. A reset followed by more counting than before it, between two reads,
    cannot be seen: read often enough (PERF_TEST_STATS_INTERVAL_SECS) for that not to happen.
    Series are keyed by label sets (Prometheus) or by event-type labels (JSON stats).
    """

    def __init__(self, whole_resets: bool = False) -> None:
        self.whole_resets = whole_resets
        self._last: dict[K, float] = {}
        self._carried: dict[K, float] = {}
        self.resets = 0  # reads in which at least one series fell

    def update(self: "CounterTotal[LabelSet]", reading: CounterReading) -> int:
        return self.update_series(reading.series)

    def update_series(self, series: Mapping[K, float]) -> int:
        """Take one read of every series; returns the monotonic total."""
        fell = [key for key, value in series.items() if value < self._last.get(key, value)]
        if fell and self.whole_resets:
            fell = list(self._last)
        for key in fell:
            self._carried[key] = self._carried.get(key, 0.0) + self._last[key]
            self._last[key] = 0.0
        self._last.update(series)
        self.resets += bool(fell)  # reads that saw a fall: a restart resets every series at once
        return self.total

    @property
    def total(self) -> int:
        return int(round(sum(self._carried.values()) + sum(self._last.values())))

    def values(self) -> dict[K, int]:
        """Each series' count, carried across its resets."""
        return {key: int(round(self._carried.get(key, 0.0) + value)) for key, value in self._last.items()}
