"""Segments' results merged into one run (issue 11): histograms merged, never averaged.

Counts add up. Latency percentiles come from the segments' HDR histograms added together.
Per second: counts add up, and p50/p90/p99/max come from the segments' per-second
histograms added together; the per-second schedule-lag p99 (kept raw, not as a histogram) is
the highest of the segments' (an upper bound), and the server's per-second count is one
segment's (each segment's sampler reads the whole server, so adding them would count it N times).
The server's totals are the earliest baseline read and the latest final read of any segment.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

from .metrics import ErrorClass, HostsFigures, LoadSummary, Percentiles, Second, WsmanFigures, merge_encoded
from .result import RunResult, ServerStats, unpack_sizes
from .settings import ConfigError, Settings, describe_validation_error
from .shards import Shard, ShardError
from .verdict import S3Figures, judge

_MERGE_CLEARS = {"segment": "", "segments": 0, "shard_results": "", "processes": "1", "start_at": 0}


@dataclass(frozen=True)
class MergedRun:
    """The merged result, the settings it is judged with, and what its S3 check needs."""

    result: RunResult
    settings: Settings
    shards: list[Shard]


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
    datas = [s.data for s in shards]
    first = datas[0]
    try:
        settings = settings or settings_of(first)
        load = merge_load(datas)
        server = merge_server(datas)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, (ShardError, ConfigError)):
            raise
        raise ShardError(f"a segment's results lack what the merge needs ({type(exc).__name__}: {exc})") from None
    verdict = judge(settings, load, None, server=server)
    cfg = dict(first.get("configuration") or {})
    cfg.update(_MERGE_CLEARS)
    result = RunResult(
        run_id=str(first["run_id"]),
        test_name=str(first.get("test_name", "")),
        timestamp=min(str(d.get("timestamp", "")) for d in datas),
        profile=first.get("profile"),
        configuration=cfg,
        load=load,
        server=server,
        verdict=verdict,
        sender=str(first.get("sender", "")),
        payload_seed=(first.get("payload") or {}).get("seed"),
        stopped_in=next((d["stopped_in"] for d in datas if d.get("stopped_in")), None),
        merged={"segments": len(datas), "start_at": first.get("start_at"),
                "sources": [s.source for s in shards],
                "segment_exit_codes": [(d.get("verdict") or {}).get("exit_code") for d in datas]},
    )
    return MergedRun(result, settings, list(shards))


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


def merge_load(datas: Sequence[dict[str, Any]]) -> LoadSummary:
    rs = [d["results"] for d in datas]
    shard = [d["shard"] for d in datas]
    hists = [s.get("histograms") or {} for s in shard]

    def pct(name: str, digits: int = 3) -> Percentiles:
        return Percentiles.of(merge_encoded([h[name] for h in hists if h.get(name)], digits))

    dues = [r.get("events_due_in_window") for r in rs]
    hosts = [d.get("hosts") for d in datas]
    wsman = [d.get("wsman") for d in datas]
    return LoadSummary(
        elapsed_s=max(float(r["total_time_seconds"]) for r in rs),
        batches_sent=sum(int(s["batches_sent"]) for s in shard),
        events_sent=sum(int(r["events_sent"]) for r in rs),
        batches_ok=sum(int(r["successful_batches"]) for r in rs),
        events_ok=sum(int(r["events_acknowledged"]) for r in rs),
        batches_failed=sum(int(r["failed_batches"]) for r in rs),
        events_failed=sum(int(r["events_failed"]) for r in rs),
        late_batches=sum(int(r["late_batches"]) for r in rs),
        latency=pct("latency"),
        service=pct("service"),
        schedule_lag=pct("schedule_lag"),
        errors=merge_errors([d.get("errors") or {} for d in datas]),
        failed_ranges=merge_ranges([d.get("failed_batch_ranges") or [] for d in datas]),
        timeline=merge_timeline([d.get("timeline") or [] for d in datas],
                                [s.get("second_histograms") or {} for s in shard]),
        timed_out=any(r.get("timed_out") for r in rs),
        interrupted=any(r.get("interrupted") for r in rs),
        due_not_sent=sum(int(r.get("due_not_sent") or 0) for r in rs),
        window_s=max(float(r.get("load_window_seconds") or 0.0) for r in rs),
        due_events=None if any(d is None for d in dues) else sum(int(d) for d in dues if d is not None),
        event_latency=pct("event", 2) if all(h.get("event") for h in hists) and hists[0].get("event") else None,
        hosts=merge_hosts([h for h in hosts if h]) if any(hosts) else None,
        wsman=merge_wsman([w for w in wsman if w]) if any(wsman) else None,
        aborted=next((r["aborted"] for r in rs if r.get("aborted")), None),
    )


def merge_errors(per_segment: Sequence[dict[str, Any]]) -> dict[str, ErrorClass]:
    from .metrics import ERROR_SAMPLES_PER_CLASS

    out: dict[str, ErrorClass] = {}
    for errors in per_segment:
        for name, cls in errors.items():
            into = out.setdefault(name, ErrorClass())
            into.batches += int(cls["batches"])
            into.events += int(cls["events"])
            room = ERROR_SAMPLES_PER_CLASS - len(into.samples)
            into.samples.extend(list(cls.get("samples") or [])[:max(room, 0)])
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


def merge_timeline(rows: Sequence[Sequence[dict[str, Any]]], seconds: Sequence[dict[str, str]]) -> list[Second]:
    length = max((len(r) for r in rows), default=0)
    out = [Second(t) for t in range(length)]
    for segment_rows in rows:
        for row in segment_rows:
            into = out[int(row["t"])]
            into.sent_events += int(row.get("sent_events") or 0)
            into.acked_events += int(row.get("acked_events") or 0)
            into.failed_events += int(row.get("failed_events") or 0)
            for name, n in (row.get("errors") or {}).items():
                into.errors[name] = into.errors.get(name, 0) + int(n)
            if row.get("in_flight") is not None:
                into.in_flight = (into.in_flight or 0) + int(row["in_flight"])
            if row.get("lag_p99_ms") is not None:
                into.lag_p99_ms = max(into.lag_p99_ms or 0.0, float(row["lag_p99_ms"]))
            if into.server_events is None and row.get("server_events") is not None:
                into.server_events = int(row["server_events"])
            for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):  # only without histograms (below)
                if row.get(key) is not None:
                    setattr(into, key, max(getattr(into, key) or 0.0, float(row[key])))
    for second in out:
        encoded = [s[str(second.t)] for s in seconds if str(second.t) in s]
        if not encoded:
            continue
        merged = merge_encoded(encoded)
        if merged.get_total_count():
            p = merged.get_percentile_to_value_dict([50.0, 90.0, 99.0])
            second.p50_ms, second.p90_ms, second.p99_ms = p[50.0] / 1000, p[90.0] / 1000, p[99.0] / 1000
            second.max_ms = merged.get_max_value() / 1000
    return out


def merge_hosts(figures: Sequence[dict[str, Any]]) -> HostsFigures:
    names = [f.name for f in fields(HostsFigures)]
    summed: dict[str, Any] = {n: sum(int(f[n]) for f in figures) for n in names}
    summed["max_items"] = int(figures[0]["max_items"])
    summed["max_latency_s"] = float(figures[0]["max_latency_s"])
    return HostsFigures(**summed)


def merge_wsman(figures: Sequence[dict[str, Any]]) -> WsmanFigures:
    """Counters add up; the subscription is the first segment's that saw one."""
    counters = ("enumerations", "envelopes", "retries", "wrong_acks", "heartbeats", "heartbeats_acked")
    summed: dict[str, Any] = {n: sum(int(f[n]) for f in figures) for n in counters}
    seen = next((f for f in figures if f.get("max_time_s") is not None), {})
    return WsmanFigures(**summed, heartbeat_s=seen.get("heartbeat_s"), max_time_s=seen.get("max_time_s"),
                        max_envelope=seen.get("max_envelope"))


