"""The verifier against a real moto S3 server: listing, per-object checks, accounting, waiting."""

from __future__ import annotations

import os
import threading
import time

import pytest

from verify_data import (
    DAY,
    NEXT_DAY,
    hand_event,
    key,
    parquet_bytes,
    put_all,
    put_bulk,
    run_events,
)
from wefperf.report.s3 import s3_block
from wefperf.verify import VerifyOptions, verify_s3

KIB = 1024


def _opts(endpoint: str, bucket: str, **kw) -> VerifyOptions:
    return VerifyOptions(endpoint=endpoint, bucket=bucket, access_key="testing", secret_key="testing",
                         event_types=kw.pop("event_types", ["4624"]), **kw)


@pytest.mark.slow
async def test_pagination_counts_2500_objects(moto_endpoint: str, s3_client, bucket: str) -> None:
    # 50 distinct files of 1..50 rows, each stored 50 times: 2,500 objects over two days.
    blobs = [parquet_bytes([hand_event("p1", b, i) for i in range(b + 1)]) for b in range(50)]
    objects = {key(f"{i:05d}", DAY if i < 2000 else NEXT_DAY): blobs[i % 50] for i in range(2500)}
    objects[key("elsewhere", NEXT_DAY.replace(day=10))] = blobs[0]  # a date the run did not cover
    put_bulk(moto_endpoint, bucket, objects)
    assert s3_client.head_object(Bucket=bucket, Key=key("02499", NEXT_DAY))["ContentLength"] == len(blobs[2499 % 50])
    rows = 50 * sum(range(1, 51))
    res = await verify_s3(_opts(moto_endpoint, bucket, dates=[DAY, NEXT_DAY], expect_events=rows))
    assert res.error is None and res.problems == []
    assert res.files == 2500
    assert res.rows == rows
    assert res.total_bytes == 50 * sum(map(len, blobs))
    assert res.passed
    # Footers only, with ranged GETs: each distinct file (same ETag and size) is read once.
    assert res.bytes_fetched == sum(map(len, blobs))
    res = await verify_s3(_opts(moto_endpoint, bucket, dates=[DAY, NEXT_DAY], expect_events=rows + 1))
    assert not res.passed and res.reason == f"expected {rows + 1:,} rows, found {rows:,}"


