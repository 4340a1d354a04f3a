"""Exact per-event accounting: which acknowledged events of a run the stored rows hold.

One byte per sequence number (a saturating copy count) keeps memory at one byte per
expected event. `SeqCounter.add` counts in a plain Python loop, about 45 ns per event
(26 ms for a 600,000-event run on the 2-core machine of docs/benchmarks.md); the rest
(markers pulled out of `event_data`, missing and duplicated ranges, the type filter)
runs in C: pyarrow's RE2 and compute kernels, `bytes.count` and `re.finditer`.
"""

from __future__ import annotations

import re
import threading
from array import array
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..payload.marker import BATCH_DIGITS, MARKER_FIELD
from .footer import DATA_COLUMN, CorruptParquet, SparseFile, short_error

# A run without known expectations grows its table up to this many sequence numbers.
MAX_DYNAMIC_SPAN = 200_000_000
MAX_RANGES = 1000

# RE2 (pyarrow.compute) form of wefperf.payload.marker.MARKER_RE: same text, named groups.
MARKER_PATTERN = (
    r'Name=\\?"' + MARKER_FIELD + r'\\?">(?P<run>[0-9a-z]+):(?P<batch>\d{' + str(BATCH_DIGITS) + r"})"
    r":(?P<idx>\d+)<"
)


_ZEROS = re.compile(rb"\x00+")
_REPEATS = re.compile(rb"[\x02-\xff]+")


@dataclass
class Accounting:
    """This run's rows against the events the collector acknowledged."""

    run_id: str
    batch_size: int
    expected: int | None  # acknowledged events; None when the run's extent is unknown
    found: int  # distinct acknowledged events stored
    rows: int  # rows carrying this run's id
    missing: int
    duplicated: int  # extra copies beyond the first
    missing_ranges: list[tuple[int, int]] = field(default_factory=list)  # inclusive seq ranges
    duplicate_ranges: list[tuple[int, int]] = field(default_factory=list)
    missing_range_count: int = 0
    duplicate_range_count: int = 0
    not_acknowledged_found: int = 0  # events of failed batches that were stored anyway
    failed_batches: int = 0
    unexpected: int = 0  # rows of this run whose sequence number was never sent
    other_rows: int = 0  # rows carrying another run's id
    unmarked_rows: int = 0  # rows without any wefperf marker

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and self.unexpected == 0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["missing_ranges"] = [list(r) for r in self.missing_ranges]
        data["duplicate_ranges"] = [list(r) for r in self.duplicate_ranges]
        data["ok"] = self.ok
        return data


class SeqCounter:
    """Copy counts per sequence number of one run; `add` may be called from worker threads."""

    def __init__(self, span: int | None) -> None:
        self.fixed = span is not None
        self.counts = bytearray(span or 0)
        self.rows = 0
        self.unexpected = 0
        self.overflow = 0  # copies past the 255 a byte can count
        self.other_rows = 0
        self.unmarked_rows = 0
        self._lock = threading.Lock()

    def add(self, seqs: Sequence[int], max_seq: int = -1, *, bad: int = 0, other: int = 0, unmarked: int = 0) -> None:
        """Count this run's sequence numbers; `bad` rows had an impossible index."""
        with self._lock:
            self.rows += len(seqs) + bad
            self.unexpected += bad
            self.other_rows += other
            self.unmarked_rows += unmarked
            counts = self.counts
            if not self.fixed and max_seq >= len(counts):
                counts.extend(bytes(min(max_seq + 1, MAX_DYNAMIC_SPAN) - len(counts)))
            n = len(counts)
            for s in seqs:
                if s < n:
                    c = counts[s]
                    if c < 255:
                        counts[s] = c + 1
                    else:
                        self.overflow += 1
                else:
                    self.unexpected += 1


def expected_span(batch_size: int, sent_batches: int | None, total_events: int | None) -> int | None:
    """Sequence numbers 0..span-1 were sent; in count mode the last batch may be short."""
    if sent_batches is None:
        return None
    span = sent_batches * batch_size
    if total_events is not None:
        span = min(span, total_events)
    return span


