"""The run's data: what a run measured and decided, and its results JSON, both ways.

One module for the types that cross module boundaries after the load: the load summary and
its parts (percentiles, timeline seconds, error classes, hosts and WS-Man figures), the
server's counts, the verdict, a segment's place in its run, and the run's result. Each type's
`to_dict` and `from_dict` sit side by side, so what the results JSON says and what a merge or
a report reads back from it cannot drift apart. The results JSON keeps the seed's keys and
wefperf's additions as they were; figures rounded for display (times to the millisecond,
means to the microsecond) come back rounded.

A leaf: nothing here imports the rest of wefperf at run time (the recorder, the runner and the
reports import this), so the figures can be read without the code that measured them.
"""

from __future__ import annotations

import base64
import socket
import zlib
from array import array
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import IntEnum
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hdrh.histogram import HdrHistogram

    from .verify.model import VerifyResult

Data = Mapping[str, Any]
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
BatchRanges = list[tuple[int, int]]  # inclusive (first, last) batch numbers, ascending
Bound = Literal["max", "min"]
ERROR_SAMPLES_PER_CLASS = 3  # an error class keeps the details of its first few batches


class ExitCode(IntEnum):
    """An `int`, so `sys.exit(ExitCode.FAILED)` and `code == 1` both work."""

    PASSED = 0
    FAILED = 1  # the test ran and did not pass (or a collector dropped events)
    USAGE = 2  # bad flag, setting, profile or path: one line says which
    INTERRUPTED = 130  # Ctrl-C / SIGTERM, as a shell reports SIGINT (128 + 2)


def installed_version() -> str:
    """The version is written once, in pyproject.toml; this reads what was installed from it."""
    try:
        return metadata.version("wefperf")
    except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"


# -- latency -----------------------------------------------------------------------------------


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
    def of(cls, h: HdrHistogram) -> Percentiles:
        if h.get_total_count() == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        at = h.get_percentile_to_value_dict(list(PERCENTILES))  # one pass for all four
        p = [at[q] / 1000 for q in PERCENTILES]
        return cls(h.get_total_count(), p[0], p[1], p[2], p[3], h.get_max_value() / 1000, mean_of(h) / 1000)

    def to_dict(self) -> dict[str, float]:
        return {"count": self.count, "p50": self.p50, "p90": self.p90, "p99": self.p99, "p99_9": self.p999,
                "max": self.max, "mean": round(self.mean, 3)}

    @classmethod
    def from_dict(cls, d: Data) -> Percentiles:
        return cls(int(d["count"]), float(d["p50"]), float(d["p90"]), float(d["p99"]), float(d["p99_9"]),
                   float(d["max"]), float(d["mean"]))


def _pct_or_none(d: Data | None) -> Percentiles | None:
    return Percentiles.from_dict(d) if d else None


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


# -- the load ----------------------------------------------------------------------------------


@dataclass
class Second:
    """One timeline row: what happened in one second of the load phase.

    Latency is from the intended send time, of the batches that completed in this second
    (acknowledged or failed); None where a second has no data (none completed, none sent, no
    stats sample).
    """

    t: int
    sent_events: int = 0
    acked_events: int = 0
    failed_events: int = 0
    p99_ms: float | None = None  # None: no batch completed (acknowledged or failed) in this second
    server_events: int | None = None  # stats delta the sampler saw in this second
    p50_ms: float | None = None
    p90_ms: float | None = None
    max_ms: float | None = None
    lag_p99_ms: float | None = None  # schedule lag p99 of the batches sent in this second; None: none sent
    errors: dict[str, int] = field(default_factory=dict)  # failed events by class
    in_flight: int | None = None  # requests sent and not yet answered at the second's end

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Data) -> Second:
        known = {f.name for f in fields(cls)}
        row = cls(**{k: v for k, v in d.items() if k in known})
        row.errors = {str(k): int(v) for k, v in (d.get("errors") or {}).items()}
        return row


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


@dataclass(frozen=True)
class ProgressInfo:
    """One plain progress line's figures, read from the recorder's snapshot beside the load (runner/phases.py).

    Rates are over the load so far, the same measure the summary uses at the end; `p99_ms` is the
    last closed second's, as the live view shows it.
    """

    events_sent: int
    elapsed_s: float
    rate_eps: float  # events sent per second
    remaining_s: float | None
    events_acked: int = 0
    acked_rate_eps: float = 0.0  # events acknowledged (2xx) per second
    events_failed: int = 0
    in_flight: int = 0
    p99_ms: float | None = None
    processes_running: int | None = None  # a run over several processes: how many still send, of `processes`
    processes: int = 0


