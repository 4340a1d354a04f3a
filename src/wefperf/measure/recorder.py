"""Counters, HDR histograms and the per-second timeline.

Latency from the intended send time covers every batch that fell due: acknowledged ones at
their reply, failed ones at their failure, and ones never sent at the end of the load window
(no coordinated omission for failures either). The acknowledged-only figure is kept beside it,
labelled so.

Memory is not fixed; it grows with the run's length, slowly. Fixed: the full-run histograms,
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
from dataclasses import dataclass, replace
from itertools import repeat
from operator import sub
from typing import Any

from hdrh.histogram import HdrHistogram

from ..model import (
    ERROR_SAMPLES_PER_CLASS,
    BatchRanges,
    ErrorClass,
    LoadSummary,
    Percentiles,
    Second,
    Snapshot,
)
from .hdr import HIGHEST_US as _HIGHEST_US
from .hdr import LOWEST_US as _LOWEST_US
from .hdr import encode, release
from .hdr import histogram as _histogram
from .reach import ReachTracker

LATE_THRESHOLD_S = 0.010  # a batch sent more than 10 ms after its intended time is late
# Raw samples wait in a small buffer and reach the histograms grouped by value, at each
# second boundary or when this many are pending: hdrhistogram's record_value is pure
# Python (~2.4 µs), too slow to call four times per batch at 50k batches/s.
PENDING_MAX = 65_536


def _record_grouped(samples: "array[int]", *histograms: HdrHistogram) -> None:
    """Add raw microsecond samples to histograms, one record_value call per distinct value."""
    for value, count in Counter(samples).items():
        clamped = min(max(value, _LOWEST_US), _HIGHEST_US)
        for h in histograms:
            h.record_value(clamped, count)
    del samples[:]


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
class Window:
    """The last few seconds of a run, for thresholds judged while it goes on."""

    seconds: int
    latency: Percentiles
    sent_events: int
    failed_events: int

    @property
    def error_ratio(self) -> float:
        return self.failed_events / self.sent_events if self.sent_events else 0.0


def _copy(row: Second) -> Second:
    return replace(row, errors=dict(row.errors))


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
        self.latency_acked = _histogram()
        self.service = _histogram()
        self.lag = _histogram()
        self._second = _histogram()
        # Microsecond samples not yet in the histograms (see PENDING_MAX).
        self._lag_us: array[int] = array("q")
        # Acknowledged batches' latency goes to both latency histograms, failed ones' to the first only.
        self._acked_us: array[int] = array("q")
        self._failed_us: array[int] = array("q")
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
        self.batches_unsent = self.events_unsent = 0  # failed without being sent (see `unsent`)
        self.late_batches = 0
        self.last_sent = start  # when the latest batch went out
        self.errors: dict[str, ErrorClass] = {}
        self.failed_set = BatchSet()
        self.server_events = 0
        self.reach = ReachTracker()  # when batches were refused or reset: a collector gone (reach.py)

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
        _record_grouped(self._acked_us, self.latency, self._second, self.latency_acked)
        _record_grouped(self._failed_us, self.latency, self._second)
        _record_grouped(self._service_us, self.service)

    def _close_second(self) -> None:
        self._flush()
        row = self.timeline[self._second_index]
        second, lag = self._second, self._second_lag_us
        # A new one rather than the library's reset(), which zeroes every bucket in Python; the
        # closed second's histogram is not written again, so the sliding window keeps it as it is.
        self._second = _histogram()
        kept = None
        if self._window is not None:
            if len(self._window) == self._window.maxlen:
                release(self._window[0][0])  # the oldest second leaves the window with the append below
            kept = self._judged_second(second)
            self._window.append((kept, row.sent_events, row.failed_events))
        if second.get_total_count():
            # One pass over the counts for all three, about a millisecond once a second.
            p = second.get_percentile_to_value_dict([50.0, 90.0, 99.0])
            row.p50_ms, row.p90_ms, row.p99_ms = p[50.0] / 1000, p[90.0] / 1000, p[99.0] / 1000
            row.max_ms = second.get_max_value() / 1000
            if self.second_hists is not None:
                self.second_hists[row.t] = encode(second)
        if second is not kept:
            release(second)
        if lag:
            above = len(lag) - math.ceil(len(lag) * 0.99) + 1  # the p99 is the above-th largest
            row.lag_p99_ms = max(heapq.nlargest(above, lag)[-1], _LOWEST_US) / 1000
            del lag[:]
        row.in_flight = self._in_flight()

    def _in_flight(self) -> int:
        return self.batches_sent + self.batches_unsent - self.batches_ok - self.batches_failed

    def _judged_second(self, second: HdrHistogram) -> HdrHistogram:
        """The closed second's latency that --abort-on-fail judges: the same samples as the verdict."""
        return second

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
            in_flight=self._in_flight(),
            server_events=self.server_events,
            errors={name: cls.batches for name, cls in self.errors.items()},
            last=_copy(self.timeline[index - 1]) if index > 0 else None,
        )

    def window(self) -> Window | None:
        """Latency and errors over the sliding window of closed seconds; None before it is full."""
        if self._window is None or len(self._window) < (self._window.maxlen or 0):
            return None
        first = self._window[0][0]
        merged = HdrHistogram(_LOWEST_US, _HIGHEST_US, first.significant_figures)
        sent = failed = 0
        for hist, s, f in self._window:
            merged.add(hist)
            sent += s
            failed += f
        judged = Percentiles.of(merged)
        release(merged)
        return Window(len(self._window), judged, sent, failed)

    def sent(self, events: int, intended: float, actual: float) -> None:
        # The row first: crossing into a new second closes the old one before this batch counts.
        # (_row's common case inline: still this second.)
        row = self._row_now if int(actual - self.start) == self._second_index else self._row(actual)
        self.last_sent = actual
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
        row = self._row_now if int(done - self.start) == self._second_index else self._row(done)
        row.acked_events += events
        if self.reach.down is not None:
            self.reach.up(done)
        self.batches_ok += 1
        self.events_ok += events
        latency = int((done - intended) * 1e6)
        self._acked_us.append(latency)
        self._service_us.append(int((done - actual) * 1e6))
        if len(self._acked_us) >= PENDING_MAX:
            self._flush()

    def unsent(self, batches: int, events: int) -> None:
        """Of the failure just counted (`failed`, called first: it closes the second), the batches
        and events that never had a byte written: failed of what was due, never counted by `sent`."""
        self.batches_unsent += batches
        self.events_unsent += events

    def failed(self, batch: int, events: int, error_class: str, detail: str, done: float,
               intended: float | None = None) -> bool:
        """Count a failed batch; True when its detail is among the first few of its class.

        `intended`: the batch's intended send time; its latency then runs until the failure,
        so a server that times out its slowest requests cannot improve its percentiles.
        """
        row = self._row(done)
        if intended is not None:
            self._failed_us.append(int((done - intended) * 1e6))
            if len(self._failed_us) >= PENDING_MAX:
                self._flush()
        self.reach.failed(error_class, done, self.events_ok)
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

    def never_sent(self, intended: "list[float]", window_end: float) -> None:
        """Batches that fell due in the window but never went out: latency until the window's end."""
        if not intended:
            return
        self._flush()
        samples: array[float] = array("d", (window_end - t for t in intended))
        record_bucketed(samples, self.latency)

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
            latency_acked=Percentiles.of(self.latency_acked),
            service=Percentiles.of(self.service),
            schedule_lag=Percentiles.of(self.lag),
            errors=dict(self.errors),
            failed_ranges=self.failed_set.ranges(),
            timeline=list(self.timeline),
            timed_out=timed_out,
            interrupted=interrupted,
            due_not_sent=due_not_sent,
            events_unsent=self.events_unsent,
            window_s=max(end - self.start, 0.0) if window_s is None else window_s,
            due_events=due_events,
            aborted=aborted,
            histograms=self.encoded() if self.second_hists is not None else None,
            second_histograms=dict(self.second_hists) if self.second_hists is not None else None,
        )

    def encoded(self) -> dict[str, str]:
        """The whole-run histograms, HDR-encoded, for a merge of segments."""
        return {"latency": encode(self.latency), "latency_acked": encode(self.latency_acked),
                "service": encode(self.service), "schedule_lag": encode(self.lag)}


