"""Parquet footers from byte ranges: row counts, columns, event-ID statistics, column chunk ranges.

The verifier fetches the last bytes of an object, then (for accounting) only the byte ranges
of the column it needs, and hands pyarrow a sparse file where just those ranges exist.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

MAGIC = b"PAR1"
# pyarrow itself reads the last 64 KiB first; one GET of that size usually holds the footer.
FOOTER_PROBE = 64 * 1024
REQUIRED_COLUMNS = ("event_id", "timestamp", "source_host", "subscription_id", "event_data")
DATA_COLUMN = "event_data"

class CorruptParquet(ValueError):
    """The object is not a readable parquet file; the message says why."""


class SparseFile(io.RawIOBase):
    """A read-only file of `size` bytes where only some ranges were fetched; gaps read as zeros."""

    def __init__(self, size: int, ranges: dict[int, bytes]) -> None:
        super().__init__()
        self._size = size
        self._starts = sorted(ranges)
        self._data = [ranges[s] for s in self._starts]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def size(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        start = self._pos
        end = self._size if n is None or n < 0 else min(self._size, start + n)
        if end <= start:
            return b""
        self._pos = end
        i = bisect.bisect_right(self._starts, start) - 1
        if i >= 0 and start >= self._starts[i] and end <= self._starts[i] + len(self._data[i]):
            off = start - self._starts[i]  # the usual case: inside one fetched range
            return bytes(memoryview(self._data[i])[off : off + end - start])
        out = bytearray(end - start)
        for s, chunk in zip(self._starts, self._data):
            lo, hi = max(s, start), min(s + len(chunk), end)
            if lo < hi:
                out[lo - start : hi - start] = memoryview(chunk)[lo - s : hi - s]
        return bytes(out)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def footer_length(tail: bytes, size: int) -> int:
    """The footer's length from the last 8 bytes; CorruptParquet when they are not parquet's."""
    if size < 12:
        raise CorruptParquet(f"{size} bytes is too small to be a parquet file")
    if tail[-4:] != MAGIC:
        raise CorruptParquet("no parquet magic 'PAR1' at the end (not a parquet file, or truncated)")
    length = int.from_bytes(tail[-8:-4], "little")
    if length <= 0 or length + 12 > size:
        raise CorruptParquet(f"footer length {length} does not fit in a {size}-byte file")
    return length


@dataclass
class Footer:
    """What the footer alone tells: enough to check the file without reading its data."""

    rows: int
    columns: list[str]
    missing_columns: list[str]
    event_ids: tuple[int, int] | None  # min/max of event_id from the statistics, when written
    data_ranges: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) per row group


def parse_footer(size: int, tail_offset: int, tail: bytes) -> Footer:
    """Decode the footer from the object's last bytes."""
    try:
        meta = pq.ParquetFile(SparseFile(size, {tail_offset: tail})).metadata
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptParquet(f"unreadable footer: {short_error(exc)}") from None
    columns = [meta.schema.column(i).path for i in range(meta.num_columns)]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    ids: tuple[int, int] | None = None
    ranges: list[tuple[int, int]] = []
    id_col = columns.index("event_id") if "event_id" in columns else -1
    data_col = columns.index(DATA_COLUMN) if DATA_COLUMN in columns else -1
    lows: list[int] = []
    highs: list[int] = []
    stats_complete = id_col >= 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        if id_col >= 0:
            stats = rg.column(id_col).statistics
            if stats is not None and stats.has_min_max and rg.num_rows:
                lows.append(int(stats.min))
                highs.append(int(stats.max))
            elif rg.num_rows:
                stats_complete = False
        if data_col >= 0:
            chunk = rg.column(data_col)
            offsets = [o for o in (chunk.dictionary_page_offset, chunk.data_page_offset) if o]
            start = min(offsets) if offsets else 0
            if start < 0 or start + chunk.total_compressed_size > size:
                raise CorruptParquet(f"row group {g}: column chunk outside the file")
            ranges.append((start, chunk.total_compressed_size))
    if stats_complete and lows:
        ids = (min(lows), max(highs))
    return Footer(rows=meta.num_rows, columns=columns, missing_columns=missing, event_ids=ids, data_ranges=ranges)


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
