"""Exact per-event accounting: which acknowledged events of a run the stored rows hold, and where.

One byte per event sent (a saturating copy count, by the run's dense numbering, see
numbering.py) keeps memory at one byte per event, whatever the markers' numbers are; rows
under another type's partition get a second such table, made only when one is seen. A run
whose extent is unknown keeps the numbers it finds instead (8 bytes per row found).
`SeqCounter.add` counts in a plain Python loop, under 100 ns per row; the summary works in
slices of the numbering with pyarrow's compute kernels, `bytes.count` and `re.finditer`.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from .markers import FileCount, int64_view
from .numbering import Numbering

MAX_RANGES = 1000
SLICE = 1 << 22  # dense numbers summarised at a time: the summary's memory follows this, not the run

_ZEROS = re.compile(rb"\x00+")
_REPEATS = re.compile(rb"[\x02-\xff]+")
_ANY = re.compile(rb"[\x01-\xff]+")


@dataclass
class Accounting:
    """This run's rows against the events the collector acknowledged."""

    run_id: str
    batch_size: int
    expected: int | None  # acknowledged events; None when the run's extent is unknown
    found: int  # distinct acknowledged events stored in their own type's partition
    rows: int  # rows carrying this run's id
    missing: int  # acknowledged events stored nowhere in the partitions checked
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
    misplaced: int = 0  # rows of this run under another event type's partition
    misplaced_ranges: list[tuple[int, int]] = field(default_factory=list)
    misplaced_range_count: int = 0

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and self.unexpected == 0 and self.misplaced == 0

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        for name in ("missing_ranges", "duplicate_ranges", "misplaced_ranges"):
            data[name] = [list(r) for r in getattr(self, name)]
        data["ok"] = self.ok
        return data


class SeqCounter:
    """Copy counts per dense number of one run (`span` None: the extent is unknown, numbers kept sparse)."""

    def __init__(self, span: int | None) -> None:
        self.counts = bytearray(span) if span is not None else None
        self.sparse: list[array[int]] = []
        self.wrong: bytearray | None = None  # copies under another type's partition, made when first seen
        self.rows = 0
        self.unexpected = 0
        self.overflow = 0  # copies past the 255 a byte can count
        self.wrong_overflow = 0
        self.other_rows = 0
        self.unmarked_rows = 0

    def add(self, part: FileCount) -> None:
        """Count one file's rows; synchronous, so a file is counted whole or not at all."""
        self.rows += part.rows
        self.unexpected += part.never_sent
        self.other_rows += part.other
        self.unmarked_rows += part.unmarked
        if self.counts is None:
            self.sparse.extend(array("q", int64_view(a)) for a in part.placed + part.misplaced if len(a))
            return
        for a in part.placed:
            self.overflow += _bump(self.counts, int64_view(a))
        for a in part.misplaced:
            if self.wrong is None:
                self.wrong = bytearray(len(self.counts))
            self.wrong_overflow += _bump(self.wrong, int64_view(a))


def _bump(counts: bytearray, seqs: memoryview) -> int:
    over = 0
    for s in seqs:
        c = counts[s]
        if c < 255:
            counts[s] = c + 1
        else:
            over += 1
    return over


def expected_span(batch_size: int, sent_batches: int | None, total_events: int | None) -> int | None:
    """Sequence numbers 0..span-1 were sent; in count mode the last batch may be short."""
    if sent_batches is None:
        return None
    span = sent_batches * batch_size
    if total_events is not None:
        span = min(span, total_events)
    return span


class _Ranges:
    """Runs of matching bytes over consecutive slices, joined where a run crosses a slice's edge."""

    def __init__(self, pattern: re.Pattern[bytes], limit: int) -> None:
        self.pattern, self.limit = pattern, limit
        self.kept: list[tuple[int, int]] = []
        self.count = 0
        self._end = -2

    def scan(self, data: bytes, base: int) -> None:
        for m in self.pattern.finditer(data):
            lo, hi = base + m.start(), base + m.end() - 1
            if lo == base and lo == self._end + 1:  # the run goes on from the slice before
                if self.kept and self.kept[-1][1] == self._end:
                    self.kept[-1] = (self.kept[-1][0], hi)
            else:
                self.count += 1
                if len(self.kept) < self.limit:
                    self.kept.append((lo, hi))
            self._end = hi

    def in_markers(self, numbering: Numbering) -> list[tuple[int, int]]:
        return [(numbering.marker_seq(lo), numbering.marker_seq(hi)) for lo, hi in self.kept]


def _u8(data: bytes | bytearray) -> pa.Array:
    """A zero-copy uint8 arrow view of bytes, for element-wise work at C speed."""
    return pa.Array.from_buffers(pa.uint8(), len(data), [None, pa.py_buffer(data)])


