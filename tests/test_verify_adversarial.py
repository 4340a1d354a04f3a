"""Issue 25: the S3 verifier passes nothing that is wrong and fails nothing that is right.

Each case is crafted parquet in a real S3 API server (moto's server mode), or a real server
in front of it (a proxy that answers 503, a socket that never answers).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import wefperf
from verify_data import DAY, hand_event, key, mixed_results, mixed_run, parquet_bytes, put_all, run_events
from wefperf.report.html import render_html
from wefperf.report.s3 import s3_block
from wefperf.verify import VerifyOptions, verify_s3
from wefperf.verify.from_results import options_from_results

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _opts(endpoint: str, bucket: str, **kw) -> VerifyOptions:
    return VerifyOptions(endpoint=endpoint, bucket=bucket, access_key="testing", secret_key="testing",
                         event_types=kw.pop("event_types", ["4624"]), **kw)


# -- 1. events filed under another type's partition ---------------------------------------------


def _misfiled_run(s3_client, bucket: str) -> tuple[dict, int, int]:
    """A mixed run stored whole, except that its 4625 events sit under event_type=4624."""
    run, bs, batches, seed = "m1sf11ed", 20, 12, 5
    events = mixed_run(run, bs, batches, seed)
    by_partition: dict[int, list[str]] = {}
    for event_id, xml in events:
        by_partition.setdefault(4624 if event_id == 4625 else event_id, []).append(xml)
    misfiled = sum(1 for e, _ in events if e == 4625)
    assert misfiled > 0 and len(by_partition) >= 2
    put_all(s3_client, bucket, {key(f"p{e}", DAY, str(e)): parquet_bytes(x, event_id=e)
                                for e, x in by_partition.items()})
    return mixed_results(run, bs, batches, seed), misfiled, len(events)


async def test_events_under_another_types_partition_are_misplaced_and_fail(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    results, misfiled, total = _misfiled_run(s3_client, bucket)
    base = _opts(moto_endpoint, bucket, dates=[DAY])

    every = await verify_s3(options_from_results(results, base, None))  # the run's own check: every type
    acct = every.accounting
    assert acct is not None and not every.passed
    assert acct.misplaced == misfiled
    assert acct.unexpected == 0 and acct.missing == 0 and acct.duplicated == 0
    assert acct.found == total - misfiled and acct.expected == total
    assert f"{misfiled:,} events stored under another event type's partition (misplaced)" in every.reason
    assert "never sent" not in every.reason
    assert every.to_dict()["accounting"]["misplaced"] == misfiled
    assert f"  Misplaced: {misfiled:,} rows under another event type's partition" in "\n".join(s3_block(every))
    page = render_html({"configuration": {}, "results": {}, "s3_verification": every.to_dict()})
    assert re.search(rf"misplaced \(under another event type&#x27;s partition\)</t[dh]><td[^>]*>{misfiled:,}<", page)
    assert "<h3>Misplaced events (under another event type's partition)</h3>" in page

    fours = await verify_s3(options_from_results(results, base, ["4624"]))  # `verify --event-type 4624`
    assert fours.accounting is not None and not fours.passed
    assert fours.accounting.misplaced == misfiled and fours.accounting.unexpected == 0
    assert "misplaced" in fours.reason and "never sent" not in fours.reason

    fives = await verify_s3(options_from_results(results, base, ["4625"]))  # nothing in its own partition
    assert fives.accounting is not None and fives.accounting.missing == misfiled
    assert fives.accounting.misplaced == 0
    assert "every type checked at once would show any filed under another type's partition" in fives.reason
    assert "from the partitions checked" not in every.reason


def test_cli_names_misplaced_events_for_one_type(moto_endpoint: str, s3_client, bucket: str, tmp_path: Path) -> None:
    results, misfiled, _ = _misfiled_run(s3_client, bucket)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    env = {"S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket, **S3_ENV}
    done = wefperf("verify", "--results", str(path), "--event-type", "4624", "--settle-secs", "0", env=env)
    assert done.code == 1, done.out + done.err
    assert f"{misfiled:,} events stored under another event type's partition (misplaced)" in done.out
    assert "never sent" not in done.out


async def test_a_never_sent_row_is_not_a_misplaced_row(moto_endpoint: str, s3_client, bucket: str) -> None:
    run, bs, batches, seed = "n0ts3nt", 20, 4, 9
    events = mixed_run(run, bs, batches, seed)
    by_type: dict[int, list[str]] = {}
    for event_id, xml in events:
        by_type.setdefault(event_id, []).append(xml)
    by_type[4624].append(hand_event(run, batches + 3, 0))  # a batch the run never sent
    put_all(s3_client, bucket, {key(f"p{e}", DAY, str(e)): parquet_bytes(x, event_id=e) for e, x in by_type.items()})
    res = await verify_s3(options_from_results(mixed_results(run, bs, batches, seed), _opts(moto_endpoint, bucket), None))
    assert res.accounting is not None
    assert (res.accounting.unexpected, res.accounting.misplaced, res.accounting.missing) == (1, 0, 0)
    assert "1 rows of this run were never sent" in res.reason and "misplaced" not in res.reason


# -- 2. a marker forged inside an event's data --------------------------------------------------


def _with_forged_value(xml: str, forged: str) -> str:
    """The event with a CommandLine value put before its real marker, escaped as XML escapes it."""
    value = forged.replace("&", "&amp;").replace("<", "&lt;")
    return xml.replace("<EventData>", f'<EventData><Data Name="CommandLine">{value}</Data>', 1)


async def test_a_marker_forged_inside_event_data_is_not_counted(moto_endpoint: str, s3_client, bucket: str) -> None:
    run, bs = "f0rge1", 10
    ev = run_events(run, bs, 3)
    forged = f'echo Name="WefperfMarker">{run}:0000000002:9'
    rows = ev[:29]  # seq 29 (batch 2, index 9) was lost
    rows[5] = _with_forged_value(rows[5], forged)  # one of the run's own events carries the text
    foreign = _with_forged_value("<Event><System><EventID>4688</EventID></System><EventData></EventData></Event>",
                                 forged)
    put_all(s3_client, bucket, {key("forged"): parquet_bytes(rows + [foreign])})
    res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs, sent_batches=3))
    acct = res.accounting
    assert acct is not None and not res.passed
    assert acct.missing == 1 and acct.missing_ranges == [(29, 29)]
    assert acct.duplicated == 0 and acct.found == 29 and acct.unmarked_rows == 1


# -- 3. late duplicates -------------------------------------------------------------------------


async def test_polling_goes_on_until_quiet_so_a_late_duplicate_is_seen(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    run, bs = "1a7ed0", 10
    ev = run_events(run, bs, 3)
    put_all(s3_client, bucket, {key("all"): parquet_bytes(ev)})

    def later_flush() -> None:
        time.sleep(0.8)
        s3_client.put_object(Bucket=bucket, Key=key("again"), Body=parquet_bytes(ev[10:15]))

    flusher = threading.Thread(target=later_flush)
    flusher.start()
    started = time.monotonic()
    res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs, sent_batches=3, wait_secs=20,
                                poll_interval_secs=0.2, settle_secs=2.0))
    elapsed = time.monotonic() - started
    flusher.join()
    assert res.accounting is not None and res.accounting.duplicated == 5 and not res.passed
    # Quiet for 2 s after the late file at ~0.8 s: well before the 20 s deadline (generous for a busy machine).
    assert 2.0 <= elapsed < 15


async def test_other_writers_to_the_bucket_do_not_keep_the_check_waiting(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    run, bs = "q0u1e7", 10
    put_all(s3_client, bucket, {key("all"): parquet_bytes(run_events(run, bs, 3))})
    stop = threading.Event()
    other = parquet_bytes([hand_event("0th3r", 0, i) for i in range(5)])

    def other_run() -> None:  # another run's collector flushing into the same partitions all the while
        n = 0
        while not stop.wait(0.25):
            s3_client.put_object(Bucket=bucket, Key=key(f"other-{n}"), Body=other)
            n += 1

    writer = threading.Thread(target=other_run)
    writer.start()
    try:
        started = time.monotonic()
        res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs, sent_batches=3, wait_secs=30,
                                    poll_interval_secs=0.2, settle_secs=1.0))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        writer.join()
    assert res.passed, res.reason
    assert elapsed < 15, f"took {elapsed:.1f} s"  # quiet after ~1 s; the deadline is 30 s (generous when busy)


# -- 4. transient S3 errors ---------------------------------------------------------------------


class SlowDownProxy:
    """A real HTTP server on 127.0.0.1 in front of moto: answers `503 SlowDown` to the first
    `failures` object GETs, and forwards everything else unchanged."""

    BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream, self.failures = upstream, failures
        self.refused = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "SlowDownProxy":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from aiohttp import ClientSession, web

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        session = ClientSession(auto_decompress=False)

        async def handle(request: web.Request) -> web.StreamResponse:
            if request.method == "GET" and "Range" in request.headers and self.refused < self.failures:
                self.refused += 1
                return web.Response(status=503, body=self.BODY, content_type="application/xml")
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with session.request(request.method, self.upstream + request.rel_url.raw_path_qs,
                                       headers=headers, data=await request.read()) as up:
                body = await up.read()
                out = {k: v for k, v in up.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")}
                return web.Response(status=up.status, body=body, headers=out)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        await self._stop.wait()
        await session.close()
        await runner.cleanup()


async def test_a_transient_503_is_retried_until_the_deadline(moto_endpoint: str, s3_client, bucket: str) -> None:
    run, bs = "s10wd0", 10
    ev = run_events(run, bs, 3)
    put_all(s3_client, bucket, {key("all"): parquet_bytes(ev)})
    with SlowDownProxy(moto_endpoint, failures=3) as proxy:
        res = await verify_s3(_opts(proxy.endpoint, bucket, run_id=run, batch_size=bs, sent_batches=3,
                                    wait_secs=20, poll_interval_secs=0.2))
        assert proxy.refused == 3
    assert res.error is None and res.passed, res.reason
    assert res.files == 1 and res.rows == 30 and res.polls >= 2
    # Footers only (no run id): a footer read that failed is read again, not remembered as failed.
    with SlowDownProxy(moto_endpoint, failures=3) as proxy:
        res = await verify_s3(_opts(proxy.endpoint, bucket, expect_events=30, wait_secs=20, poll_interval_secs=0.2))
    assert res.error is None and res.passed, res.reason


@pytest.mark.slow
async def test_an_error_on_the_last_poll_is_reported(moto_endpoint: str, s3_client, bucket: str) -> None:
    run, bs = "s10wd1", 10
    put_all(s3_client, bucket, {key("all"): parquet_bytes(run_events(run, bs, 3))})
    with SlowDownProxy(moto_endpoint, failures=10**6) as proxy:
        started = time.monotonic()
        res = await verify_s3(_opts(proxy.endpoint, bucket, run_id=run, batch_size=bs, sent_batches=3,
                                    wait_secs=4.0, poll_interval_secs=0.2))
        elapsed = time.monotonic() - started
    assert not res.passed and res.error is not None and "SlowDown" in res.error
    assert res.polls >= 2 and elapsed < 20  # retried, and ended near its 4 s deadline (generous when busy)


# -- 5. clock skew at midnight ------------------------------------------------------------------


async def test_a_run_just_after_midnight_also_checks_the_day_before(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    from wefperf.verify import run_dates

    run, bs = "m1dn1t", 10
    ev = run_events(run, bs, 3)
    # The collector's clock is a minute behind: its first flush (run started 00:00:30 UTC) is filed under the 8th.
    put_all(s3_client, bucket, {key("first", DAY): parquet_bytes(ev[:10]),
                                key("rest", DAY + dt.timedelta(days=1)): parquet_bytes(ev[10:])})
    started = dt.datetime(2026, 2, 9, 0, 0, 30, tzinfo=dt.timezone.utc)
    dates = run_dates(started, started + dt.timedelta(seconds=75))
    assert dates == [DAY, DAY + dt.timedelta(days=1)]
    res = await verify_s3(_opts(moto_endpoint, bucket, dates=dates, run_id=run, batch_size=bs, sent_batches=3))
    assert res.passed, res.reason


# -- 6. folder objects ------------------------------------------------------------------------------


async def test_zero_byte_folder_objects_are_not_layout_problems(moto_endpoint: str, s3_client, bucket: str) -> None:
    run, bs = "f01de2", 10
    ev = run_events(run, bs, 2)
    put_all(s3_client, bucket, {
        key("data"): parquet_bytes(ev),
        "event_type=4624/": b"", "event_type=4624/year=2026/": b"",
        "event_type=4624/year=2026/month=02/day=08/": b"",
    })
    res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs, sent_batches=2))
    assert res.problems == [] and res.passed, res.reason
    assert res.files == 1


# -- 7. dictionary-encoded event_data -------------------------------------------------------------


async def test_dictionary_encoded_event_data_is_read_as_strings(moto_endpoint: str, s3_client, bucket: str) -> None:
    run, bs = "d1c7e0", 10
    ev = run_events(run, bs, 3)
    plain = pq.read_table(io.BytesIO(parquet_bytes(ev)))
    column = plain.column("event_data").combine_chunks().dictionary_encode()
    table = plain.set_column(plain.schema.get_field_index("event_data"), "event_data", column)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    assert pq.read_table(io.BytesIO(sink.getvalue())).schema.field("event_data").type == pa.dictionary(
        pa.int32(), pa.string())
    put_all(s3_client, bucket, {key("dict"): sink.getvalue()})
    res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs, sent_batches=3))
    assert res.problems == [] and res.passed, res.reason


# -- 8. the deadline is a deadline ----------------------------------------------------------------


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A socket that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.slow
def test_verify_against_a_silent_endpoint_ends_near_its_deadline(silent_endpoint: str) -> None:
    started = time.monotonic()
    done = wefperf("verify", "--event-type", "4624", "--wait-secs", "5",
                   env={"S3_ENDPOINT": silent_endpoint, "S3_BUCKET": "wef-events", **S3_ENV}, timeout=120)
    elapsed = time.monotonic() - started
    assert done.code == 1
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert f"S3 at {silent_endpoint} did not answer" in done.err, done.err


# -- 9 and 10. memory follows the rows found, not the numbering ------------------------------------


async def test_a_stray_huge_batch_number_costs_no_memory(moto_endpoint: str, s3_client, bucket: str) -> None:
    run, bs = "57a7e0", 1000
    rows = [hand_event(run, 0, i) for i in range(50)] + [hand_event(run, 9_999_999_999, 0)]
    put_all(s3_client, bucket, {key("stray"): parquet_bytes(rows)})
    tracemalloc.start()
    try:
        res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.accounting is not None and res.accounting.rows == 51 and res.accounting.found == 51
    assert peak < 32 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB of Python allocations"


async def test_simulated_hosts_are_numbered_densely(moto_endpoint: str, s3_client, bucket: str) -> None:
    """10,007 events in deliveries of 1..3 with max_items 2000: one byte per event, not per numbered slot."""
    from array import array

    from wefperf.payload.hosts import build_host_payload
    from wefperf.verify.numbering import Numbering

    run, m = "h0575a", 2000
    payload = build_host_payload(run_id=run, hosts=3, max_items=m, seed=11)
    sizes: array[int] = array("I")
    while sum(sizes) < 10_007:
        sizes.append(1 + len(sizes) % 3)
    sizes[-1] -= sum(sizes) - 10_007
    by_type: dict[int, list[str]] = {}
    for batch, k in enumerate(sizes):
        body = payload.body(batch, k, batch % 3, 1000)
        ids = payload.variants[payload.variant_of(batch)].event_ids
        for i, xml in enumerate(re.findall(rb"<Event xmlns.*?</Event>", body, re.S)):
            by_type.setdefault(ids[i], []).append(xml.decode())
    lost = by_type[4624].pop()
    put_all(s3_client, bucket, {key(f"h{e}", DAY, str(e)): parquet_bytes(x, event_id=e) for e, x in by_type.items()})
    tracemalloc.start()
    try:
        numbering = Numbering.of_hosts(payload, sizes)
        res = await verify_s3(_opts(moto_endpoint, bucket, event_types=[str(e) for e in numbering.type_ids],
                                    run_id=run, numbering=numbering))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    acct = res.accounting
    assert acct is not None and acct.expected == 10_007 and acct.found == 10_006 and acct.misplaced == 0
    batch, index = (int(x) for x in re.search(r":(\d{10}):(\d+)<", lost).groups())  # type: ignore[union-attr]
    assert acct.missing_ranges == [(batch * m + index, batch * m + index)]  # reported in the markers' numbering
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB of Python allocations"