async def test_oversize_corrupt_and_misplaced_objects_are_each_reported(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    good = parquet_bytes([hand_event("g1", 0, i) for i in range(3)])
    big = parquet_bytes([hand_event("g1", 1, i) for i in range(3)], pad=8 * KIB, compression="none")
    objects = {
        key("good"): good,
        key("0b0e1c2d-uuid-named"): good,
        key("big"): big,
        key("corrupt"): os.urandom(3000),
        key("bad-footer"): b"PAR1" + os.urandom(500) + (400).to_bytes(4, "little") + b"PAR1",
        key("no-source-host"): parquet_bytes([hand_event("g1", 2, 0)], drop="source_host"),
        key("logoff-rows"): parquet_bytes([hand_event("g1", 3, 0)], event_id=4634),
        "event_type=4624/stray.parquet": good,
        "event_type=4624/year=2026/month=2/day=8/unpadded.parquet": good,
        "event_type=4624/year=2026/month=02/day=08/nested/deeper.parquet": good,
        "event_type=4624/year=2026/month=02/day=08/notes.txt": b"hello",
        key("other-type", event_type="4625"): good,  # another partition: not ours, not a problem
    }
    put_all(s3_client, bucket, objects)
    res = await verify_s3(_opts(moto_endpoint, bucket, max_file_size_bytes=8 * KIB))
    assert not res.passed
    text = "\n".join(res.problems)

    def problem(fragment: str, about: str) -> None:
        assert any(fragment in p and about in p for p in res.problems), f"{fragment!r}/{about!r} not in:\n{text}"

    problem(key("big"), "maximum file size")
    problem(key("corrupt"), "corrupt parquet: no parquet magic")
    problem(key("bad-footer"), "corrupt parquet")
    problem(key("no-source-host"), "missing column(s) source_host")
    problem(key("logoff-rows"), "holds rows of event 4634 under event_type=4624 (wrong partition)")
    problem("event_type=4624/stray.parquet", "outside the partition layout")
    problem("event_type=4624/year=2026/month=2/", "outside the partition layout")
    problem("nested/deeper.parquet", "outside the partition layout")
    problem("notes.txt", "outside the partition layout")
    assert len(res.problems) == 9
    assert not any("good" in p or "uuid" in p or "4625" in p for p in res.problems)
    # Parquet-named objects inside the layout are counted (the broken ones too); strays are not.
    assert res.files == 7
    assert res.rows == 3 + 3 + 3 + 1 + 1
    block = "\n".join(s3_block(res))
    assert "✗ S3 verification failed: 9 problems with stored objects" in block
    assert "  Files found: 7" in block


async def test_accounting_reports_missing_duplicated_and_unacknowledged_events(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    run, bs = "a1b2c3", 10
    ev = run_events(run, bs, 20, total_events=195)  # count mode: batch 19 holds 5 events
    assert len(ev) == 195
    first = [ev[s] for s in range(100) if not 30 <= s <= 39 and s not in (55, 56, 57) and not 75 <= s <= 79]
    second = ev[100:195]
    again = ev[120:130] + [ev[150], ev[150]]
    strays = [hand_event("ffff01", 0, i) for i in range(5)] + ["<Event>no marker</Event>"] * 2
    beyond = [hand_event(run, 19, 5), hand_event(run, 2, 12)]  # never sent: past the short batch; index > size
    put_all(s3_client, bucket, {
        key("first", DAY): parquet_bytes(first, row_group_size=16),
        key("second", NEXT_DAY): parquet_bytes(second),
        key("again", NEXT_DAY): parquet_bytes(again),
        key("strays", NEXT_DAY): parquet_bytes(strays + beyond),
    })
    res = await verify_s3(_opts(moto_endpoint, bucket, dates=[DAY, NEXT_DAY], run_id=run, batch_size=bs,
                                sent_batches=20, total_events=195, failed_ranges=[(7, 7)]))
    acct = res.accounting
    assert acct is not None
    assert acct.expected == 185
    assert acct.missing == 13 and acct.missing_ranges == [(30, 39), (55, 57)]
    assert acct.duplicated == 12 and acct.duplicate_ranges == [(120, 129), (150, 150)]
    assert acct.not_acknowledged_found == 5
    assert acct.found == 172
    assert acct.other_rows == 5 and acct.unmarked_rows == 2
    assert acct.unexpected == 2
    assert not res.passed
    assert "13 of 185 acknowledged events missing" in res.reason and "12 events duplicated" in res.reason
    block = "\n".join(s3_block(res))
    assert "  Missing: 13 events: seq 30-39 (batch 3), seq 55-57 (batch 5)" in block
    assert "  Duplicated: 12 extra copies: seq 120-129 (batch 12), seq 150 (batch 15)" in block
    assert "Stored although not acknowledged: 5 events of 1 failed batch" in block
    data = res.to_dict()
    assert data["accounting"]["missing_ranges"] == [[30, 39], [55, 57]]
    assert data["success"] is False and data["files_found"] == 4


async def test_complete_run_passes_and_reads_only_the_event_data_column(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    run, bs = "c0ffee", 50
    ev = run_events(run, bs, 8)
    # Bulky, incompressible neighbour column: reading it would double the bytes fetched.
    put_all(s3_client, bucket, {
        key("a"): parquet_bytes(ev[:200], row_group_size=64, compression="none", pad=1500),
        key("b"): parquet_bytes(ev[200:], row_group_size=64, compression="none", pad=1500),
    })
    res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs, sent_batches=8))
    assert res.passed, res.reason
    assert res.accounting is not None and (res.accounting.expected, res.accounting.found) == (400, 400)
    assert res.total_bytes > 1_000_000
    assert res.bytes_fetched < res.total_bytes / 2
    # Without a run id only the footers are read.
    footers = await verify_s3(_opts(moto_endpoint, bucket, expect_events=400))
    assert footers.passed and footers.bytes_fetched <= 2 * 64 * KIB


async def test_dates_limit_the_listing_to_the_run_partitions(moto_endpoint: str, s3_client, bucket: str) -> None:
    blob = parquet_bytes([hand_event("d1", 0, 0)])
    put_all(s3_client, bucket, {key("x", DAY): blob, key("y", NEXT_DAY): blob,
                                key("z", DAY.replace(month=1)): blob})
    assert (await verify_s3(_opts(moto_endpoint, bucket, dates=[NEXT_DAY]))).files == 1
    assert (await verify_s3(_opts(moto_endpoint, bucket, dates=[DAY, NEXT_DAY]))).files == 2
    assert (await verify_s3(_opts(moto_endpoint, bucket))).files == 3


async def test_no_files_found_fails_and_says_what_the_bucket_holds(moto_endpoint: str, s3_client, bucket: str) -> None:
    put_all(s3_client, bucket, {"archive/event_type=4624/a.parquet": b"x"})
    res = await verify_s3(_opts(moto_endpoint, bucket))
    assert not res.passed
    assert res.reason.startswith("No files found") and "archive/" in res.reason
    assert "✗ S3 verification failed: No files found" in "\n".join(s3_block(res))


async def test_polls_until_the_expected_events_arrive(moto_endpoint: str, s3_client, bucket: str) -> None:
    run, bs = "b0b0b0", 10
    ev = run_events(run, bs, 4)
    put_all(s3_client, bucket, {key("early"): parquet_bytes(ev[:20])})

    def late_flush() -> None:
        time.sleep(1.0)
        s3_client.put_object(Bucket=bucket, Key=key("late"), Body=parquet_bytes(ev[20:]))

    lines: list[str] = []
    flusher = threading.Thread(target=late_flush)
    flusher.start()
    started = time.monotonic()
    res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs, sent_batches=4,
                                wait_secs=20, poll_interval_secs=0.2), progress=lines.append)
    flusher.join()
    assert res.passed, res.reason
    assert res.polls >= 2 and time.monotonic() - started < 10
    assert any("20/40 events of run b0b0b0" in line for line in lines)