@dataclass
class ErrorClass:
    batches: int = 0
    events: int = 0
    samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "events": self.events, "samples": self.samples}

    @classmethod
    def from_dict(cls, d: Data) -> ErrorClass:
        return cls(int(d["batches"]), int(d["events"]), [str(s) for s in d.get("samples") or []])


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Data) -> HostsFigures:
        counts = {f.name: int(d[f.name]) for f in fields(cls) if f.name != "max_latency_s"}
        return cls(**counts, max_latency_s=float(d["max_latency_s"]))


@dataclass(frozen=True)
class SubscriptionAsked:
    """One distinct set of options the collector's Subscribe gave, and how many hosts held it last."""

    max_elements: int | None  # None: the Subscribe had no w:MaxElements
    max_time_s: float
    max_envelope: int
    heartbeat_s: float
    hosts: int

    @classmethod
    def from_dict(cls, d: Data) -> SubscriptionAsked:
        return cls(None if d.get("max_elements") is None else int(d["max_elements"]), float(d["max_time_s"]),
                   int(d["max_envelope"]), float(d["heartbeat_s"]), int(d["hosts"]))


@dataclass(frozen=True)
class BatchingObeyed:
    """How many hosts delivered at most `max_items` events or after `max_latency_s`, and why:
    `items_from`/`latency_from` name the subscription option or the flag that decided."""

    max_items: int
    max_latency_s: float
    items_from: str
    latency_from: str
    hosts: int

    @classmethod
    def from_dict(cls, d: Data) -> BatchingObeyed:
        return cls(int(d["max_items"]), float(d["max_latency_s"]), str(d["items_from"]), str(d["latency_from"]),
                   int(d["hosts"]))


