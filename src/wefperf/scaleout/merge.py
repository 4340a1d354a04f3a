"""Segments' results merged into one run (issue 11): histograms merged, never averaged.

Counts add up. Latency percentiles come from the segments' HDR histograms added together.
Per second: counts add up, and p50/p90/p99/max come from the segments' per-second
histograms added together; the per-second schedule-lag p99 (kept raw, not as a histogram) is
the highest of the segments' (an upper bound), and the server's per-second count is one
segment's (each segment's sampler reads the whole server, so adding them would count it N times).
The server's totals are the earliest baseline read and the latest final read of any segment.
Each segment's results JSON is read back as model.RunResult (its own from_dict), so the merge
works on the run's data, never on the JSON's presentation keys.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from ..config.loading import describe_validation_error
from ..config.rules import ConfigError
from ..config.settings import Settings
from ..judge.verdict import judge
from ..measure.hdr import merge_encoded
from ..model import (
    ERROR_SAMPLES_PER_CLASS,
    BatchingObeyed,
    ErrorClass,
    HostsFigures,
    LoadSummary,
    Percentiles,
    RunResult,
    S3Figures,
    Second,
    ServerStats,
    SubscriptionAsked,
    WsmanFigures,
)
from .shards import Shard, ShardError

_MERGE_CLEARS = {"segment": "", "segments": 0, "shard_results": "", "processes": "1", "start_at": 0}


@dataclass(frozen=True)
class MergedRun:
    """The merged result, the settings it is judged with, and what its S3 check needs."""

    result: RunResult
    settings: Settings
    shards: list[Shard]
    runs: list[RunResult]  # each segment's results, read back


def settings_of(data: dict[str, Any]) -> Settings:
    """The run's settings as its results recorded them (credentials are never stored: defaults)."""
    from pydantic import ValidationError

    cfg = dict(data.get("configuration") or {})
    cfg.update(_MERGE_CLEARS)
    if cfg.get("stages"):  # stored as {duration_s, target_eps} objects; read back as SECS:EPS
        cfg["stages"] = ",".join(f"{st['duration_s']!r}:{st['target_eps']!r}" for st in cfg["stages"])
    try:
        return Settings.model_validate(cfg)
    except ValidationError as exc:
        raise ShardError(f"the segments' configuration is not valid: {describe_validation_error(exc)}") from None


def merge(shards: Sequence[Shard], settings: Settings | None = None) -> MergedRun:
    """One RunResult from the shards of one run (checked by shards.read_shards), judged as a whole."""
    first = shards[0].data
    try:
        settings = settings or settings_of(first)
        runs = [RunResult.from_dict(s.data) for s in shards]
        load = merge_load(runs)
        server = merge_server(runs)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, (ShardError, ConfigError)):
            raise
        raise ShardError(f"a segment's results lack what the merge needs ({type(exc).__name__}: {exc})") from None
    verdict = judge(settings, load, None, server=server)
    head = runs[0]
    cfg = dict(head.configuration)
    cfg.update(_MERGE_CLEARS)
    result = RunResult(
        run_id=head.run_id,
        test_name=head.test_name,
        timestamp=min(r.timestamp for r in runs),
        profile=head.profile,
        configuration=cfg,
        load=load,
        server=server,
        verdict=verdict,
        sender=head.sender,
        payload_build_s=max(r.payload_build_s for r in runs),
        payload_seed=head.payload_seed,
        stopped_in=next((r.stopped_in for r in runs if r.stopped_in), None),
        merged={"segments": len(runs), "start_at": head.shard.segment.start_at if head.shard else None,
                "sources": [s.source for s in shards],
                "segment_exit_codes": [int(r.verdict.exit_code) for r in runs]},
    )
    return MergedRun(result, settings, list(shards), runs)