def record_bucketed(samples_s: "array[float]", *histograms: HdrHistogram) -> None:
    """Add latency samples (seconds) to histograms with one record_value call per bucket.

    For many samples per second (simulated hosts record one per event): pyarrow maps each
    sample to its bucket's lowest value in C, so the pure-Python record_value runs once per
    distinct bucket, not once per event. Each histogram ends up the same as recording each
    sample (its max, mean and percentiles are all read per bucket). The histograms share
    one precision (the first one's).
    """
    if not samples_s:
        return
    import pyarrow as pa
    import pyarrow.compute as pc  # loaded before the clock by the hosts engine (see hosts.py)

    seconds = pa.Array.from_buffers(pa.float64(), len(samples_s), [None, pa.py_buffer(samples_s.tobytes())])
    us = pc.cast(pc.trunc(pc.multiply(seconds, 1e6)), pa.int64())
    us = pc.min_element_wise(pc.max_element_wise(us, _LOWEST_US), _HIGHEST_US)
    # The lowest value of each sample's bucket: drop the bits below the histogram's resolution.
    magnitude = histograms[0].sub_bucket_half_count_magnitude  # 10 at 3 significant figures, 7 at 2
    shift = pc.max_element_wise(pc.subtract(pc.cast(pc.floor(pc.log2(us)), pa.int64()), magnitude), 0)
    lowest = pc.shift_left(pc.shift_right(us, shift), shift)
    counts = pc.value_counts(lowest)
    for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
        for histogram in histograms:
            histogram.record_value(value, count)
    del samples_s[:]