@dataclass(frozen=True)
class WsmanFigures:
    """What WS-Management added around the events (--protocol wsman), and what the subscription asked."""

    enumerations: int
    envelopes: int  # Events envelopes posted, retries included
    retries: int
    wrong_acks: int  # a 2xx whose Ack did not relate to the envelope's MessageID
    heartbeats: int
    heartbeats_acked: int
    # The first host's subscription (None when no host enumerated): Heartbeats, MaxTime, MaxEnvelopeSize,
    # ContentFormat (RenderedText: the hosts added each event's RenderingInfo).
    heartbeat_s: float | None = None
    max_time_s: float | None = None
    max_envelope: int | None = None
    content_format: str | None = None
    # Refresh: the Enumerates after each host's first (also in `enumerations`), those that failed, and
    # the answers whose bookmark was behind what the host had had Acked (a Windows host would send again).
    refreshes: int = 0
    refresh_failures: int = 0
    bookmarks_behind: int = 0
    # What the subscriptions asked and what the hosts obeyed: distinct sets, with host counts.
    subscriptions: tuple[SubscriptionAsked, ...] = ()
    batching: tuple[BatchingObeyed, ...] = ()

    COUNTERS = ("enumerations", "envelopes", "retries", "wrong_acks", "heartbeats", "heartbeats_acked",
                "refreshes", "refresh_failures", "bookmarks_behind")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Data) -> WsmanFigures:
        def opt(key: str, kind: type[float] | type[int]) -> Any:
            return None if d.get(key) is None else kind(d[key])

        counts = {n: int(d.get(n) or 0) for n in cls.COUNTERS}  # results before refresh lack the last three
        return cls(**counts, heartbeat_s=opt("heartbeat_s", float), max_time_s=opt("max_time_s", float),
                   max_envelope=opt("max_envelope", int), content_format=d.get("content_format"),
                   subscriptions=tuple(SubscriptionAsked.from_dict(x) for x in d.get("subscriptions") or ()),
                   batching=tuple(BatchingObeyed.from_dict(x) for x in d.get("batching") or ()))


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
    latency: Percentiles  # every batch that fell due: acknowledged, failed, or never sent
    service: Percentiles
    schedule_lag: Percentiles
    errors: dict[str, ErrorClass]
    failed_ranges: BatchRanges  # every failed batch, exactly
    timeline: list[Second]
    timed_out: bool
    interrupted: bool
    # Due within the plan but never sent because every sender was busy: the run fell behind.
    due_not_sent: int = 0
    # Counted in events_failed, though not a byte of them was written: their host could not connect
    # (or enumerate), or an earlier envelope of their delivery failed. Due and failed, never sent.
    events_unsent: int = 0
    # The load window (from the plan's start until it ended, or was stopped or timed out), and the
    # events the plan had due within it (None at unlimited rate): what a cut-short run is judged on.
    window_s: float = 0.0
    due_events: int | None = None
    # Simulated hosts (PERF_TEST_HOSTS): each event's latency from when it became due to its
    # delivery's reply, and the hosts' own figures; None without hosts.
    event_latency: Percentiles | None = None
    hosts: HostsFigures | None = None
    wsman: WsmanFigures | None = None
    # From the intended send time, of the acknowledged batches only (None: not measured).
    latency_acked: Percentiles | None = None

    # Why a threshold stopped the run early (--abort-on-fail), or None.
    aborted: str | None = None
    # For a merge of segments (issue 11): the whole-run histograms in HDR's own compressed
    # encoding (base64 text) by name, and each second's latency histogram by timeline row.
    # They travel in a segment's `shard` (ShardData.to_dict), not in a plain run's results.
    histograms: dict[str, str] | None = None
    second_histograms: dict[int, str] | None = None

    @property
    def error_ratio(self) -> float:
        """Failed events of those the run tried to send (sent, or failed before a byte went out)."""
        tried = self.events_sent + self.events_unsent
        return self.events_failed / tried if tried else 0.0

    @property
    def cut_short(self) -> bool:
        """Interrupted, aborted by a threshold, or out of time before the plan was sent."""
        return self.interrupted or self.timed_out or self.aborted is not None

    @property
    def rate_window_s(self) -> float:
        """The seconds every headline rate is over: the load window, never the drain after it."""
        return self.window_s if self.window_s > 0 else self.elapsed_s

    @property
    def drain_s(self) -> float:
        """After the load window: waiting for replies in flight, and hosts' last deliveries."""
        return max(self.elapsed_s - self.rate_window_s, 0.0)

    @property
    def acked_rate_eps(self) -> float:
        """The headline rate: events acknowledged per second of the load window."""
        return self.per_window_s(self.events_ok)

    @property
    def sent_rate_eps(self) -> float:
        return self.per_window_s(self.events_sent)

    # The results JSON's names (its `results` block) for the same figures.
    @property
    def total_time_seconds(self) -> float:
        return self.elapsed_s

    @property
    def successful_batches(self) -> int:
        return self.batches_ok

    @property
    def failed_batches(self) -> int:
        return self.batches_failed

    @property
    def events_acknowledged(self) -> int:
        return self.events_ok

    @property
    def events_failed_unsent(self) -> int:
        return self.events_unsent

    @property
    def events_per_second_overall(self) -> float:
        return self.acked_rate_eps

    @property
    def events_per_second_attempted(self) -> float:
        return self.sent_rate_eps

    @property
    def load_window_seconds(self) -> float:
        return self.window_s

    @property
    def drain_seconds(self) -> float:
        return self.drain_s

    @property
    def events_due_in_window(self) -> int | None:
        return self.due_events

    def per_window_s(self, events: int) -> float:
        """Any count as a rate over the same load window as the headline rate."""
        return events / self.rate_window_s if self.rate_window_s > 0 else 0.0

    def to_dict(self, received: int | None = None) -> dict[str, Any]:
        """Its parts of the results JSON, by top-level key; `received`: the server's count, for its rate."""
        return {
            "results": {
                "total_time_seconds": round(self.elapsed_s, 3),
                "events_sent": self.events_sent,
                "events_received": received,
                "successful_batches": self.batches_ok,
                "failed_batches": self.batches_failed,
                # Ingested = acknowledged, over the load window (drain_seconds after it are not load
                # time); the attempted and server-counted rates are over the same window.
                "events_per_second_overall": round(self.acked_rate_eps, 2),
                "events_per_second_attempted": round(self.sent_rate_eps, 2),
                "events_per_second_processed": (
                    round(self.per_window_s(received), 2) if received is not None else None
                ),
                "events_acknowledged": self.events_ok,
                "events_failed": self.events_failed,
                # Of those, never written to a connection (simulated hosts that could not connect or
                # enumerate, or the envelopes after a failed one): failed, but not part of events_sent.
                "events_failed_unsent": self.events_unsent,
                "late_batches": self.late_batches,
                "due_not_sent": self.due_not_sent,
                "timed_out": self.timed_out,
                "interrupted": self.interrupted,
                "cut_short": self.cut_short,
                "aborted": self.aborted,
                "load_window_seconds": round(self.window_s, 3),
                "drain_seconds": round(self.drain_s, 3),
                "events_due_in_window": self.due_events,
            },
            "latency_ms": {
                # Every batch that fell due: acknowledged, failed (until its failure), never sent
                # (until the window's end).
                "from_intended_send": self.latency.to_dict(),
                "from_intended_send_acknowledged_only": (
                    self.latency_acked.to_dict() if self.latency_acked is not None else None
                ),
                "service_time": self.service.to_dict(),
                "schedule_lag": self.schedule_lag.to_dict(),
                # Simulated hosts: from when each event became due to its delivery's reply.
                "event": self.event_latency.to_dict() if self.event_latency is not None else None,
            },
            "hosts": self.hosts.to_dict() if self.hosts is not None else None,
            "wsman": self.wsman.to_dict() if self.wsman is not None else None,
            "errors": {name: c.to_dict() for name, c in sorted(self.errors.items())},
            "failed_batch_ranges": [list(r) for r in self.failed_ranges],
            "payload": {"batches_sent": self.batches_sent},
            "timeline": [row.to_dict() for row in self.timeline],
        }

    @classmethod
    def from_dict(cls, data: Data) -> LoadSummary:
        """From a results JSON (the keys `to_dict` writes; a segment's histograms from its `shard`)."""
        r = data["results"]
        lat = data.get("latency_ms") or {}
        shard = data.get("shard") or {}
        seconds = shard.get("second_histograms")
        due = r.get("events_due_in_window")
        batches = (data.get("payload") or {}).get("batches_sent", shard.get("batches_sent"))
        return cls(
            elapsed_s=float(r["total_time_seconds"]),
            batches_sent=int(batches if batches is not None else r["successful_batches"] + r["failed_batches"]),
            events_sent=int(r["events_sent"]),
            batches_ok=int(r["successful_batches"]),
            events_ok=int(r["events_acknowledged"]),
            batches_failed=int(r["failed_batches"]),
            events_failed=int(r["events_failed"]),
            late_batches=int(r["late_batches"]),
            latency=Percentiles.from_dict(lat["from_intended_send"]),
            service=Percentiles.from_dict(lat["service_time"]),
            schedule_lag=Percentiles.from_dict(lat["schedule_lag"]),
            errors={str(k): ErrorClass.from_dict(v) for k, v in (data.get("errors") or {}).items()},
            failed_ranges=[(int(a), int(b)) for a, b in data.get("failed_batch_ranges") or []],
            timeline=[Second.from_dict(row) for row in data.get("timeline") or []],
            timed_out=bool(r.get("timed_out")),
            interrupted=bool(r.get("interrupted")),
            due_not_sent=int(r.get("due_not_sent") or 0),
            events_unsent=int(r.get("events_failed_unsent") or 0),
            window_s=float(r.get("load_window_seconds") or 0.0),
            due_events=None if due is None else int(due),
            event_latency=_pct_or_none(lat.get("event")),
            hosts=HostsFigures.from_dict(data["hosts"]) if data.get("hosts") else None,
            wsman=WsmanFigures.from_dict(data["wsman"]) if data.get("wsman") else None,
            latency_acked=_pct_or_none(lat.get("from_intended_send_acknowledged_only")),
            aborted=r.get("aborted"),
            histograms=dict(shard["histograms"]) if shard.get("histograms") is not None else None,
            second_histograms={int(t): str(h) for t, h in seconds.items()} if seconds is not None else None,
        )