# -- the server's counts ----------------------------------------------------------------------


def merge_server(datas: Sequence[dict[str, Any]]) -> ServerStats:
    stats = [d.get("server_stats") or {} for d in datas]
    shard = [d["shard"] for d in datas]
    server = ServerStats()
    with_base = [i for i, s in enumerate(stats) if s.get("baseline_total") is not None]
    with_final = [i for i, s in enumerate(stats) if s.get("final_total") is not None]
    if with_base and with_final:
        b = min(with_base, key=lambda i: int(stats[i]["baseline_total"]))
        f = max(with_final, key=lambda i: int(stats[i]["final_total"]))
        server.baseline_total = int(stats[b]["baseline_total"])
        server.final_total = int(stats[f]["final_total"])
        server.baseline_per_type = dict(shard[b].get("server_baseline_per_type") or {})
        server.final_per_type = dict(shard[f].get("server_final_per_type") or {})
        keys = set(server.baseline_per_type) | set(server.final_per_type)
        delta = {k: int(server.final_per_type.get(k, 0)) - int(server.baseline_per_type.get(k, 0)) for k in keys}
        server.per_type_delta = {k: v for k, v in sorted(delta.items(), key=lambda kv: (-kv[1], kv[0])) if v}
    expected: dict[int, int] = {}
    for s in stats:
        for key, n in (s.get("expected_per_type") or {}).items():
            expected[int(key)] = expected.get(int(key), 0) + int(n)
    server.expected_per_type = expected
    server.sampler_samples = sum(int(s.get("sampler_samples") or 0) for s in stats)
    for s in stats:
        for note in s.get("notes") or []:
            if note not in server.notes:
                server.notes.append(note)
    return server


# -- the whole run's S3 check ------------------------------------------------------------------


def verify_options(merged: MergedRun, s3_settings: Any, wait_secs: float) -> Any:
    """VerifyOptions for every segment's events at once: which sequence numbers were sent, by whom."""
    from .payload import build_pool
    from .payload.hosts import build_host_payload
    from .verify import Numbering, VerifyOptions, run_dates

    settings, datas = merged.settings, [s.data for s in merged.shards]
    result = merged.result
    count = len(datas)
    run_id = result.run_id
    seed = result.payload_seed
    if seed is None:
        raise ShardError("the segments' results have no payload seed: the S3 check cannot tell which event is which")
    if settings.hosts:
        payload = build_host_payload(run_id=run_id, hosts=settings.hosts, max_items=settings.max_items,
                                     event_type=settings.event_type, variants=settings.payload_variants, seed=int(seed))
        sizes = [unpack_sizes(d["shard"]["delivery_sizes"]) for d in datas]
        span = max(((len(s) - 1) * count + i + 1 for i, s in enumerate(sizes) if len(s)), default=0)
        interleaved: array[int] = array("H", bytes(2 * span))
        for i, s in enumerate(sizes):
            interleaved[i::count] = s + array("H", bytes(2 * (len(range(i, span, count)) - len(s))))
        numbering = Numbering.of_hosts(payload, interleaved)
        batch_size, total, sent_batches = settings.max_items, None, span
    else:
        count_mode = not settings.duration_mode
        total = settings.total_events if count_mode else None
        pool = build_pool(run_id=run_id, batch_size=settings.batch_size, event_type=settings.event_type,
                          total_events=total, variants=settings.payload_variants, seed=int(seed))
        sent = [int(d["shard"]["batches_sent"]) for d in datas]
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
