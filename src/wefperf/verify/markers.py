"""This run's markers in a stored file's `event_data`, placed in the run's numbering.

The marker is found by its element, `<Data Name="WefperfMarker">RUN:BATCH:INDEX<`: a `<` in
XML text is always escaped, so an event's data cannot forge it (a bare `Name="WefperfMarker">`
can appear inside any value). Decoding and matching run in C (pyarrow's RE2 and compute
kernels), a slice of rows at a time.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..payload.marker import BATCH_DIGITS, MARKER_FIELD
from .footer import DATA_COLUMN, CorruptParquet, SparseFile, short_error
from .numbering import Numbering

# RE2 (pyarrow.compute) form of wefperf.payload.marker.MARKER_RE: the same text, named groups.
# `\\?"`: the XML sits JSON-escaped inside event_data.
MARKER_PATTERN = (
    r'<Data Name=\\?"' + MARKER_FIELD + r'\\?">(?P<run>[0-9a-z]+):(?P<batch>\d{' + str(BATCH_DIGITS) + r"})"
    r":(?P<idx>\d{1,18})<"
)
DECODE_ROWS = 2_048  # rows decoded at a time: memory follows this, not the file size
READ_BUFFER = 1 << 20  # column chunk bytes pyarrow reads at a time (streamed, not the whole chunk)


@dataclass
class MarkerCounts:
    """This run's markers in some rows, and the rows that are not this run's."""

    batch: pa.Array  # int64, one per row of this run
    index: pa.Array  # int64
    other: int  # rows of another run
    unmarked: int  # rows without a marker


@dataclass
class FileCount:
    """A file's rows of this run, placed: the caller adds them to its counter all at once."""

    placed: list[pa.Array] = field(default_factory=list)  # int64 numbers, in the partition of their type
    misplaced: list[pa.Array] = field(default_factory=list)  # int64 numbers, under another type's partition
    never_sent: int = 0  # rows of this run whose marker names an event the run did not send
    other: int = 0
    unmarked: int = 0

    @property
    def rows(self) -> int:
        return sum(map(len, self.placed)) + sum(map(len, self.misplaced)) + self.never_sent


def iter_markers(size: int, ranges: dict[int, bytes], run_id: str) -> Iterator[MarkerCounts]:
    """Decode `event_data` from the fetched ranges, a slice of rows at a time, and pick out this run's markers."""
    try:
        reader = pq.ParquetFile(SparseFile(size, ranges), pre_buffer=False, buffer_size=READ_BUFFER)
        batches = reader.iter_batches(batch_size=DECODE_ROWS, columns=[DATA_COLUMN], use_threads=False)
        for batch in batches:
            yield _markers(batch.column(0), run_id)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptParquet(f"unreadable {DATA_COLUMN} column: {short_error(exc)}") from None


def count_file(size: int, ranges: dict[int, bytes], run_id: str, numbering: Numbering | None, width: int,
               partition: str) -> FileCount:
    """Every row of one file, placed; `numbering` None: the run's extent is unknown (markers' own numbers)."""
    out = FileCount()
    code = numbering.code_of(partition) if numbering is not None and numbering.types is not None else None
    types = pa.py_buffer(numbering.types) if code is not None and numbering is not None else None
    for part in iter_markers(size, ranges, run_id):
        out.other += part.other
        out.unmarked += part.unmarked
        if numbering is None:
            ok = pc.less(part.index, width)
            seqs = pc.filter(pc.add(pc.multiply(part.batch, width), part.index), ok)
        else:
            seqs = pc.drop_null(numbering.dense(part.batch, part.index))
        out.never_sent += len(part.batch) - len(seqs)
        if not len(seqs):
            continue
        if types is None or numbering is None:
            out.placed.append(seqs)
            continue
        codes = pc.take(pa.Array.from_buffers(pa.uint8(), numbering.span, [None, types]), seqs)
        here = pc.equal(codes, code)
        out.placed.append(pc.filter(seqs, here))
        elsewhere = pc.filter(seqs, pc.invert(here))
        if len(elsewhere):
            out.misplaced.append(elsewhere)
    return out


def int64_view(arr: pa.Array) -> memoryview:
    """A zero-copy view of a null-free int64 arrow array, to loop over without boxing."""
    if not len(arr):
        return memoryview(array("q"))
    buf = arr.buffers()[1]
    return memoryview(buf).cast("q")[arr.offset : arr.offset + len(arr)]


def _as_text(column: pa.Array) -> pa.Array:
    """`event_data` as utf8: a writer may dictionary-encode it, or use large or view strings."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if pa.types.is_string_view(column.type):
        return column.cast(pa.string())
    raise CorruptParquet(f"{DATA_COLUMN} is {column.type}, not utf8")


def _markers(column: pa.Array, run_id: str) -> MarkerCounts:
    column = _as_text(column)
    found = pc.extract_regex(column, MARKER_PATTERN)
    marked = pc.is_valid(found)
    n_marked = pc.sum(marked).as_py() or 0
    mine = pc.fill_null(pc.and_(marked, pc.equal(pc.struct_field(found, "run"), run_id)), False)
    n_mine = pc.sum(mine).as_py() or 0
    ours = pc.filter(found, mine)
    batch = pc.cast(pc.struct_field(ours, "batch"), pa.int64())
    index = pc.cast(pc.struct_field(ours, "idx"), pa.int64())
    return MarkerCounts(batch=batch, index=index, other=n_marked - n_mine, unmarked=len(column) - n_marked)