# -- the server's counts -----------------------------------------------------------------------


def event_id_of(label: str) -> int | None:
    """The EventID in a server's type label: `Provider:4624` and `EventID 4624` both give 4624.

    The real collector labels an event `Provider:ID` when it read a provider from the
    `<Provider>` element's text and `EventID ID` otherwise (docs/contract.md), so one EventID
    can appear under two labels; `unknown` and anything else give None.
    """
    if label.startswith("EventID "):
        tail = label[len("EventID "):]
    else:
        _, sep, tail = label.rpartition(":")
        if not sep:
            return None
    tail = tail.strip()
    return int(tail) if tail.isdigit() else None


@dataclass(frozen=True)
class EventIdCount:
    """One EventID: what the server counted (under any of its labels) against what the run expects."""

    event_id: int | None  # None: labels that name no EventID (`unknown`)
    counted: int
    expected: int | None  # acknowledged events of this ID; None when the run sent none
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Restart:
    """One restart of the collector (or reset of its counters), as the run saw it."""

    at_seconds: float  # when it went away: the first failed stats read or refused batch before it; else when seen
    seen_at_seconds: float  # the stats read that showed its counters lower
    unreachable_seconds: float  # the longer of the two outages below
    stats_unreachable_seconds: float  # its stats endpoint did not answer for this long (0: never seen down)
    events_unreachable_seconds: float | None  # batches refused or reset until the next acknowledgement; None: none
    counted_before: int | None  # what the server had counted since the baseline at wefperf's last read before it
    # Events acknowledged after that read until it went away: what the old process counted after
    # the last read is gone with it, so at most this many are missing from the summed count.
    acknowledged_unseen: int | None
    # When a batch was acknowledged again after the events outage (seconds since the load started).
    back_at_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at_seconds": round(self.at_seconds, 3),
            "seen_at_seconds": round(self.seen_at_seconds, 3),
            "unreachable_seconds": round(self.unreachable_seconds, 3),
            "stats_unreachable_seconds": round(self.stats_unreachable_seconds, 3),
            "events_unreachable_seconds": (
                round(self.events_unreachable_seconds, 3) if self.events_unreachable_seconds is not None else None
            ),
            "counted_before": self.counted_before,
            "acknowledged_unseen": self.acknowledged_unseen,
            "back_at_seconds": round(self.back_at_seconds, 3) if self.back_at_seconds is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Data) -> Restart:
        def opt(key: str) -> float | None:
            return None if d.get(key) is None else float(d[key])

        def count(key: str) -> int | None:
            return None if d.get(key) is None else int(d[key])

        return cls(
            at_seconds=float(d["at_seconds"]), seen_at_seconds=float(d["seen_at_seconds"]),
            unreachable_seconds=float(d["unreachable_seconds"]),
            stats_unreachable_seconds=float(d["stats_unreachable_seconds"]),
            events_unreachable_seconds=opt("events_unreachable_seconds"),
            counted_before=count("counted_before"), acknowledged_unseen=count("acknowledged_unseen"),
            back_at_seconds=opt("back_at_seconds"),
        )


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
            "sampler_samples": self.sampler_samples,
            "baseline_per_type": self.baseline_per_type,
            "final_per_type": self.final_per_type,
        }

    @classmethod
    def from_dict(cls, d: Data, shard: Data | None = None) -> ServerStats:
        """`shard`: an older segment's results kept the per-type totals there only."""
        source = d.get("source") or {}
        older = shard or {}

        def opt(key: str) -> int | None:
            return None if d.get(key) is None else int(d[key])

        return cls(
            baseline_total=opt("baseline_total"),
            final_total=opt("final_total"),
            per_type_delta={str(k): int(v) for k, v in (d.get("per_type_delta") or {}).items()},
            expected_per_type={int(k): int(v) for k, v in (d.get("expected_per_type") or {}).items()},
            sampler_samples=int(d.get("sampler_samples") or 0),
            notes=[str(n) for n in d.get("notes") or []],
            baseline_per_type=_counts(d.get("baseline_per_type", older.get("server_baseline_per_type"))),
            final_per_type=_counts(d.get("final_per_type", older.get("server_final_per_type"))),
            source=None if source.get("format", "json") == "json" else {str(k): str(v) for k, v in source.items()},
            restarts=[Restart.from_dict(r) for r in d.get("restarts") or []],
        )


