"""Counters, HDR histograms and the per-second timeline.

Memory is not fixed; it grows with the run's length, slowly. Fixed: three full-run histograms,
one per-second histogram replaced each second, one second's raw schedule lags and, with
--abort-on-fail, the sliding window's per-second histograms. Growing: a timeline row per second
(about half a kilobyte kept: 1.6 MB for an hour, a few MB more while the results are built at
the end), each second's encoded latency histogram in a segment of a scale-out run (about 0.1 to
2 KB a second), and one byte per batch up to the last failed one. The measured peak RSS of a
`soak-1h` run, and what an hour adds, is in docs/benchmarks.md ("Memory of a one-hour soak").
"""

from __future__ import annotations

import heapq
import math
import re
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from itertools import repeat
from operator import sub
from typing import Any

from hdrh.histogram import HdrHistogram

# Microseconds, from 1 µs to one hour, three significant figures.
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 3_600_000_000, 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
LATE_THRESHOLD_S = 0.010  # a batch sent more than 10 ms after its intended time is late
ERROR_SAMPLES_PER_CLASS = 3
# Raw samples wait in a small buffer and reach the histograms grouped by value, at each
# second boundary or when this many are pending: hdrhistogram's record_value is pure
# Python (~2.4 µs), too slow to call four times per batch at 50k batches/s.
PENDING_MAX = 65_536


def _histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


def encode(h: HdrHistogram) -> str:
    """HDR's own compressed encoding as text: what a segment's results carry for the merge."""
    encoded: bytes = h.encode()
    return encoded.decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


def merge_encoded(texts: "list[str]", digits: int = _DIGITS) -> HdrHistogram:
    """One histogram holding every encoded one's counts: merged, never averaged."""
    merged = HdrHistogram(_LOWEST_US, _HIGHEST_US, digits)
    for text in texts:
        merged.add(decode(text))
    return merged


def _record_grouped(samples: "array[int]", *histograms: HdrHistogram) -> None:
    """Add raw microsecond samples to histograms, one record_value call per distinct value."""
    for value, count in Counter(samples).items():
        clamped = min(max(value, _LOWEST_US), _HIGHEST_US)
        for h in histograms:
            h.record_value(clamped, count)
    del samples[:]


BatchRanges = list[tuple[int, int]]  # inclusive (first, last) batch numbers, ascending
_RUNS = re.compile(rb"\x01+")


class BatchSet:
    """Batch numbers kept exactly, however many: one byte per batch up to the highest one added.

    Failures come in bursts (a collector restarting for a minute fails every batch it is
    sent), so the set is read back as ranges, found at C speed with one regex over the bytes.
    """

    def __init__(self) -> None:
        self._flags = bytearray()
        self.count = 0

    def add(self, batch: int) -> None:
        flags = self._flags
        if batch >= len(flags):
            flags.extend(bytes(batch + 1 - len(flags)))
        if not flags[batch]:
            flags[batch] = 1
            self.count += 1

    def __contains__(self, batch: int) -> bool:
        return 0 <= batch < len(self._flags) and self._flags[batch] == 1

    def ranges(self) -> BatchRanges:
        return [(m.start(), m.end() - 1) for m in _RUNS.finditer(self._flags)]


def ranges_count(ranges: BatchRanges) -> int:
    return sum(last - first + 1 for first, last in ranges)


@dataclass(frozen=True)
class Percentiles:
    """Milliseconds; what the report and the results JSON show for one histogram."""

    count: int
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    mean: float

    @classmethod
    def of(cls, h: HdrHistogram) -> "Percentiles":
        if h.get_total_count() == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        at = h.get_percentile_to_value_dict(list(PERCENTILES))  # one pass for all four
        p = [at[q] / 1000 for q in PERCENTILES]
        return cls(h.get_total_count(), p[0], p[1], p[2], p[3], h.get_max_value() / 1000, mean_of(h) / 1000)