def rejudge(merged: MergedRun, s3: Any) -> RunResult:
    """The merged result with the whole run's S3 check in its verdict."""
    result = merged.result
    figures = None
    if s3 is not None:
        acct = s3.accounting
        figures = S3Figures(bool(s3.passed), acct.missing if acct is not None and acct.expected is not None else None,
                            acct.duplicated if acct is not None else None)
    result.s3 = s3
    result.verdict = judge(merged.settings, result.load, figures, server=result.server)
    return result


# -- the load ---------------------------------------------------------------------------------


def merge_load(runs: Sequence[RunResult]) -> LoadSummary:
    loads = [r.load for r in runs]
    hists = [load.histograms or {} for load in loads]

    def pct(name: str, digits: int = 3) -> Percentiles:
        return Percentiles.of(merge_encoded([h[name] for h in hists if h.get(name)], digits))

    def every(name: str) -> bool:
        return all(h.get(name) for h in hists)

    dues = [load.due_events for load in loads]
    hosts = [load.hosts for load in loads if load.hosts is not None]
    wsman = [load.wsman for load in loads if load.wsman is not None]
    return LoadSummary(
        elapsed_s=max(load.elapsed_s for load in loads),
        batches_sent=sum(load.batches_sent for load in loads),
        events_sent=sum(load.events_sent for load in loads),
        batches_ok=sum(load.batches_ok for load in loads),
        events_ok=sum(load.events_ok for load in loads),
        batches_failed=sum(load.batches_failed for load in loads),
        events_failed=sum(load.events_failed for load in loads),
        late_batches=sum(load.late_batches for load in loads),
        latency=pct("latency"),
        service=pct("service"),
        schedule_lag=pct("schedule_lag"),
        errors=merge_errors([load.errors for load in loads]),
        failed_ranges=merge_ranges([load.failed_ranges for load in loads]),
        timeline=merge_timeline([load.timeline for load in loads], [load.second_histograms or {} for load in loads]),
        timed_out=any(load.timed_out for load in loads),
        interrupted=any(load.interrupted for load in loads),
        due_not_sent=sum(load.due_not_sent for load in loads),
        events_unsent=sum(load.events_unsent for load in loads),
        window_s=max(load.window_s for load in loads),
        due_events=None if any(d is None for d in dues) else sum(d for d in dues if d is not None),
        event_latency=pct("event", 2) if every("event") else None,
        hosts=merge_hosts(hosts) if hosts else None,
        wsman=merge_wsman(wsman) if wsman else None,
        latency_acked=pct("latency_acked") if every("latency_acked") else None,
        aborted=_aborted(loads),
    )


def _aborted(loads: Sequence[LoadSummary]) -> str | None:
    """The first segment's reason to stop, saying whose it is: its figures are that segment's, not the run's."""
    stopped = [(i, load.aborted) for i, load in enumerate(loads) if load.aborted]
    if not stopped:
        return None
    first, why = stopped[0]
    if len(loads) == 1:
        return why
    return f"{why} (process {first + 1} of {len(loads)}; {len(stopped)} of {len(loads)} processes stopped)"


def merge_errors(per_segment: Sequence[Mapping[str, ErrorClass]]) -> dict[str, ErrorClass]:
    """Counts add up; each class keeps as many samples as one run keeps (the first segments')."""
    out: dict[str, ErrorClass] = {}
    for errors in per_segment:
        for name, cls in errors.items():
            into = out.setdefault(name, ErrorClass())
            into.batches += cls.batches
            into.events += cls.events
            room = ERROR_SAMPLES_PER_CLASS - len(into.samples)
            into.samples.extend(cls.samples[:max(room, 0)])
    return out


