"""The run's data (model.py): every type's to_dict and from_dict agree, and the module is a leaf.

A round trip goes through real JSON text. Figures the results JSON rounds for display (times
to the millisecond, means to the microsecond) come back rounded, and the rates derived from
them within that rounding; after one trip, object -> JSON -> object is exact.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from array import array
from typing import Any

import pytest

from wefperf.measure.recorder import HostRecorder, Recorder
from wefperf.model import (
    ErrorClass,
    ExitCode,
    HostsFigures,
    Judged,
    LoadSummary,
    Percentiles,
    Restart,
    RunResult,
    Second,
    SegmentInfo,
    ServerStats,
    ShardData,
    Verdict,
    WsmanFigures,
)

RATES = ("events_per_second_overall", "events_per_second_attempted", "events_per_second_processed")


def _json(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))  # type: ignore[no-any-return]


def _load(hosts: bool = False, segment: bool = False) -> LoadSummary:
    rec = (HostRecorder if hosts else Recorder)(0.0, second_histograms=segment)
    for n in range(40):
        t = 0.05 + n * 0.07
        rec.sent(100, t, t + 0.002)
        if n % 9 == 4:
            rec.failed(n, 100, "http_503", f"HTTP 503 on batch {n}", t + 0.2, intended=t)
        else:
            rec.ok(100, t, t + 0.002, t + 0.003 + n / 1000)
        if hosts:
            assert isinstance(rec, HostRecorder)
            rec.event_latencies(t + 0.01, array("d", [t - 0.5, t - 0.25]))
    rec.server_sample(1.5, 1200)
    load = rec.summary(3.1234567, due_not_sent=3, window_s=2.9876543, due_events=4100)
    if hosts:
        from dataclasses import replace

        load = replace(
            load,
            hosts=HostsFigures(hosts=7, max_items=10, max_latency_s=1.5, events_due=4100, events_held=2,
                               full_deliveries=30, timed_deliveries=10, hosts_delivering=7, connections=8,
                               connect_failures=1),
            wsman=WsmanFigures(enumerations=7, envelopes=41, retries=1, wrong_acks=0, heartbeats=3,
                               heartbeats_acked=3, heartbeat_s=60.0, max_time_s=1.5, max_envelope=512000),
        )
    return load


def _server() -> ServerStats:
    return ServerStats(baseline_total=10, final_total=3610, per_type_delta={"EventID 4624": 3000, "Sec:4625": 600},
                       expected_per_type={4624: 3000, 4625: 600}, sampler_samples=3, notes=["a note"],
                       baseline_per_type={"EventID 4624": 10}, final_per_type={"EventID 4624": 3010, "Sec:4625": 600},
                       restarts=[Restart(at_seconds=4.25, seen_at_seconds=7.5, unreachable_seconds=3.0,
                                         stats_unreachable_seconds=3.0, events_unreachable_seconds=2.75,
                                         counted_before=1200, acknowledged_unseen=300, back_at_seconds=7.0)])


def _verdict() -> Verdict:
    return Verdict(False, ExitCode.FAILED, ["error_ratio <= 0: 0.1 FAILED"], 0.97,
                   [Judged("error_ratio", "max", 0.0, 0.1, False), Judged("achieved_ratio", "min", 0.95, None, False)])


def _result(hosts: bool = False, segment: bool = False, merged: bool = False) -> RunResult:
    shard = ShardData(SegmentInfo(1, 3, 1_764_000_000.25), array("H", [10, 3, 10]) if hosts else None)
    return RunResult(
        run_id="abc123", test_name="t", timestamp="2026-12-07T04:00:00+00:00", profile="baseline",
        configuration={"target_eps": 1000, "batch_size": 100}, load=_load(hosts, segment), server=_server(),
        verdict=_verdict(), sender="fast", payload_build_s=0.1234567, stopped_in="load", payload_seed=42,
        shard=shard if segment else None,
        merged={"segments": 3, "sources": ["a", "b", "c"], "segment_exit_codes": [0, 1, 0]} if merged else None,
        s3_stored={"success": True, "accounting": {"expected": 10, "missing": 0}},
    )


@pytest.mark.parametrize("kind", ["plain", "hosts segment", "segment", "merged"])
def test_a_run_result_survives_its_results_json(kind: str) -> None:
    original = _result(hosts="hosts" in kind, segment="segment" in kind, merged=kind == "merged")
    text = _json(original.to_dict())
    back = RunResult.from_dict(text)
    again = _json(back.to_dict())
    # the rates and the drain are derived from times the JSON holds to the millisecond
    for key in RATES:
        assert again["results"].pop(key) == pytest.approx(text["results"].pop(key), rel=1e-3)
    assert again["results"].pop("drain_seconds") == pytest.approx(text["results"].pop("drain_seconds"), abs=0.0011)
    assert again == text
    # after one trip, the JSON is a fixed point
    assert _json(RunResult.from_dict(_json(back.to_dict())).to_dict()) == _json(back.to_dict())
    assert RunResult.from_dict(_json(back.to_dict())) == back
    # what a merge needs comes back exactly, not rounded
    assert back.load.histograms == original.load.histograms
    assert back.load.second_histograms == original.load.second_histograms
    assert back.load.events_ok == original.load.events_ok and back.load.failed_ranges == original.load.failed_ranges
    assert back.load.timeline == original.load.timeline and back.load.errors == original.load.errors
    assert back.server == original.server and back.verdict == original.verdict
    assert back.shard == original.shard and back.merged == original.merged
    assert back.load.latency.p99 == original.load.latency.p99
    assert back.load.elapsed_s == round(original.load.elapsed_s, 3)


def test_each_type_reads_back_what_it_writes() -> None:
    load = _load(hosts=True)
    pct = load.latency
    assert Percentiles.from_dict(_json(pct.to_dict())) == Percentiles(**{**pct.__dict__, "mean": round(pct.mean, 3)})
    for row in load.timeline:
        assert Second.from_dict(_json(row.to_dict())) == row
    cls = ErrorClass(3, 300, ["batch 4: HTTP 503"])
    assert ErrorClass.from_dict(_json(cls.to_dict())) == cls
    assert load.hosts is not None and load.wsman is not None
    assert HostsFigures.from_dict(_json(load.hosts.to_dict())) == load.hosts
    assert WsmanFigures.from_dict(_json(load.wsman.to_dict())) == load.wsman
    assert WsmanFigures.from_dict(_json(WsmanFigures(1, 2, 0, 0, 0, 0).to_dict())) == WsmanFigures(1, 2, 0, 0, 0, 0)
    server = _server()
    assert ServerStats.from_dict(_json(server.to_dict())) == server
    prom = ServerStats(baseline_total=0, final_total=5, source={"format": "prometheus", "metric": "m", "url": "u"})
    assert ServerStats.from_dict(_json(prom.to_dict())) == prom
    verdict = _verdict()
    assert Verdict.from_dict(_json(verdict.to_dict())) == verdict
    assert isinstance(Verdict.from_dict(_json(verdict.to_dict())).exit_code, ExitCode)
    judged = verdict.thresholds[1]
    assert Judged.from_dict(_json(judged.to_dict())) == judged


def test_the_results_json_keeps_the_seeds_keys() -> None:
    data = _result().to_dict()
    seed_keys = ["timestamp", "test_name", "configuration", "results", "s3_verification"]
    assert list(data)[:5] == seed_keys
    assert {"total_time_seconds", "events_sent", "events_received", "successful_batches", "failed_batches",
            "events_per_second_overall"} <= set(data["results"])


def test_an_older_segments_results_keep_the_server_totals_in_their_shard() -> None:
    data = _json(_result(segment=True).to_dict())
    for key in ("baseline_per_type", "final_per_type", "sampler_samples"):
        del data["server_stats"][key]
    back = RunResult.from_dict(data)
    assert back.server.baseline_per_type == {"EventID 4624": 10}
    assert back.server.final_per_type == {"EventID 4624": 3010, "Sec:4625": 600}


def test_model_imports_nothing_else_of_wefperf() -> None:
    spec = importlib.util.find_spec("wefperf.model")
    assert spec is not None and spec.origin is not None
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('model_alone', {spec.origin!r})\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['model_alone'] = m\n"
            "spec.loader.exec_module(m)\n"
            "print(sorted(k for k in sys.modules if k.startswith('wefperf')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