def mean_of(h: HdrHistogram) -> float:
    """HDR's mean (each bucket at its median value), read over the recorded range only.

    The library's own get_mean_value walks every bucket through a Python iterator: about
    20 ms, long enough to make senders late when the --abort-on-fail guard judges its window.
    """
    if not h.get_total_count():
        return 0.0
    # min_value and max_value are the library's own bounds of what was recorded (or merged in).
    lo = h.get_counts_array_index(min(h.min_value, h.max_value))
    hi = min(h.get_counts_array_index(h.max_value), h.counts_len - 1)
    total = 0
    for index, count in enumerate(h.counts[lo:hi + 1], lo):
        if count:
            low: int = h.get_value_from_index(index)
            total += count * (low + ((h.get_highest_equivalent_value(low) - low + 1) >> 1))
    return float(total / h.get_total_count())


@dataclass(frozen=True)
class Window:
    """The last few seconds of a run, for thresholds judged while it goes on."""

    seconds: int
    latency: Percentiles
    sent_events: int
    failed_events: int

    @property
    def error_ratio(self) -> float:
        return self.failed_events / self.sent_events if self.sent_events else 0.0


@dataclass
class Second:
    """One timeline row: what happened in one second of the load phase.

    Latency is from the intended send time, of the batches acknowledged in this second; None
    where a second has no data (no batch acknowledged, none sent, no stats sample).
    """

    t: int
    sent_events: int = 0
    acked_events: int = 0
    failed_events: int = 0
    p99_ms: float | None = None  # None: no batch was acknowledged in this second
    server_events: int | None = None  # stats delta the sampler saw in this second
    p50_ms: float | None = None
    p90_ms: float | None = None
    max_ms: float | None = None
    lag_p99_ms: float | None = None  # schedule lag p99 of the batches sent in this second; None: none sent
    errors: dict[str, int] = field(default_factory=dict)  # failed events by class
    in_flight: int | None = None  # requests sent and not yet answered at the second's end


@dataclass(frozen=True)
class Snapshot:
    """The recorder's figures at one moment, read beside the load (the live view), never from a sender."""

    elapsed_s: float
    events_sent: int
    events_ok: int
    events_failed: int
    in_flight: int  # requests sent and not yet answered
    server_events: int  # what the stats sampler has seen the server count since the baseline
    errors: dict[str, int]  # failed batches by class
    last: Second | None  # the last closed second


def _copy(row: Second) -> Second:
    return replace(row, errors=dict(row.errors))


@dataclass
class ErrorClass:
    batches: int = 0
    events: int = 0
    samples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HostsFigures:
    """What the simulated hosts did, beside the per-delivery counters of LoadSummary."""

    hosts: int
    max_items: int
    max_latency_s: float
    events_due: int  # events the plan had due in the load window
    events_held: int  # due, but never sent: still held at their hosts when the window closed
    full_deliveries: int  # sent holding max_items events
    timed_deliveries: int  # sent because the oldest held event had waited max_latency_s
    hosts_delivering: int  # hosts that sent at least one delivery
    connections: int  # TCP connections opened (one per host; more after the server closed some)
    connect_failures: int  # connections that could not be opened before the load started


@dataclass(frozen=True)
class WsmanFigures:
    """What WS-Management added around the events (--protocol wsman), and what the subscription asked."""

    enumerations: int
    envelopes: int  # Events envelopes posted, retries included
    retries: int
    wrong_acks: int  # a 2xx whose Ack did not relate to the envelope's MessageID
    heartbeats: int
    heartbeats_acked: int
    # The first host's subscription (None when no host enumerated): Heartbeats, MaxTime, MaxEnvelopeSize.
    heartbeat_s: float | None = None
    max_time_s: float | None = None
    max_envelope: int | None = None