def merge_ranges(per_segment: Sequence[Sequence[Sequence[int]]]) -> list[tuple[int, int]]:
    """Inclusive batch ranges of all segments as one ascending list, adjacent ranges joined."""
    spans = sorted((int(a), int(b)) for ranges in per_segment for a, b in ranges)
    out: list[tuple[int, int]] = []
    for first, last in spans:
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def merge_timeline(rows: Sequence[Sequence[Second]], seconds: Sequence[Mapping[int, str]]) -> list[Second]:
    length = max((len(r) for r in rows), default=0)
    out = [Second(t) for t in range(length)]
    for segment_rows in rows:
        for row in segment_rows:
            into = out[row.t]
            into.sent_events += row.sent_events
            into.acked_events += row.acked_events
            into.failed_events += row.failed_events
            for name, n in row.errors.items():
                into.errors[name] = into.errors.get(name, 0) + n
            if row.in_flight is not None:
                into.in_flight = (into.in_flight or 0) + row.in_flight
            if row.lag_p99_ms is not None:
                into.lag_p99_ms = max(into.lag_p99_ms or 0.0, row.lag_p99_ms)
            if into.server_events is None and row.server_events is not None:
                into.server_events = row.server_events
            for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):  # only without histograms (below)
                if getattr(row, key) is not None:
                    setattr(into, key, max(getattr(into, key) or 0.0, getattr(row, key)))
    for second in out:
        encoded = [s[second.t] for s in seconds if second.t in s]
        if not encoded:
            continue
        merged = merge_encoded(encoded)
        if merged.get_total_count():
            p = merged.get_percentile_to_value_dict([50.0, 90.0, 99.0])
            second.p50_ms, second.p90_ms, second.p99_ms = p[50.0] / 1000, p[90.0] / 1000, p[99.0] / 1000
            second.max_ms = merged.get_max_value() / 1000
    return out


def merge_hosts(figures: Sequence[HostsFigures]) -> HostsFigures:
    """Counters add up; max items and max latency are the largest of the segments' (the same unless wsman
    hosts obeyed different subscriptions)."""
    names = [f.name for f in fields(HostsFigures) if f.name not in ("max_items", "max_latency_s")]
    summed = {n: sum(getattr(f, n) for f in figures) for n in names}
    # wsman hosts batch by their subscriptions: each segment reports its hosts' largest limits.
    return HostsFigures(**summed, max_items=max(f.max_items for f in figures),
                        max_latency_s=max(f.max_latency_s for f in figures))


def merge_wsman(figures: Sequence[WsmanFigures]) -> WsmanFigures:
    """Counters add up; the subscription is the first segment's that saw one."""
    summed = {n: sum(getattr(f, n) for f in figures) for n in WsmanFigures.COUNTERS}
    seen = next((f for f in figures if f.max_time_s is not None), None)
    asked: Counter[SubscriptionAsked] = Counter()
    obeyed: Counter[BatchingObeyed] = Counter()
    for f in figures:  # the same option set in several segments: their hosts add up
        asked.update({replace(s, hosts=0): s.hosts for s in f.subscriptions})
        obeyed.update({replace(b, hosts=0): b.hosts for b in f.batching})
    return WsmanFigures(**summed, heartbeat_s=seen.heartbeat_s if seen else None,
                        max_time_s=seen.max_time_s if seen else None, max_envelope=seen.max_envelope if seen else None,
                        content_format=seen.content_format if seen else None,
                        subscriptions=tuple(replace(s, hosts=n) for s, n in asked.most_common()),
                        batching=tuple(replace(b, hosts=n) for b, n in obeyed.most_common()))


# -- the server's counts ----------------------------------------------------------------------


def merge_server(runs: Sequence[RunResult]) -> ServerStats:
    stats = [r.server for r in runs]
    server = ServerStats()
    with_base = [s for s in stats if s.baseline_total is not None]
    with_final = [s for s in stats if s.final_total is not None]
    if with_base and with_final:
        b = min(with_base, key=lambda s: s.baseline_total or 0)
        f = max(with_final, key=lambda s: s.final_total or 0)
        server.baseline_total, server.final_total = b.baseline_total, f.final_total
        server.baseline_per_type = dict(b.baseline_per_type)
        server.final_per_type = dict(f.final_per_type)
        keys = set(server.baseline_per_type) | set(server.final_per_type)
        delta = {k: server.final_per_type.get(k, 0) - server.baseline_per_type.get(k, 0) for k in keys}
        server.per_type_delta = {k: v for k, v in sorted(delta.items(), key=lambda kv: (-kv[1], kv[0])) if v}
    expected: dict[int, int] = {}
    for s in stats:
        for key, n in s.expected_per_type.items():
            expected[key] = expected.get(key, 0) + n
    server.expected_per_type = expected
    server.sampler_samples = sum(s.sampler_samples for s in stats)
    server.source = next((s.source for s in stats if s.source is not None), None)
    # Every segment watched the same collector: its restarts are the ones the most watchful segment saw.
    server.restarts = list(max(stats, key=lambda s: len(s.restarts)).restarts) if stats else []
    for s in stats:
        for note in s.notes:
            if note not in server.notes:
                server.notes.append(note)
    return server