def _count(mask: pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _total(values: pa.Array) -> int:
    return int(pc.sum(values.cast(pa.int64())).as_py() or 0)


def _failed_spans(numbering: Numbering, failed_ranges: Iterable[tuple[int, int]]) -> tuple[list[tuple[int, int]], int]:
    """Dense [lo, hi) spans of the failed batches' events that were not acknowledged, and how many
    failed batches held sent events. A failed batch's Acked prefix (`acked_prefix`) is expected."""
    spans = []
    batches = 0
    for first, last in failed_ranges:
        lo, hi = numbering.batch_range(first, last)
        if hi > lo:
            spans.append((lo, hi))
            last_batch = (numbering.span - 1) // numbering.width if numbering.offsets is None else len(numbering.offsets) - 2
            batches += min(last, last_batch) - max(first, 0) + 1
    for batch, acked in sorted(numbering.acked_prefix.items()):
        start, _ = numbering.batch_range(batch, batch)
        spans = _cut(spans, start, start + acked)
    return sorted(spans), batches


def _cut(spans: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """`spans` without [lo, hi)."""
    out = []
    for a, b in spans:
        if b <= lo or a >= hi:
            out.append((a, b))
            continue
        if a < lo:
            out.append((a, lo))
        if b > hi:
            out.append((hi, b))
    return out


def summarize(
    counter: SeqCounter,
    *,
    run_id: str,
    numbering: Numbering | None,
    failed_ranges: Iterable[tuple[int, int]] = (),
    checked: Iterable[str] | None = None,
    max_ranges: int = MAX_RANGES,
) -> Accounting:
    """Found / missing / duplicated / misplaced with their ranges (in the markers' numbering).

    `checked` (event types of the partitions listed) narrows the expectation to those types
    of a mixed run, when the numbering knows each event's type.
    """
    if numbering is None or counter.counts is None:
        return _summarize_sparse(counter, run_id=run_id, width=numbering.width if numbering else 1,
                                 max_ranges=max_ranges)
    n, counts, wrong = numbering.span, counter.counts, counter.wrong
    codes: pa.Array | None = None
    if numbering.types is not None and checked is not None:
        wanted = sorted({numbering.code_of(t) for t in checked} - {0})
        if len(wanted) < len(numbering.type_ids):
            codes = pa.array(wanted, pa.uint8())
    spans, failed_batches = _failed_spans(numbering, failed_ranges)
    missing_r, dup_r, wrong_r = _Ranges(_ZEROS, max_ranges), _Ranges(_REPEATS, max_ranges), _Ranges(_ANY, max_ranges)
    expected = found = missing = duplicated = not_ack = misplaced = 0
    one = pa.scalar(1, pa.uint8())
    for lo in range(0, n, SLICE):
        hi = min(n, lo + SLICE)
        c = _u8(bytes(counts[lo:hi]))
        flags = bytearray(hi - lo)
        for a, b in spans:
            a, b = max(a, lo), min(b, hi)
            if a < b:
                flags[a - lo : b - lo] = b"\x01" * (b - a)
        was_failed = pc.equal(_u8(flags), 1)
        belongs = pc.is_in(_u8(numbering.types[lo:hi]), value_set=codes) if codes is not None and numbering.types \
            else pc.greater_equal(c, 0)  # all true
        judged_ones = pc.and_(belongs, pc.invert(was_failed))
        stored = pc.greater(c, 0)
        if wrong is not None:
            w_bytes = bytes(wrong[lo:hi])
            w = _u8(w_bytes)
            only_elsewhere = pc.and_(pc.invert(stored), pc.greater(w, 0))
            misplaced += _total(w)
            wrong_r.scan(w_bytes, lo)
            value = pc.if_else(only_elsewhere, one, c)
        else:
            value = c
        judged = pc.if_else(judged_ones, value, one)  # 0 missing, 1 fine or not judged, 2+ duplicated
        data = judged.buffers()[1].to_pybytes()[judged.offset : judged.offset + len(judged)]
        zeros = data.count(0)
        expected += _count(judged_ones)
        found += _count(pc.and_(judged_ones, stored))
        missing += zeros
        duplicated += _total(judged) - (hi - lo - zeros)
        not_ack += _count(pc.and_(pc.and_(was_failed, belongs), stored))
        missing_r.scan(data, lo)
        dup_r.scan(data, lo)
    return Accounting(
        run_id=run_id, batch_size=numbering.width, expected=expected, found=found, rows=counter.rows,
        missing=missing, duplicated=duplicated + counter.overflow,
        missing_ranges=missing_r.in_markers(numbering), duplicate_ranges=dup_r.in_markers(numbering),
        missing_range_count=missing_r.count, duplicate_range_count=dup_r.count,
        not_acknowledged_found=not_ack, failed_batches=failed_batches, unexpected=counter.unexpected,
        other_rows=counter.other_rows, unmarked_rows=counter.unmarked_rows,
        misplaced=misplaced + counter.wrong_overflow, misplaced_ranges=wrong_r.in_markers(numbering),
        misplaced_range_count=wrong_r.count,
    )


def _summarize_sparse(counter: SeqCounter, *, run_id: str, width: int, max_ranges: int) -> Accounting:
    """The run's extent unknown: distinct numbers and duplicates from the sorted numbers found."""
    found = duplicated = 0
    dup = _Ranges(_ANY, max_ranges)
    if counter.sparse:
        seqs = pa.concat_arrays([pa.array(a, pa.int64()) for a in counter.sparse])
        seqs = pc.take(seqs, pc.array_sort_indices(seqs))
        again = pc.equal(pc.pairwise_diff(seqs), 0)  # null first, then: same as the one before
        repeated = pc.filter(seqs, pc.fill_null(again, False))
        duplicated = len(repeated)
        found = len(seqs) - duplicated
        for lo, hi in _runs(pc.unique(repeated)):
            dup.count += 1
            if len(dup.kept) < max_ranges:
                dup.kept.append((lo, hi))
    return Accounting(
        run_id=run_id, batch_size=width, expected=None, found=found, rows=counter.rows, missing=0,
        duplicated=duplicated, duplicate_ranges=dup.kept, duplicate_range_count=dup.count,
        unexpected=counter.unexpected, other_rows=counter.other_rows, unmarked_rows=counter.unmarked_rows,
    )


def _runs(sorted_unique: pa.Array) -> Iterable[tuple[int, int]]:
    """Consecutive runs of a sorted, distinct int64 array."""
    start = prev = None
    for s in int64_view(sorted_unique):
        if prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None and prev is not None:
            yield start, prev
        start = prev = s
    if start is not None and prev is not None:
        yield start, prev


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
