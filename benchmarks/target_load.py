"""Load the reference collector (`wefperf collector`) and report what it took, with zero-loss checks.

    python benchmarks/target_load.py baseline        # 50,000 events, 1,000-event batches, unlimited rate
    python benchmarks/target_load.py sustained-10k   # 10,000 events/s of 4624 for 60 s, then S3 check

Starts its own embedded stack (moto + the collector in a child process) unless --url is given.
Bodies come from wefperf's payload pool and are built before the clock starts; the client only posts.
Loss checks: the collector's /stats/throughput delta must equal the events acknowledged, and (embedded
only) /stats/target must show every one of them uploaded to S3 and none dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any, AsyncIterator

import aiohttp

from wefperf.collector.embedded import embedded_stack
from wefperf.payload import CONTENT_TYPE, build_pool, new_run_id

PROFILES = {
    "baseline": dict(total_events=50_000, batch_size=1_000, eps=0.0, duration=0.0, event_type=""),
    "sustained-10k": dict(total_events=0, batch_size=1_000, eps=10_000.0, duration=60.0, event_type="4624"),
}


async def total_received(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base + "/stats/throughput") as r:
        return sum(row["total_events"] for row in await r.json())


async def target_stats(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(base + "/stats/target") as r:
        return await r.json()


async def load(url: str, *, batches: int, batch_size: int, eps: float, event_type: str, concurrency: int) -> dict[str, Any]:
    pool = build_pool(run_id=new_run_id(), batch_size=batch_size, event_type=event_type, variants=4)
    bodies = [pool.body(b) for b in range(batches)]  # before the clock starts
    base = url.rsplit("/wsman", 1)[0]
    ok = failed = 0
    late = 0.0
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers={"Content-Type": CONTENT_TYPE}) as session:
        before = await total_received(session, base)
        queue: asyncio.Queue[int] = asyncio.Queue()
        started = time.perf_counter()

        async def sender() -> None:
            nonlocal ok, failed
            while True:
                b = await queue.get()
                try:
                    async with session.post(url, data=bodies[b]) as r:
                        await r.read()
                        if r.status == 200:
                            ok += 1
                        else:
                            failed += 1
                except aiohttp.ClientError:
                    failed += 1
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(sender()) for _ in range(concurrency)]
        for b in range(batches):
            if eps:  # open model: batch b is due at b * batch_size / eps
                due = started + b * batch_size / eps
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late = max(late, -delay)
            queue.put_nowait(b)
        await queue.join()
        elapsed = time.perf_counter() - started
        for w in workers:
            w.cancel()
        after = await total_received(session, base)
    return {"batches_ok": ok, "batches_failed": failed, "events_acked": ok * batch_size,
            "elapsed_s": elapsed, "events_per_s": ok * batch_size / elapsed,
            "server_counted": after - before, "max_schedule_lag_s": late, "base": base}


@contextlib.asynccontextmanager
async def stack(url: str | None, flush: float) -> AsyncIterator[str]:
    if url:
        yield url
        return
    async with embedded_stack(flush_interval_secs=flush, bucket="bench") as s:
        yield s.wef_endpoint


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", choices=sorted(PROFILES))
    ap.add_argument("--url", help="collector events URL (default: start an embedded stack)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=float, help="override the profile's duration (rate profiles)")
    ap.add_argument("--flush-interval-secs", type=float, default=5.0)
    a = ap.parse_args()
    p = PROFILES[a.profile]
    duration = a.duration or p["duration"]
    batches = int(p["total_events"] // p["batch_size"]) if not p["eps"] else int(duration * p["eps"] // p["batch_size"])
    async with stack(a.url, a.flush_interval_secs) as url:
        r = await load(url, batches=batches, batch_size=p["batch_size"], eps=p["eps"],
                       event_type=p["event_type"], concurrency=a.concurrency)
        print(f"{a.profile}: {r['events_acked']:,} events acked in {r['elapsed_s']:.2f} s = "
              f"{r['events_per_s']:,.0f} events/s; failed batches {r['batches_failed']}; "
              f"server counted {r['server_counted']:,}; max schedule lag {r['max_schedule_lag_s']:.3f} s")
        lossless = r["batches_failed"] == 0 and r["server_counted"] == r["events_acked"]
        if not a.url:  # our own collector: wait for the flush, then every event must be in S3
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + a.flush_interval_secs + 60
                while time.monotonic() < deadline:
                    st = await target_stats(session, r["base"])
                    if st["uploaded_events"] + st["dropped_events"] >= r["events_acked"]:
                        break
                    await asyncio.sleep(0.5)
            print(f"S3: {st['uploaded_events']:,} events in {st['uploaded_files']} files "
                  f"({st['uploaded_bytes'] / 1e6:.1f} MB), dropped {st['dropped_events']}, retries {st['upload_retries']}")
            lossless = lossless and st["uploaded_events"] == r["events_acked"] and st["dropped_events"] == 0
    print("zero loss" if lossless else "LOSS DETECTED")
    return 0 if lossless else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