# -- the whole run's S3 check ------------------------------------------------------------------


def verify_options(merged: MergedRun, s3_settings: Any, wait_secs: float) -> Any:
    """VerifyOptions for every segment's events at once: which sequence numbers were sent, by whom."""
    from ..payload import build_pool
    from ..payload.hosts import build_host_payload
    from ..verify import Numbering, VerifyOptions, run_dates

    settings, runs = merged.settings, merged.runs
    result = merged.result
    count = len(runs)
    run_id = result.run_id
    seed = result.payload_seed
    if seed is None:
        raise ShardError("the segments' results have no payload seed: the S3 check cannot tell which event is which")
    if settings.hosts:
        payload = build_host_payload(run_id=run_id, hosts=settings.hosts, max_items=settings.max_items,
                                     event_type=settings.event_type, variants=settings.payload_variants, seed=int(seed))
        sizes = [r.shard.delivery_sizes if r.shard and r.shard.delivery_sizes is not None else array("H")
                 for r in runs]
        span = max(((len(s) - 1) * count + i + 1 for i, s in enumerate(sizes) if len(s)), default=0)
        interleaved: array[int] = array("H", bytes(2 * span))
        for i, s in enumerate(sizes):
            interleaved[i::count] = s + array("H", bytes(2 * (len(range(i, span, count)) - len(s))))
        # A segment's delivery k is the run's delivery k * count + i.
        partial = {k * count + i: n for i, r in enumerate(runs) if r.shard is not None
                   for k, n in r.shard.partial_acks.items()}
        numbering = Numbering.of_hosts(payload, interleaved, partial)
        batch_size, total, sent_batches = settings.max_items, None, span
    else:
        count_mode = not settings.duration_mode
        total = settings.total_events if count_mode else None
        pool = build_pool(run_id=run_id, batch_size=settings.batch_size, event_type=settings.event_type,
                          total_events=total, variants=settings.payload_variants, seed=int(seed))
        sent = [r.load.batches_sent for r in runs]
        span = max(((n - 1) * count + i + 1 for i, n in enumerate(sent) if n), default=0)
        flags = bytearray(span)
        for i, n in enumerate(sent):
            flags[i: i + n * count: count] = b"\x01" * n
        numbering = Numbering.of_pool(pool, [bool(f) for f in flags])
        batch_size, sent_batches = settings.batch_size, span
    started = datetime.fromisoformat(result.timestamp) if result.timestamp else datetime.now(timezone.utc)
    return VerifyOptions(
        endpoint=s3_settings.s3_endpoint, bucket=s3_settings.s3_bucket, access_key=s3_settings.access_key,
        secret_key=s3_settings.secret_key, event_types=[str(e) for e in numbering.sent_types()],
        dates=run_dates(started, datetime.now(timezone.utc) + timedelta(seconds=wait_secs)),
        max_file_size_bytes=int(settings.max_file_size_mb * 1024 * 1024), run_id=run_id, batch_size=batch_size,
        sent_batches=sent_batches, total_events=total, failed_ranges=list(result.load.failed_ranges),
        numbering=numbering, wait_secs=wait_secs, settle_secs=settings.flush_interval_secs,
    )


def dumps(result: RunResult) -> str:
    return json.dumps(result.to_dict(), indent=2, default=str)
