"""What the S3 check of a large simulated-hosts run costs: wall time and peak RSS of the verifier.

Stores a run's events (marker-only rows, five-column schema, partitioned by event type) in
moto's server, then runs `verify_s3` in a fresh child process, so the RSS measured is the
check's own. Deliveries hold 1..max_items events (random sizes), so the markers' numbers
(`batch × max_items + index`) have holes the accounting must not pay for. Run:
    .venv/bin/python benchmarks/verify_cost.py [--events 10000000] [--max-items 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import io
import json
import random
import subprocess
import sys
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from bench_sink import vm_kb

RUN_ID = "b1e5c0de"
SEED = 7


def sizes_of(events: int, max_items: int) -> array[int]:
    """Random delivery sizes 1..max_items adding up to `events` (the same on every call)."""
    rng = random.Random(SEED)
    sizes: array[int] = array("I")
    left = events
    while left:
        k = min(left, rng.randint(1, max_items))
        sizes.append(k)
        left -= k
    return sizes


def payload(max_items: int):  # type: ignore[no-untyped-def]
    from wefperf.payload.hosts import build_host_payload

    return build_host_payload(run_id=RUN_ID, hosts=100, max_items=max_items, seed=SEED)


def store(endpoint: str, bucket: str, events: int, max_items: int, files: int) -> int:
    """Upload the run's rows as `files` rounds of one parquet file per event type; returns bytes stored."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pl = payload(max_items)
    sizes = sizes_of(events, max_items)
    patterns = [v.event_ids for v in pl.variants]
    per_file = -(-len(sizes) // files)
    head = '{"raw_xml":"<Event><EventData><Data Name=\\"WefperfMarker\\">' + RUN_ID + ":"
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    conn.request("PUT", f"/{bucket}")
    conn.getresponse().read()
    stored = 0

    def put(key: str, body: bytes) -> None:
        c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        c.request("PUT", f"/{bucket}/{key}", body=body)
        assert c.getresponse().status == 200
        c.close()

    with ThreadPoolExecutor(4) as pool:
        for f in range(files):
            rows: dict[int, list[str]] = {}
            for b in range(f * per_file, min(len(sizes), (f + 1) * per_file)):
                ids = patterns[b % len(patterns)]
                for i in range(sizes[b]):
                    rows.setdefault(ids[i], []).append(f"{head}{b:010d}:{i:05d}</Data></EventData></Event>\"}}")
            jobs = []
            for event_id, data in rows.items():
                n = len(data)
                table = pa.table({"event_id": pa.array([event_id] * n, pa.uint32()),
                                  "timestamp": pa.array(["2026-02-08T10:44:41.123Z"] * n),
                                  "source_host": pa.array(["127.0.0.1"] * n),
                                  "subscription_id": pa.array(["s"] * n), "event_data": pa.array(data)})
                sink = io.BytesIO()
                pq.write_table(table, sink, row_group_size=65_536)
                body = sink.getvalue()
                stored += len(body)
                key = f"event_type={event_id}/year=2026/month=02/day=08/f{f:04d}.parquet"
                jobs.append(pool.submit(put, key, body))
            for job in jobs:
                job.result()
    return stored


def peak_rss_mb() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not carried over from the parent across exec)."""
    return round(vm_kb("self") / 1024)


def check(endpoint: str, bucket: str, events: int, max_items: int) -> dict[str, object]:
    """In the child: the run's numbering and the whole S3 check, timed."""
    from wefperf.verify import Numbering, VerifyOptions, verify_s3

    base_rss = peak_rss_mb()  # the interpreter, pyarrow and wefperf loaded
    started = time.perf_counter()
    numbering = Numbering.of_hosts(payload(max_items), sizes_of(events, max_items))
    opts = VerifyOptions(endpoint=endpoint, bucket=bucket, access_key="x", secret_key="x",
                         event_types=[str(e) for e in numbering.type_ids], run_id=RUN_ID, numbering=numbering)
    res = asyncio.run(verify_s3(opts))
    acct = res.accounting
    return {"seconds": round(time.perf_counter() - started, 1), "passed": res.passed, "reason": res.reason,
            "files": res.files, "rows": res.rows, "found": acct.found if acct else None,
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": base_rss, "bytes_fetched_mb": round(res.bytes_fetched / 2**20)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--max-items", type=int, default=100)
    p.add_argument("--files", type=int, default=50, help="flushes: one parquet file per event type each")
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", nargs=2, metavar=("ENDPOINT", "BUCKET"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.check:
        print(json.dumps(check(args.check[0], args.check[1], args.events, args.max_items)))
        return
    from wefperf.collector.s3server import MotoServer

    with MotoServer() as server:
        started = time.perf_counter()
        stored = store(server.endpoint, "bench", args.events, args.max_items, args.files)
        upload_s = time.perf_counter() - started
        child = subprocess.run([sys.executable, __file__, "--events", str(args.events), "--max-items",
                                str(args.max_items), "--check", server.endpoint, "bench"],
                               capture_output=True, text=True, check=True)
    out = json.loads(child.stdout)
    out.update(events=args.events, max_items=args.max_items, stored_mb=round(stored / 2**20),
               upload_seconds=round(upload_s, 1))
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