@dataclass(frozen=True)
class LoadSummary:
    """Everything the load phase measured; crosses into verdict and reports."""

    elapsed_s: float
    batches_sent: int
    events_sent: int
    batches_ok: int
    events_ok: int
    batches_failed: int
    events_failed: int
    late_batches: int
    latency: Percentiles
    service: Percentiles
    schedule_lag: Percentiles
    errors: dict[str, ErrorClass]
    failed_ranges: BatchRanges  # every failed batch, exactly
    timeline: list[Second]
    timed_out: bool
    interrupted: bool
    # Due within the plan but never sent because every sender was busy: the run fell behind.
    due_not_sent: int = 0
    # The load window (from the plan's start until it ended, or was stopped or timed out), and the
    # events the plan had due within it (None at unlimited rate): what a cut-short run is judged on.
    window_s: float = 0.0
    due_events: int | None = None
    # Simulated hosts (PERF_TEST_HOSTS): each event's latency from when it became due to its
    # delivery's reply, and the hosts' own figures; None without hosts.
    event_latency: Percentiles | None = None
    hosts: HostsFigures | None = None
    wsman: WsmanFigures | None = None

    # Why a threshold stopped the run early (--abort-on-fail), or None.
    aborted: str | None = None
    # For a merge of segments (issue 11): the whole-run histograms in HDR's own compressed
    # encoding (base64 text) by name, and each second's latency histogram by timeline row.
    histograms: dict[str, str] | None = None
    second_histograms: dict[int, str] | None = None

    @property
    def cut_short(self) -> bool:
        """Interrupted, aborted by a threshold, or out of time before the plan was sent."""
        return self.interrupted or self.timed_out or self.aborted is not None