def _counts(d: Data | None) -> dict[str, int]:
    return {str(k): int(v) for k, v in (d or {}).items()}


# -- the verdict -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    name: str
    bound: Bound
    limit: float
    measured: float | None
    passed: bool

    def describe(self) -> str:
        op = "<=" if self.bound == "max" else ">="
        got = "not measured" if self.measured is None else f"{self.measured:,.4g}"
        return f"{self.name} {op} {self.limit:,.4g}: {got} {'ok' if self.passed else 'FAILED'}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bound": self.bound, "limit": self.limit, "measured": self.measured,
                "passed": self.passed}

    @classmethod
    def from_dict(cls, d: Data) -> Judged:
        bound: Bound = "min" if d["bound"] == "min" else "max"
        measured = d.get("measured")
        return cls(str(d["name"]), bound, float(d["limit"]), None if measured is None else float(measured),
                   bool(d["passed"]))


@dataclass(frozen=True)
class S3Figures:
    passed: bool
    missing: int | None = None
    duplicated: int | None = None


@dataclass(frozen=True)
class Verdict:
    passed: bool
    exit_code: ExitCode
    reasons: list[str] = field(default_factory=list)
    # The share of the plan that was held (None when no rate applies).
    target_ratio: float | None = None
    thresholds: list[Judged] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "exit_code": self.exit_code, "reasons": self.reasons,
                "target_ratio": self.target_ratio, "thresholds": [j.to_dict() for j in self.thresholds]}

    @classmethod
    def from_dict(cls, d: Data) -> Verdict:
        ratio = d.get("target_ratio")
        return cls(bool(d.get("passed")), ExitCode(int(d.get("exit_code", ExitCode.FAILED))),
                   [str(r) for r in d.get("reasons") or []], None if ratio is None else float(ratio),
                   [Judged.from_dict(j) for j in d.get("thresholds") or []])


