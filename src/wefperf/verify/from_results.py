"""Verification options rebuilt from a run's results JSON, for `wefperf verify --results`.

The results carry the run id, the batch size, the batches sent and failed, and the payload
seed; the same seed and settings build the same batches again, so the verifier knows which
sequence number holds which event type and can check some types of a mixed run exactly.
"""

from __future__ import annotations

from typing import Any

from ..payload import build_pool
from .model import VerifyOptions
from .numbering import Numbering


class ResultsFileError(ValueError):
    """The results file lacks what the verification needs; the message says what."""


def options_from_results(data: dict[str, Any], base: VerifyOptions, event_types: list[str] | None,
                         settle_secs: float | None = None) -> VerifyOptions:
    """`base` carries the S3 connection and checks; the run's own facts come from `data`.

    `settle_secs` None: watch for late copies for one of the run's flush intervals.
    """
    try:
        cfg = data["configuration"]
        run_id = str(data["run_id"])
        batch_size = int(cfg["batch_size"])
        sent = int(data["payload"]["batches_sent"])
        seed = data["payload"]["seed"]
        failed = [(int(a), int(b)) for a, b in data.get("failed_batch_ranges", [])]
        count_mode = not cfg.get("duration_secs")
        total = int(cfg["total_events"]) if count_mode else None
        flush = float(cfg.get("flush_interval_secs") or 0.0)
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsFileError(f"not a wefperf results file with a payload section (missing {exc})") from None
    if seed is None:
        raise ResultsFileError("the results file has no payload seed (written by wefperf before 0.2)")
    if data.get("merged") or (data.get("segment") or {}).get("count", 1) > 1:
        raise ResultsFileError(
            "the results of a segment or of a merged run: their batches are not numbered 0..n-1;"
            " check the whole run with `wefperf merge SOURCE... --verify-s3` on its segments' results"
        )
    if cfg.get("hosts"):
        raise ResultsFileError(
            "a run with simulated hosts (PERF_TEST_HOSTS) sends deliveries of varying size that --results cannot"
            " rebuild; its own --verify-s3 check accounts for every event exactly"
        )
    pool = build_pool(run_id=run_id, batch_size=batch_size, event_type=str(cfg.get("event_type") or ""),
                      total_events=total, variants=int(cfg.get("payload_variants", 8)), seed=int(seed))
    sent_ids = [str(e) for e in pool.event_ids()]
    chosen = sent_ids if not event_types else event_types
    unknown = sorted(set(chosen) - set(sent_ids), key=int)
    if unknown:
        raise ResultsFileError(f"run {run_id} sent no events of type {', '.join(unknown)} (it sent {', '.join(sent_ids)})")
    return VerifyOptions(
        endpoint=base.endpoint, bucket=base.bucket, access_key=base.access_key, secret_key=base.secret_key,
        region=base.region, event_types=sorted(chosen, key=int), dates=base.dates,
        max_file_size_bytes=base.max_file_size_bytes, run_id=run_id, batch_size=batch_size,
        sent_batches=sent, total_events=total, failed_ranges=failed, numbering=Numbering.of_pool(pool, sent),
        wait_secs=base.wait_secs, poll_interval_secs=base.poll_interval_secs,
        settle_secs=flush if settle_secs is None else settle_secs,
    )
