"""The verifier's pure parts: accounting, dates, ranged parquet decoding and the console block."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from verify_data import hand_event, parquet_bytes, run_events
from wefperf.payload import find_markers
from wefperf.report.s3 import s3_block
from wefperf.verify import VerifyResult, dates_covered
from wefperf.verify.accounting import SeqCounter, format_ranges, summarize
from wefperf.verify.footer import FOOTER_PROBE, CorruptParquet, footer_length, parse_footer
from wefperf.verify.markers import FileCount, count_file
from wefperf.verify.numbering import Numbering


def _count(numbering: Numbering | None, seqs: list[int]) -> SeqCounter:
    c = SeqCounter(numbering.span if numbering is not None else None)
    span = numbering.span if numbering is not None else 1 << 62
    c.add(FileCount(placed=[pa.array([s for s in seqs if s < span], pa.int64())],
                    never_sent=sum(1 for s in seqs if s >= span)))
    return c


def test_accounting_counts_missing_duplicates_and_failed_batches() -> None:
    # 20 batches of 10, count mode with 195 events (last batch short); batch 7 was not acknowledged.
    seqs = [s for s in range(195) if not 30 <= s <= 39 and s not in (55, 56, 57) and not 75 <= s <= 79]
    seqs += list(range(120, 130)) + [150, 150] + [195]  # duplicates, and one beyond what was sent
    numbering = Numbering.contiguous(10, 195)
    acct = summarize(_count(numbering, seqs), run_id="r1", numbering=numbering, failed_ranges=[(7, 7)])
    assert acct.expected == 185
    assert acct.missing == 13
    assert acct.missing_ranges == [(30, 39), (55, 57)]
    assert acct.duplicated == 12
    assert acct.duplicate_ranges == [(120, 129), (150, 150)]
    assert acct.not_acknowledged_found == 5
    assert acct.found == 185 - 13
    assert acct.unexpected == 1
    assert not acct.ok


def test_accounting_clean_run_is_ok_and_unknown_extent_reports_no_missing() -> None:
    numbering = Numbering.contiguous(10, 100)
    acct = summarize(_count(numbering, list(range(100))), run_id="r", numbering=numbering)
    assert (acct.expected, acct.found, acct.missing, acct.duplicated, acct.ok) == (100, 100, 0, 0, True)
    grown = summarize(_count(None, [0, 1, 5, 5]), run_id="r", numbering=None)
    assert grown.expected is None and grown.missing == 0 and grown.found == 3 and grown.duplicated == 1


def test_format_ranges_names_batches_and_truncates() -> None:
    text = format_ranges([(1000, 1999), (5003, 5003)], 12, 1000, limit=2)
    assert text == "seq 1000-1999 (batch 1), seq 5003 (batch 5), ... (+10 more ranges)"


def test_dates_covered_crosses_midnight_in_utc() -> None:
    start = dt.datetime(2026, 2, 8, 23, 59, 50, tzinfo=dt.timezone.utc)
    assert dates_covered(start, start + dt.timedelta(seconds=40)) == [dt.date(2026, 2, 8), dt.date(2026, 2, 9)]
    # 01:00 at UTC+2 on the 9th is still the 8th in UTC.
    local = dt.datetime(2026, 2, 9, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert dates_covered(local, local) == [dt.date(2026, 2, 8)]


def _ranged(data: bytes) -> tuple[int, int, bytes]:
    size = len(data)
    tail = data[-FOOTER_PROBE:]
    return size, size - len(tail), tail


def test_footer_and_column_ranges_decode_from_sparse_bytes() -> None:
    events = run_events("abc123", 50, 6)
    data = parquet_bytes(events, row_group_size=64, compression="none", pad=1500)
    size, tail_at, tail = _ranged(data)
    assert footer_length(tail, size) > 0
    footer = parse_footer(size, tail_at, tail)
    assert footer.rows == 300 and not footer.missing_columns and footer.event_ids == (4624, 4624)
    assert len(footer.data_ranges) == 5  # one event_data chunk per row group
    ranges = {o: data[o : o + n] for o, n in footer.data_ranges}
    ranges[tail_at] = tail
    fetched = sum(map(len, ranges.values()))
    assert fetched < size / 2  # the padded column was never needed
    counts = count_file(size, ranges, "abc123", Numbering.contiguous(50, 300), 50, "4624")
    assert sorted(s for a in counts.placed for s in a.to_pylist()) == list(range(300))
    assert (counts.never_sent, counts.other, counts.unmarked, counts.misplaced) == (0, 0, 0, [])
    # The vectorised pattern agrees with the marker module on the stored JSON text.
    assert [m.seq(50) for m in find_markers(str(__import__("json").dumps({"raw_xml": events[7]})))] == [7]


def test_markers_of_other_runs_bad_indexes_and_unmarked_rows() -> None:
    rows = [hand_event("r1", 0, 1), hand_event("r1", 0, 12), hand_event("zz9", 0, 1), "<Event/>"]
    data = parquet_bytes(rows)
    size, tail_at, tail = _ranged(data)
    counts = count_file(size, {tail_at: tail}, "r1", None, 10, "4624")
    assert [s for a in counts.placed for s in a.to_pylist()] == [1]
    assert (counts.never_sent, counts.other, counts.unmarked) == (1, 1, 1)


@pytest.mark.parametrize(("blob", "why"), [(b"not parquet at all", "no parquet magic"),
                                           (b"PAR1", "too small to be a parquet file")])
def test_bytes_that_are_not_parquet_are_refused_by_their_last_bytes(blob: bytes, why: str) -> None:
    size, _, tail = _ranged(blob)
    with pytest.raises(CorruptParquet, match=why):
        footer_length(tail, size)


def test_a_footer_of_garbage_is_refused_when_decoded() -> None:
    blob = b"PAR1" + b"\x00" * 40 + b"\x10\x00\x00\x00PAR1"  # magic and a plausible length, no footer
    size, tail_at, tail = _ranged(blob)
    assert footer_length(tail, size) == 16
    with pytest.raises(CorruptParquet, match="unreadable footer"):
        parse_footer(size, tail_at, tail)


def test_missing_column_is_reported_by_the_footer() -> None:
    data = parquet_bytes([hand_event("r1", 0, 0)], drop="source_host")
    size, tail_at, tail = _ranged(data)
    assert parse_footer(size, tail_at, tail).missing_columns == ["source_host"]


def test_s3_block_matches_the_seed_layout() -> None:
    ok = VerifyResult(passed=True, files=12, total_bytes=int(20.93 * 1024 * 1024), rows=570_000,
                      sample_keys=[f"event_type=4624/year=2026/month=02/day=08/{i}.parquet" for i in range(5)],
                      problems=[])
    lines = s3_block(ok)
    assert lines[:4] == ["=" * 70, "S3 VERIFICATION", "=" * 70, "✓ S3 files verified successfully"]
    assert "  Files found: 12" in lines and "  Total size: 20.93 MB" in lines
    assert any(line.startswith("  Sample files: event_type=4624/") and line.endswith(", ...") for line in lines)
    assert lines[-1] == "=" * 70
    bad = VerifyResult(passed=False, files=0, total_bytes=0, rows=0, sample_keys=[], problems=[],
                       reasons=["No files found"])
    assert "✗ S3 verification failed: No files found" in s3_block(bad)


def test_numbering_is_dense_over_short_batches_and_unsent_ones() -> None:
    from wefperf.payload import build_pool

    pool = build_pool(run_id="n1", batch_size=10, total_events=45, variants=3, seed=4)  # batch 4 holds 5
    every = Numbering.of_pool(pool, 5)
    assert every.span == 45 and every.offsets is None and every.types is not None
    ids = [e for b in range(5) for e in pool.variant(b).event_ids]
    assert [every.type_ids[c - 1] for c in every.types] == ids
    # A scale-out run where batch 1 was never sent: numbers stay dense, one byte per event.
    holes = Numbering.of_pool(pool, [True, False, True, True, True])
    assert holes.span == 35
    dense = holes.dense(pa.array([0, 1, 2, 4, 4, 9_999_999_999], pa.int64()), pa.array([3, 0, 0, 4, 5, 0], pa.int64()))
    assert dense.to_pylist() == [3, None, 10, 34, None, None]
    assert [holes.marker_seq(s) for s in (3, 10, 34)] == [3, 20, 44]
    assert holes.batch_range(1, 2) == (10, 20) and holes.batch_range(4, 9) == (30, 35)


@pytest.mark.parametrize("seed", range(20))
def test_summaries_in_slices_equal_one_summary(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges that cross a slice's edge are joined: the slice size changes nothing."""
    import random

    from wefperf.verify import accounting

    rng = random.Random(seed)
    numbering = Numbering.contiguous(10, rng.randint(1, 300))
    seqs = [s for s in range(numbering.span) for _ in range(rng.choice((0, 1, 1, 1, 2, 3)))]
    wrong = [s for s in range(numbering.span) if rng.random() < 0.1]
    failed = [(b, b) for b in range(30) if rng.random() < 0.1]

    def summary() -> accounting.Accounting:
        counter = SeqCounter(numbering.span)
        counter.add(FileCount(placed=[pa.array(seqs, pa.int64())], misplaced=[pa.array(wrong, pa.int64())]))
        return summarize(counter, run_id="r", numbering=numbering, failed_ranges=failed, max_ranges=5)

    whole = summary()
    monkeypatch.setattr(accounting, "SLICE", rng.randint(1, 17))
    assert summary() == whole
    stored = set(seqs) | set(wrong)
    failed_seqs = {s for b, _ in failed for s in range(b * 10, b * 10 + 10)}
    assert whole.missing == sum(1 for s in range(numbering.span) if s not in stored and s not in failed_seqs)
    assert whole.misplaced == len(wrong)


def test_the_partitions_listed_are_the_types_the_sent_events_carried() -> None:
    from wefperf.payload.hosts import build_host_payload

    payload = build_host_payload(run_id="t1", hosts=2, max_items=10, seed=3)
    every = sorted({e for v in payload.variants for e in v.event_ids})
    one = Numbering.of_hosts(payload, [1, 0])  # a single one-event delivery
    assert one.type_ids == every and len(every) > 1
    assert one.sent_types() == [payload.variants[0].event_ids[0]]