# -- scale-out ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment's results carry about its place in the run."""

    index: int
    count: int
    start_at: float | None  # Unix epoch seconds of the shared plan start, None: started when ready

    def name(self) -> str:
        return f"segment-{self.index}-of-{self.count}"


@dataclass(frozen=True)
class ShardData:
    """What only a segment's results carry: its place in the run and what the S3 merge needs."""

    segment: SegmentInfo
    delivery_sizes: array[int] | None = None  # simulated hosts: events per delivery, in its order
    # Simulated hosts: deliveries acknowledged in part (place in delivery_sizes -> events Acked).
    partial_acks: dict[int, int] = field(default_factory=dict)

    def to_dict(self, load: LoadSummary, server: ServerStats) -> dict[str, Any]:
        """The results JSON's `shard` (the load's histograms and the server's totals travel in it)."""
        sizes = pack_sizes(self.delivery_sizes) if self.delivery_sizes is not None else None
        return {
            "histograms": load.histograms,
            "second_histograms": {str(t): h for t, h in sorted((load.second_histograms or {}).items())},
            "batches_sent": load.batches_sent,
            "delivery_sizes": sizes,
            "partial_acks": {str(k): n for k, n in sorted(self.partial_acks.items())},
            "server_baseline_per_type": server.baseline_per_type,
            "server_final_per_type": server.final_per_type,
        }

    @classmethod
    def from_dict(cls, data: Data) -> ShardData:
        """From a segment's results JSON: its `segment`, `start_at` and `shard`."""
        seg, shard = data["segment"], data.get("shard") or {}
        start = data.get("start_at")
        sizes = shard.get("delivery_sizes")
        return cls(SegmentInfo(int(seg["index"]), int(seg["count"]), None if start is None else float(start)),
                   unpack_sizes(sizes) if sizes else None,
                   {int(k): int(n) for k, n in (shard.get("partial_acks") or {}).items()})


@dataclass(frozen=True)
class Deliveries:
    """Simulated hosts' deliveries as sent: what `wefperf verify --results` needs to number the events.

    A batch run is rebuilt from its seed and batch count alone; hosts deliver as many events as
    they held, so the results keep each delivery's size (packed: a few bytes per delivery after
    zlib) and the deliveries acknowledged in part.
    """

    sizes: array[int]  # events per delivery, in delivery-number order (0: a number never sent)
    partial_acks: dict[int, int] = field(default_factory=dict)  # delivery -> its events Acked before a failure

    def to_dict(self) -> dict[str, Any]:
        return {"sizes": pack_sizes(self.sizes),
                "partial_acks": {str(k): n for k, n in sorted(self.partial_acks.items())}}

    @classmethod
    def from_dict(cls, d: Data) -> Deliveries:
        return cls(unpack_sizes(str(d["sizes"])), {int(k): int(n) for k, n in (d.get("partial_acks") or {}).items()})


