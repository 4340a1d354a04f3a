"""Verification options rebuilt from a run's results JSON, for `wefperf verify --results`.

The results carry the run id, the batch size, the batches sent and failed, and the payload
seed; the same seed and settings build the same batches again, so the verifier knows which
sequence number holds which event type and can check some types of a mixed run exactly.
Simulated hosts (plain HTTP or WS-Man) deliver as many events as they held: their results also
keep each delivery's size and the deliveries Acked in part (`payload.deliveries`).
"""

from __future__ import annotations

import zlib
from typing import Any

from ..model import Deliveries
from ..payload import build_pool
from ..payload.hosts import build_host_payload
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
        numbering, batch_size, total = _hosts_numbering(cfg, data, run_id, int(seed)), int(cfg["max_items"]), None
    else:
        pool = build_pool(run_id=run_id, batch_size=batch_size, event_type=str(cfg.get("event_type") or ""),
                          total_events=total, variants=int(cfg.get("payload_variants", 8)), seed=int(seed))
        numbering = Numbering.of_pool(pool, sent)
    sent_ids = [str(e) for e in (numbering.sent_types() if cfg.get("hosts") else numbering.type_ids)]
    chosen = sent_ids if not event_types else event_types
    unknown = sorted(set(chosen) - set(sent_ids), key=int)
    if unknown:
        raise ResultsFileError(f"run {run_id} sent no events of type {', '.join(unknown)} (it sent {', '.join(sent_ids)})")
    return VerifyOptions(
        endpoint=base.endpoint, bucket=base.bucket, access_key=base.access_key, secret_key=base.secret_key,
        region=base.region, event_types=sorted(chosen, key=int), dates=base.dates,
        max_file_size_bytes=base.max_file_size_bytes, run_id=run_id, batch_size=batch_size,
        sent_batches=sent, total_events=total, failed_ranges=failed, numbering=numbering,
        wait_secs=base.wait_secs, poll_interval_secs=base.poll_interval_secs,
        settle_secs=flush if settle_secs is None else settle_secs,
    )


def _hosts_numbering(cfg: dict[str, Any], data: dict[str, Any], run_id: str, seed: int) -> Numbering:
    """Simulated hosts: the same payload from the seed, numbered by the delivery sizes the results kept."""
    kept = (data.get("payload") or {}).get("deliveries")
    if not kept:
        raise ResultsFileError(
            "a run with simulated hosts (PERF_TEST_HOSTS) whose results keep no delivery sizes (written by an"
            " older wefperf); its own --verify-s3 check accounts for every event exactly"
        )
    try:
        deliveries = Deliveries.from_dict(kept)
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise ResultsFileError(f"the results' payload.deliveries cannot be read ({exc})") from None
    payload = build_host_payload(run_id=run_id, hosts=int(cfg["hosts"]), max_items=int(cfg["max_items"]),
                                 event_type=str(cfg.get("event_type") or ""),
                                 variants=int(cfg.get("payload_variants", 8)), seed=seed)
    return Numbering.of_hosts(payload, deliveries.sizes, deliveries.partial_acks)