class Recorder:
    """Takes one call per batch from the senders; cheap enough for 50k batches/s."""

    def __init__(self, start: float, window_secs: int = 0, *, second_histograms: bool = False) -> None:
        self.start = start
        # A segment keeps each second's latency histogram (encoded, ~100 bytes) for the merge.
        self.second_hists: dict[int, str] | None = {} if second_histograms else None
        # The last `window_secs` closed seconds (latency histogram, sent, failed), for thresholds
        # judged on a sliding window while the run goes on (--abort-on-fail); off by default.
        self._window: deque[tuple[HdrHistogram, int, int]] | None = deque(maxlen=window_secs) if window_secs else None
        self.latency = _histogram()
        self.service = _histogram()
        self.lag = _histogram()
        self._second = _histogram()
        # Microsecond samples not yet in the histograms (see PENDING_MAX).
        self._lag_us: array[int] = array("q")
        self._latency_us: array[int] = array("q")
        self._service_us: array[int] = array("q")
        # This second's schedule lags, raw: its p99 comes from them exactly (a C-speed copy per
        # flush and one partial sort per second), cheaper than a second histogram fed per value.
        self._second_lag_us: array[int] = array("q")
        self._second_index = 0
        self.timeline: list[Second] = [Second(0)]
        self._row_now = self.timeline[0]
        self.batches_sent = self.events_sent = 0
        self.batches_ok = self.events_ok = 0
        self.batches_failed = self.events_failed = 0
        self.late_batches = 0
        self.errors: dict[str, ErrorClass] = {}
        self.failed_set = BatchSet()
        self.server_events = 0

    def _row(self, when: float) -> Second:
        index = int(when - self.start)
        if index <= self._second_index:
            # The common case: still this second (or a late sample from an earlier one).
            return self._row_now if index == self._second_index else self.timeline[max(index, 0)]
        self._close_second()
        # Seconds in which nothing happened end with what was in flight when the last one closed.
        in_flight = self.timeline[self._second_index].in_flight
        while len(self.timeline) <= index:
            self.timeline.append(Second(len(self.timeline), in_flight=in_flight))
        self._second_index = index
        self._row_now = self.timeline[index]
        return self._row_now

    def _flush(self) -> None:
        self._second_lag_us.extend(self._lag_us)
        _record_grouped(self._lag_us, self.lag)
        _record_grouped(self._latency_us, self.latency, self._second)
        _record_grouped(self._service_us, self.service)

    def _close_second(self) -> None:
        self._flush()
        row = self.timeline[self._second_index]
        second, lag = self._second, self._second_lag_us
        # A new one rather than the library's reset(), which zeroes every bucket in Python; the
        # closed second's histogram is not written again, so the sliding window keeps it as it is.
        self._second = _histogram()
        if self._window is not None:
            self._window.append((second, row.sent_events, row.failed_events))
        if second.get_total_count():
            # One pass over the counts for all three, about a millisecond once a second.
            p = second.get_percentile_to_value_dict([50.0, 90.0, 99.0])
            row.p50_ms, row.p90_ms, row.p99_ms = p[50.0] / 1000, p[90.0] / 1000, p[99.0] / 1000
            row.max_ms = second.get_max_value() / 1000
            if self.second_hists is not None:
                self.second_hists[row.t] = encode(second)
        if lag:
            above = len(lag) - math.ceil(len(lag) * 0.99) + 1  # the p99 is the above-th largest
            row.lag_p99_ms = max(heapq.nlargest(above, lag)[-1], _LOWEST_US) / 1000
            del lag[:]
        row.in_flight = self.batches_sent - self.batches_ok - self.batches_failed

    def tick(self, now: float) -> None:
        """Close every second before `now`, even one in which nothing was acknowledged."""
        self._row(now)

    def snapshot(self, now: float) -> Snapshot:
        """Close the seconds before `now` and read the counters: for a task beside the senders."""
        self.tick(now)
        index = self._second_index
        return Snapshot(
            elapsed_s=max(now - self.start, 0.0),
            events_sent=self.events_sent,
            events_ok=self.events_ok,
            events_failed=self.events_failed,
            in_flight=self.batches_sent - self.batches_ok - self.batches_failed,
            server_events=self.server_events,
            errors={name: cls.batches for name, cls in self.errors.items()},
            last=_copy(self.timeline[index - 1]) if index > 0 else None,
        )

    def window(self) -> Window | None:
        """Latency and errors over the sliding window of closed seconds; None before it is full."""
        if self._window is None or len(self._window) < (self._window.maxlen or 0):
            return None
        merged = _histogram()
        sent = failed = 0
        for hist, s, f in self._window:
            merged.add(hist)
            sent += s
            failed += f
        return Window(len(self._window), Percentiles.of(merged), sent, failed)

    def sent(self, events: int, intended: float, actual: float) -> None:
        # The row first: crossing into a new second closes the old one before this batch counts.
        row = self._row(actual)
        self.batches_sent += 1
        self.events_sent += events
        lag = actual - intended
        if lag > LATE_THRESHOLD_S:
            self.late_batches += 1
        row.sent_events += events
        self._lag_us.append(int(lag * 1e6))
        if len(self._lag_us) >= PENDING_MAX:
            self._flush()

    def ok(self, events: int, intended: float, actual: float, done: float) -> None:
        # The row first: crossing into a new second closes the old one before this sample lands.
        self._row(done).acked_events += events
        self.batches_ok += 1
        self.events_ok += events
        self._latency_us.append(int((done - intended) * 1e6))
        self._service_us.append(int((done - actual) * 1e6))
        if len(self._latency_us) >= PENDING_MAX:
            self._flush()

    def failed(self, batch: int, events: int, error_class: str, detail: str, done: float) -> bool:
        """Count a failed batch; True when its detail is among the first few of its class."""
        row = self._row(done)
        self.batches_failed += 1
        self.events_failed += events
        row.failed_events += events
        row.errors[error_class] = row.errors.get(error_class, 0) + events
        self.failed_set.add(batch)
        cls = self.errors.setdefault(error_class, ErrorClass())
        cls.batches += 1
        cls.events += events
        if len(cls.samples) < ERROR_SAMPLES_PER_CLASS:
            cls.samples.append(f"batch {batch}: {detail}")
            return True
        return False

    def server_sample(self, when: float, delta_events: int) -> None:
        row = self._row(when)
        row.server_events = (row.server_events or 0) + delta_events
        self.server_events += delta_events

    def summary(
        self, end: float, *, timed_out: bool = False, interrupted: bool = False, due_not_sent: int = 0,
        window_s: float | None = None, due_events: int | None = None, aborted: str | None = None,
    ) -> LoadSummary:
        self._close_second()
        return LoadSummary(
            elapsed_s=max(end - self.start, 1e-9),
            batches_sent=self.batches_sent,
            events_sent=self.events_sent,
            batches_ok=self.batches_ok,
            events_ok=self.events_ok,
            batches_failed=self.batches_failed,
            events_failed=self.events_failed,
            late_batches=self.late_batches,
            latency=Percentiles.of(self.latency),
            service=Percentiles.of(self.service),
            schedule_lag=Percentiles.of(self.lag),
            errors=dict(self.errors),
            failed_ranges=self.failed_set.ranges(),
            timeline=list(self.timeline),
            timed_out=timed_out,
            interrupted=interrupted,
            due_not_sent=due_not_sent,
            window_s=max(end - self.start, 0.0) if window_s is None else window_s,
            due_events=due_events,
            aborted=aborted,
            histograms=self.encoded() if self.second_hists is not None else None,
            second_histograms=dict(self.second_hists) if self.second_hists is not None else None,
        )

    def encoded(self) -> dict[str, str]:
        """The whole-run histograms, HDR-encoded, for a merge of segments."""
        return {"latency": encode(self.latency), "service": encode(self.service), "schedule_lag": encode(self.lag)}