def pack_sizes(sizes: array[int]) -> str:
    """Events per delivery as text: 16-bit counts, zlib, base64."""
    return base64.b64encode(zlib.compress(array("H", sizes).tobytes())).decode("ascii")


def unpack_sizes(text: str) -> array[int]:
    """The inverse of pack_sizes."""
    sizes: array[int] = array("H")
    sizes.frombytes(zlib.decompress(base64.b64decode(text)))
    return sizes


# -- the run -----------------------------------------------------------------------------------


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
    # A plain run of simulated hosts: its deliveries, so it can be verified again from its results.
    deliveries: Deliveries | None = None
    # A result read back from its JSON keeps its S3 check as written (the verifier's own types stay its own).
    s3_stored: dict[str, Any] | None = None
    wefperf_version: str = field(default_factory=installed_version)
    host: str = field(default_factory=socket.gethostname)

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    # The results JSON's names for the same parts (`to_dict`): `result.server_stats` is `result.server`.
    @property
    def server_stats(self) -> ServerStats:
        return self.server

    @property
    def s3_verification(self) -> VerifyResult | None:
        """The S3 check of this run (None when none ran; a result read back from JSON: see `s3_stored`)."""
        return self.s3

    def to_dict(self) -> dict[str, Any]:
        """The results JSON: the seed's keys first, then wefperf's additions."""
        load = self.load.to_dict(self.server.events_received)
        return {
            "timestamp": self.timestamp,
            "test_name": self.test_name,
            "configuration": self.configuration,
            "results": load["results"],
            "s3_verification": self.s3.to_dict() if self.s3 is not None else self.s3_stored,
            "server_stats": self.server.to_dict(),
            "stopped_in": self.stopped_in,
            "wefperf_version": self.wefperf_version,
            "host": self.host,
            "run_id": self.run_id,
            "profile": self.profile,
            "sender": self.sender,
            "latency_ms": load["latency_ms"],
            "hosts": load["hosts"],
            "wsman": load["wsman"],
            "errors": load["errors"],
            "failed_batch_ranges": load["failed_batch_ranges"],
            "payload": {"seed": self.payload_seed, **load["payload"], "build_seconds": round(self.payload_build_s, 3),
                        "deliveries": self.deliveries.to_dict() if self.deliveries is not None else None},
            "timeline": load["timeline"],
            **self._scale_out(),
            "verdict": self.verdict.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Data) -> RunResult:
        """A results JSON of `wefperf run` (a segment's, a merged one's, or a plain run's) as the run's data."""
        payload = data.get("payload") or {}
        seed = payload.get("seed")
        deliveries = payload.get("deliveries")
        return cls(
            run_id=str(data.get("run_id") or ""),
            test_name=str(data.get("test_name") or ""),
            timestamp=str(data.get("timestamp") or ""),
            profile=data.get("profile"),
            configuration=dict(data.get("configuration") or {}),
            load=LoadSummary.from_dict(data),
            server=ServerStats.from_dict(data.get("server_stats") or {}, data.get("shard")),
            verdict=Verdict.from_dict(data.get("verdict") or {}),
            sender=str(data.get("sender") or ""),
            payload_build_s=float(payload.get("build_seconds") or 0.0),
            stopped_in=data.get("stopped_in"),
            payload_seed=None if seed is None else int(seed),
            shard=ShardData.from_dict(data) if data.get("segment") and data.get("shard") is not None else None,
            merged=dict(data["merged"]) if data.get("merged") is not None else None,
            deliveries=Deliveries.from_dict(deliveries) if deliveries else None,
            s3_stored=dict(data["s3_verification"]) if data.get("s3_verification") is not None else None,
            wefperf_version=str(data.get("wefperf_version") or ""),
            host=str(data.get("host") or ""),
        )

    def _scale_out(self) -> dict[str, Any]:
        """A segment's or a merged run's own keys (issue 11); nothing for a plain run."""
        if self.shard is not None:
            seg = self.shard.segment
            return {"segment": {"index": seg.index, "count": seg.count}, "start_at": seg.start_at,
                    "shard": self.shard.to_dict(self.load, self.server)}
        if self.merged is not None:
            return {"merged": self.merged}
        return {}