def _ranges(pattern: re.Pattern[bytes], data: bytes | bytearray, limit: int) -> tuple[list[tuple[int, int]], int]:
    ranges: list[tuple[int, int]] = []
    count = 0
    for m in pattern.finditer(data):
        if count < limit:
            ranges.append((m.start(), m.end() - 1))
        count += 1
    return ranges, count


def _u8(data: bytes | bytearray) -> pa.Array:
    """A zero-copy uint8 arrow view of bytes, for element-wise work at C speed."""
    return pa.Array.from_buffers(pa.uint8(), len(data), [None, pa.py_buffer(data)])


def _count(mask: pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def summarize(
    counter: SeqCounter,
    *,
    run_id: str,
    batch_size: int,
    sent_batches: int | None,
    total_events: int | None,
    failed_ranges: Iterable[tuple[int, int]] = (),
    here: bytes | None = None,
    max_ranges: int = MAX_RANGES,
) -> Accounting:
    """Turn the copy counts into found / missing / duplicated with their sequence ranges.

    `here` (one byte per sequence number, 1 = this event belongs in the partitions checked)
    narrows the expectation to some event types of a mixed run; without it every sequence
    number of the run is expected. A 2 there is expected even inside a failed batch: simulated
    hosts' WS-Man deliveries whose first envelopes were Acked before a later one failed.
    """
    span = expected_span(batch_size, sent_batches, total_events)
    view = bytes(counter.counts if span is None else counter.counts[:span])
    n = len(view)
    known = span is not None
    beyond = sum(counter.counts[span:]) if span is not None else 0  # counted, but never sent
    failed_flags = bytearray(n)
    failed = 0
    last_batch = (n - 1) // batch_size  # the last batch with a sequence number in view
    for first, last in failed_ranges:
        first, last = max(first, 0), min(last, last_batch)
        if first > last:
            continue
        failed += last - first + 1
        lo, hi = first * batch_size, min((last + 1) * batch_size, n)
        failed_flags[lo:hi] = b"\x01" * (hi - lo)
    counts = _u8(view)
    stored = pc.greater(counts, 0)
    was_failed = pc.equal(_u8(failed_flags), 1)
    if here is not None:
        marks = _u8(here[:n].ljust(n, b"\x00"))
        belongs = pc.greater(marks, 0)
        # 2: acknowledged in a delivery that failed later (a WS-Man envelope after it): expected.
        was_failed = pc.and_(was_failed, pc.not_equal(marks, 2))
    else:
        belongs = pc.greater_equal(counts, 0)  # all true
    # Neither missing nor duplicated: not acknowledged, or an event of a type checked elsewhere.
    neutral = pc.or_(was_failed, pc.invert(belongs))
    not_ack = _count(pc.and_(pc.and_(was_failed, belongs), stored))
    stored_elsewhere = pc.and_(pc.and_(pc.invert(belongs), pc.invert(was_failed)), stored)
    misplaced = int(pc.sum(pc.if_else(stored_elsewhere, counts, pa.scalar(0, pa.uint8())).cast(pa.int64())).as_py() or 0)
    judged = pc.if_else(neutral, pa.scalar(1, pa.uint8()), counts)
    judged_bytes = judged.buffers()[1].to_pybytes()[judged.offset : judged.offset + n]
    neutral_count = _count(neutral)
    zeros = judged_bytes.count(0)
    distinct = n - zeros - neutral_count
    ack_rows = int(pc.sum(judged.cast(pa.int64())).as_py() or 0) - neutral_count + counter.overflow
    missing_ranges, missing_count = _ranges(_ZEROS, judged_bytes, max_ranges) if known else ([], 0)
    dup_ranges, dup_count = _ranges(_REPEATS, judged_bytes, max_ranges)
    return Accounting(
        run_id=run_id,
        batch_size=batch_size,
        expected=(n - neutral_count) if known else None,
        found=distinct,
        rows=counter.rows,
        missing=zeros if known else 0,
        duplicated=ack_rows - distinct,
        missing_ranges=missing_ranges,
        duplicate_ranges=dup_ranges,
        missing_range_count=missing_count,
        duplicate_range_count=dup_count,
        not_acknowledged_found=not_ack,
        failed_batches=failed,
        unexpected=counter.unexpected + beyond + misplaced,
        other_rows=counter.other_rows,
        unmarked_rows=counter.unmarked_rows,
    )


def format_ranges(ranges: Sequence[tuple[int, int]], total: int, batch_size: int, limit: int = 8) -> str:
    """`seq 1000-1999 (batch 1), seq 5003 (batch 5), ... (+3 more ranges)`."""
    parts = []
    for lo, hi in ranges[:limit]:
        seq = f"seq {lo}" if lo == hi else f"seq {lo}-{hi}"
        b_lo, b_hi = lo // batch_size, hi // batch_size
        batch = f"batch {b_lo}" if b_lo == b_hi else f"batches {b_lo}-{b_hi}"
        parts.append(f"{seq} ({batch})")
    if total > len(parts):
        parts.append(f"... (+{total - len(parts)} more ranges)")
    return ", ".join(parts)


# --- this run's markers in the stored rows -------------------------------------------------


@dataclass
class MarkerCounts:
    """This run's sequence numbers in one file, and the rows that are not this run's."""

    seqs: memoryview  # int64 sequence numbers, zero-copy over an arrow buffer
    max_seq: int
    bad_index: int  # this run's rows whose index does not fit the batch size
    other: int  # rows of another run
    unmarked: int  # rows without a marker


DECODE_ROWS = 2_048  # rows decoded at a time: memory follows this, not the file size
READ_BUFFER = 1 << 20  # column chunk bytes pyarrow reads at a time (streamed, not the whole chunk)


def iter_markers(size: int, ranges: dict[int, bytes], run_id: str, batch_size: int) -> Iterator[MarkerCounts]:
    """Decode `event_data` from the fetched ranges, a slice of rows at a time, and pick out this run's
    sequence numbers with a vectorised regex (RE2 in pyarrow), not a Python loop over rows."""
    try:
        reader = pq.ParquetFile(SparseFile(size, ranges), pre_buffer=False, buffer_size=READ_BUFFER)
        batches = reader.iter_batches(batch_size=DECODE_ROWS, columns=[DATA_COLUMN], use_threads=False)
        for batch in batches:
            yield _markers(batch.column(0), run_id, batch_size)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptParquet(f"unreadable {DATA_COLUMN} column: {short_error(exc)}") from None


def count_markers(size: int, ranges: dict[int, bytes], run_id: str, batch_size: int) -> MarkerCounts:
    """All of a file's markers at once (small files, tests)."""
    parts = list(iter_markers(size, ranges, run_id, batch_size))
    seqs = array("q")
    for p in parts:
        seqs.extend(p.seqs)
    return MarkerCounts(
        seqs=memoryview(seqs),
        max_seq=max((p.max_seq for p in parts), default=-1),
        bad_index=sum(p.bad_index for p in parts),
        other=sum(p.other for p in parts),
        unmarked=sum(p.unmarked for p in parts),
    )


def _markers(column: pa.Array, run_id: str, batch_size: int) -> MarkerCounts:
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        raise CorruptParquet(f"{DATA_COLUMN} is {column.type}, not utf8")
    found = pc.extract_regex(column, MARKER_PATTERN)
    marked = pc.is_valid(found)
    n_marked = pc.sum(marked).as_py() or 0
    mine = pc.fill_null(pc.and_(marked, pc.equal(pc.struct_field(found, "run"), run_id)), False)
    n_mine = pc.sum(mine).as_py() or 0
    ours = pc.filter(found, mine)
    batch = pc.cast(pc.struct_field(ours, "batch"), pa.int64())
    index = pc.cast(pc.struct_field(ours, "idx"), pa.int64())
    arr = pc.filter(pc.add(pc.multiply(batch, batch_size), index), pc.less(index, batch_size))
    if len(arr):
        buf = arr.buffers()[1]
        seqs = memoryview(buf).cast("q")[arr.offset : arr.offset + len(arr)]
        max_seq = int(pc.max(arr).as_py())
    else:
        seqs, max_seq = memoryview(array("q")), -1
    return MarkerCounts(seqs=seqs, max_seq=max_seq, bad_index=n_mine - len(arr), other=n_marked - n_mine,
                        unmarked=len(column) - n_marked)