def _event_histogram() -> HdrHistogram:
    # Two significant figures (1 %) are plenty for latencies of seconds, and keep the buckets
    # few enough for record_bucketed to pay off from a few thousand events per second.
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, 2)


class HostRecorder(Recorder):
    """The Recorder, plus one latency sample per event: from when it was due to its delivery's end.

    An event's latency ends at its delivery's reply, or at its failure; an event still held at
    its host when the window closed counts until then. The sliding window of --abort-on-fail
    judges these per-event samples, as the final verdict does.
    """

    def __init__(self, start: float, *args: int, **kwargs: Any) -> None:
        super().__init__(start, *args, **kwargs)
        self.event_latency = _event_histogram()
        self._second_event = _event_histogram()
        self._event_s: array[float] = array("d")

    def event_latencies(self, done_s: float, due_s: "array[float]") -> None:
        """`done_s`: the delivery's end, `due_s`: its events' due times, seconds after the start."""
        self._event_s.extend(map(sub, repeat(done_s, len(due_s)), due_s))
        if len(self._event_s) >= PENDING_MAX:
            record_bucketed(self._event_s, self.event_latency, self._second_event)

    def _flush(self) -> None:
        super()._flush()
        record_bucketed(self._event_s, self.event_latency, self._second_event)

    def _judged_second(self, second: HdrHistogram) -> HdrHistogram:
        judged, self._second_event = self._second_event, _event_histogram()
        return judged

    def summary(self, end: float, **kwargs: Any) -> LoadSummary:
        load = super().summary(end, **kwargs)
        hists = load.histograms
        if hists is not None:
            hists = {**hists, "event": encode(self.event_latency)}
        return replace(load, event_latency=Percentiles.of(self.event_latency), histograms=hists)
