"""Test data for the S3 verifier: parquet files shaped like the collector's, built with pyarrow."""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable
from urllib.parse import quote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from wefperf.payload import build_pool

DAY = dt.date(2026, 2, 8)
NEXT_DAY = dt.date(2026, 2, 9)
_EVENT = re.compile(rb"<Event xmlns.*?</Event>", re.S)


def key(name: str, date: dt.date = DAY, event_type: str = "4624") -> str:
    return f"event_type={event_type}/year={date.year:04d}/month={date.month:02d}/day={date.day:02d}/{name}.parquet"


def run_events(run_id: str, batch_size: int, batches: int, total_events: int | None = None) -> list[str]:
    """Every event XML a run sends, indexed by sequence number, exactly as wefperf builds them."""
    pool = build_pool(run_id=run_id, batch_size=batch_size, event_type="4624", total_events=total_events)
    events: list[str] = []
    for b in range(batches):
        events.extend(e.decode() for e in _EVENT.findall(pool.body(b)))
    return events


def hand_event(run_id: str, batch: int, index: int) -> str:
    """A small event with a marker, for rows whose sequence numbers a test picks freely."""
    return (
        '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><EventID>4624</EventID>'
        f'</System><EventData><Data Name="WefperfMarker">{run_id}:{batch:010d}:{index:05d}</Data></EventData></Event>'
    )


def parquet_bytes(
    events: Iterable[str],
    *,
    event_id: int = 4624,
    row_group_size: int | None = None,
    compression: str = "snappy",
    pad: int = 0,
    drop: str | None = None,
) -> bytes:
    """The collector's five-column schema (docs/contract.md); `pad` random bytes per row bloat another column."""
    xml = list(events)
    n = len(xml)
    data: dict[str, Any] = {
        "event_id": pa.array([event_id] * n, pa.uint32()),
        "timestamp": pa.array(["2026-02-08T10:44:41.123Z"] * n, pa.string()),
        "source_host": pa.array(["127.0.0.1"] * n, pa.string()),
        "subscription_id": pa.array([os.urandom(pad).hex() if pad else None for _ in range(n)], pa.string()),
        "event_data": pa.array(
            [json.dumps({"raw_xml": x, "parsed": {"event_id": event_id, "provider": "x"}}) for x in xml], pa.string()
        ),
    }
    if drop:
        del data[drop]
    sink = io.BytesIO()
    pq.write_table(pa.table(data), sink, row_group_size=row_group_size, compression=compression)
    return sink.getvalue()


def put_all(s3_client: Any, bucket: str, objects: dict[str, bytes], workers: int = 16) -> None:
    """Upload concurrently with the botocore test client."""
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda kv: s3_client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects.items()))


def put_bulk(endpoint: str, bucket: str, objects: dict[str, bytes], connections: int = 8) -> None:
    """Thousands of objects: plain keep-alive PUTs, which moto's server accepts unsigned.

    botocore spends ~5 ms of CPU per request, as much as moto itself; on two cores that
    would double the time of the pagination test for no extra coverage.
    """
    parts = urlsplit(endpoint)
    items = list(objects.items())

    def send(share: list[tuple[str, bytes]]) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            for k, body in share:
                conn.request("PUT", f"/{bucket}/{quote(k)}", body=body)
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 200, (k, resp.status)
        finally:
            conn.close()

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, [items[i::connections] for i in range(connections)]))


def mixed_run(run_id: str, batch_size: int, batches: int, seed: int, variants: int = 3) -> list[tuple[int, str]]:
    """Every event of a mixed-type run as (EventID, XML), indexed by sequence number."""
    pool = build_pool(run_id=run_id, batch_size=batch_size, variants=variants, seed=seed)
    out: list[tuple[int, str]] = []
    for b in range(batches):
        ids = pool.variant(b).event_ids
        out.extend((ids[i], x.decode()) for i, x in enumerate(_EVENT.findall(pool.body(b))))
    return out


def mixed_results(run_id: str, batch_size: int, batches: int, seed: int, failed: list[list[int]] | None = None,
                  flush_interval_secs: float = 30.0) -> dict[str, Any]:
    """The parts of a results JSON that `wefperf verify --results` reads, for a mixed duration run."""
    return {"run_id": run_id,
            "configuration": {"batch_size": batch_size, "duration_secs": 10, "total_events": 0, "event_type": "",
                              "payload_variants": 3, "flush_interval_secs": flush_interval_secs},
            "payload": {"seed": seed, "batches_sent": batches}, "failed_batch_ranges": failed or []}