async def test_gives_up_at_the_deadline_and_reports_what_is_missing(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    run, bs = "dead11", 10
    ev = run_events(run, bs, 3)
    put_all(s3_client, bucket, {key("only"): parquet_bytes(ev[:25])})
    started = time.monotonic()
    res = await verify_s3(_opts(moto_endpoint, bucket, run_id=run, batch_size=bs, sent_batches=3,
                                wait_secs=1.0, poll_interval_secs=0.3))
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 12  # its 1 s deadline and a last poll, on a busy machine: not an endless wait
    assert not res.passed and res.accounting is not None
    assert res.accounting.missing == 5 and res.accounting.missing_ranges == [(25, 29)]


def _mixed_run_results(run: str, batch_size: int, batches: int, seed: int, failed: list[list[int]]) -> dict:
    return {"run_id": run, "configuration": {"batch_size": batch_size, "duration_secs": 10, "total_events": 0,
                                             "event_type": "", "payload_variants": 3},
            "payload": {"seed": seed, "batches_sent": batches}, "failed_batch_ranges": failed}


async def test_one_type_of_a_mixed_run_is_checked_exactly_from_the_results(
    moto_endpoint: str, s3_client, bucket: str
) -> None:
    """Five types in one run: the 4624 partition holds only the 4624 sequence numbers, and the
    verifier, knowing the layout from the results, expects exactly those (no false losses)."""
    import re as _re

    from wefperf.payload import build_pool, find_markers
    from wefperf.verify.from_results import options_from_results

    run, bs, batches, seed = "c0ffee01", 20, 12, 77
    pool = build_pool(run_id=run, batch_size=bs, variants=3, seed=seed)
    by_type: dict[int, list[str]] = {}
    for b in range(batches):
        if b == 4:
            continue  # failed: never stored
        for i, xml in enumerate(_re.findall(r"<Event xmlns.*?</Event>", pool.body(b).decode(), _re.S)):
            by_type.setdefault(pool.variant(b).event_ids[i], []).append(xml)
    fours = by_type[4624]
    lost = fours.pop(3)  # one 4624 event the collector lost
    put_all(s3_client, bucket, {key("mixed", DAY, "4624"): parquet_bytes(fours, event_id=4624)})
    results = _mixed_run_results(run, bs, batches, seed, [[4, 4]])
    base = _opts(moto_endpoint, bucket, dates=[DAY])
    res = await verify_s3(options_from_results(results, base, ["4624"]))
    acct = res.accounting
    assert acct is not None
    expected = pool.expected_types(batches, [(4, 4)])[4624]
    assert acct.expected == expected and acct.found == expected - 1
    lost_seq = find_markers(lost)[0].seq(bs)
    assert acct.missing == 1 and acct.missing_ranges == [(lost_seq, lost_seq)]
    assert acct.unexpected == 0 and acct.duplicated == 0
    assert res.reason.startswith(f"1 of {expected:,} acknowledged events missing from the partitions checked")


def test_results_without_a_seed_or_with_an_unsent_type_are_refused() -> None:
    import pytest as _pytest

    from wefperf.verify.from_results import ResultsFileError, options_from_results

    base = _opts("http://127.0.0.1:9", "bkt")
    old = _mixed_run_results("r1", 10, 2, 1, [])
    old["payload"]["seed"] = None
    with _pytest.raises(ResultsFileError, match="no payload seed"):
        options_from_results(old, base, ["4624"])
    with _pytest.raises(ResultsFileError, match="sent no events of type 1102"):
        options_from_results(_mixed_run_results("r1", 10, 2, 1, []), base, ["1102"])
    with _pytest.raises(ResultsFileError, match="missing"):
        options_from_results({"run_id": "x"}, base, None)