def record_bucketed(samples_s: "array[float]", histogram: HdrHistogram) -> None:
    """Add latency samples (seconds) to a histogram with one record_value call per bucket.

    For many samples per second (simulated hosts record one per event): pyarrow maps each
    sample to its bucket's lowest value in C, so the pure-Python record_value runs once per
    distinct bucket, not once per event. The histogram ends up the same as recording each
    sample (its max, mean and percentiles are all read per bucket).
    """
    if not samples_s:
        return
    import pyarrow as pa
    import pyarrow.compute as pc

    seconds = pa.Array.from_buffers(pa.float64(), len(samples_s), [None, pa.py_buffer(samples_s.tobytes())])
    us = pc.cast(pc.trunc(pc.multiply(seconds, 1e6)), pa.int64())
    us = pc.min_element_wise(pc.max_element_wise(us, _LOWEST_US), _HIGHEST_US)
    # The lowest value of each sample's bucket: drop the bits below the histogram's resolution.
    magnitude = histogram.sub_bucket_half_count_magnitude  # 10 at 3 significant figures, 7 at 2
    shift = pc.max_element_wise(pc.subtract(pc.cast(pc.floor(pc.log2(us)), pa.int64()), magnitude), 0)
    lowest = pc.shift_left(pc.shift_right(us, shift), shift)
    counts = pc.value_counts(lowest)
    for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
        histogram.record_value(value, count)
    del samples_s[:]


class HostRecorder(Recorder):
    """The Recorder, plus one latency sample per event: from when it was due to its delivery's reply."""

    def __init__(self, start: float, *args: int, **kwargs: Any) -> None:
        super().__init__(start, *args, **kwargs)
        # Two significant figures (1 %) are plenty for latencies of seconds, and keep the buckets
        # few enough for record_bucketed to pay off from a few thousand events per second.
        self.event_latency = HdrHistogram(_LOWEST_US, _HIGHEST_US, 2)
        self._event_s: array[float] = array("d")

    def event_latencies(self, done_s: float, due_s: "array[float]") -> None:
        """`done_s`: the reply, `due_s`: the delivery's events' due times, seconds after the start."""
        self._event_s.extend(map(sub, repeat(done_s, len(due_s)), due_s))
        if len(self._event_s) >= PENDING_MAX:
            record_bucketed(self._event_s, self.event_latency)

    def _flush(self) -> None:
        super()._flush()
        record_bucketed(self._event_s, self.event_latency)

    def summary(self, end: float, **kwargs: Any) -> LoadSummary:
        load = super().summary(end, **kwargs)
        hists = load.histograms
        if hists is not None:
            hists = {**hists, "event": encode(self.event_latency)}
        return replace(load, event_latency=Percentiles.of(self.event_latency), histograms=hists)
