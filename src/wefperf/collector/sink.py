"""Partition buffers, the flush policy and the parquet writer.

A buffer per `event_type` partition holds references into request bodies (no per-event copy).
It becomes a file when its flush interval passes, or before adding to it would make the file
larger than the maximum size. Rows are built column-wise in a worker thread, beside the request
loop: orjson escapes the raw XML a piece at a time (each call holds the GIL, so each stays short),
pyarrow's kernels, which release the GIL, extract the parsed fields, join the JSON and write the
parquet, and the file's CRC32 is taken there too (upload.py), so request handling keeps the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .parse import EventSlices
from .upload import PendingFile, Uploader, crc32_of

log = logging.getLogger("wefperf.collector")

SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.uint32(), nullable=False),
        pa.field("timestamp", pa.string(), nullable=False),
        pa.field("source_host", pa.string(), nullable=False),
        pa.field("subscription_id", pa.string(), nullable=True),
        pa.field("event_data", pa.string(), nullable=False),
    ]
)

# Upper bound of a row's parquet bytes beyond its raw XML: JSON escaping, parsed fields, columns.
ROW_OVERHEAD = 512
_RATIO_MARGIN = 1.5
_RATIO_FLOOR = 0.02


def estimate_bytes(xml_bytes: int, events: int) -> int:
    """What `events` rows with `xml_bytes` of raw XML can take in a file, at most (before compression)."""
    return xml_bytes + xml_bytes // 4 + events * ROW_OVERHEAD


def rfc3339_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Chunk:
    """Events of one partition from one request: their `raw_xml` spans into the shared body, cut by
    parse.py where v0.5.0 cuts them (before `</Event>`), and their providers (`<Provider>` text)."""

    body: bytes
    events: EventSlices
    received: str
    source_host: str
    subscription_id: str | None
    xml_bytes: int

    def split(self, per_piece: int) -> list["Chunk"]:
        ev = self.events
        pieces = []
        for i in range(0, len(ev), per_piece):
            part = EventSlices(ev.starts[i : i + per_piece], ev.ends[i : i + per_piece], ev.providers[i : i + per_piece])
            pieces.append(Chunk(self.body, part, self.received, self.source_host, self.subscription_id, part.xml_bytes()))
        return pieces


@dataclass
class _Partition:
    chunks: list[Chunk] = field(default_factory=list)
    events: int = 0
    xml_bytes: int = 0
    opened: float = 0.0

    @property
    def estimate(self) -> int:
        return estimate_bytes(self.xml_bytes, self.events)


# --- building a file (runs in a worker thread) -------------------------------------------------

# Matched against the JSON-escaped XML, so string values come out already escaped.
_FIELDS_STR = {
    "computer": r"<Computer>(?P<v>[^<]*)</Computer>",
    "channel": r"<Channel>(?P<v>[^<]*)</Channel>",
    "time_created": r"<TimeCreated\s[^>]*?SystemTime\s*=\s*\\?[\"'](?P<v>[^\"'\\]*)",
}
_FIELDS_NUM = {
    "event_record_id": r"<EventRecordID>\s*(?P<v>\d{1,19})\s*</EventRecordID>",
    "level": r"<Level>\s*(?P<v>\d{1,5})\s*</Level>",
}


def _json_string(arr: pa.Array) -> pa.Array:
    """JSON string literals (or `null`) for a column of short strings."""
    for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        arr = pc.replace_substring(arr, old, new)
    return _quoted(arr)


def _extract(escaped: pa.Array, pattern: str) -> pa.Array:
    return pc.struct_field(pc.extract_regex(escaped, pattern), "v")


def _quoted(escaped_values: pa.Array) -> pa.Array:
    return pc.fill_null(pc.binary_join_element_wise('"', escaped_values, '"', ""), "null")


# Events escaped per orjson call: each call holds the GIL, so it stays around a millisecond.
ESCAPE_PIECE = 500


def _escaped_pieces(chunks: list[Chunk]) -> pa.ChunkedArray:
    """Each event's `raw_xml` as the inside of a JSON string literal, in chunk order.

    Run in a worker thread beside the request loop, so no single call may hold the GIL for long:
    the events are cut and escaped in pieces of ESCAPE_PIECE (a few hundred microseconds each);
    the joining and splitting of the escaped text happen in pyarrow kernels, which release it.
    """
    rows: list[pa.Array] = []
    for chunk in chunks:
        body, ev = chunk.body, chunk.events
        for i in range(0, len(ev), ESCAPE_PIECE):
            raws = [body[s:e].decode("utf-8", "replace")
                    for s, e in zip(ev.starts[i : i + ESCAPE_PIECE], ev.ends[i : i + ESCAPE_PIECE])]
            # orjson escapes the whole piece at once; `","` can only occur between two escaped strings.
            listed = pa.py_buffer(orjson.dumps(raws))
            offsets = pa.array([2, listed.size - 2], pa.int32()).buffers()[1]
            rows.append(pa.Array.from_buffers(pa.string(), 1, [None, offsets, listed]))
    return pc.list_flatten(pc.split_pattern(pa.chunked_array(rows, pa.string()), '","'))


def _repeated(values: list[tuple[str | None, int]]) -> pa.ChunkedArray:
    """A string column of runs (value, count), built without a Python object per row."""
    return pa.chunked_array([pa.repeat(pa.scalar(v, pa.string()), n) for v, n in values if n], pa.string())


def build_table(chunks: list[Chunk], event_id: int) -> pa.Table:
    """The docs/contract.md rows for one partition's chunks."""
    escaped = _escaped_pieces(chunks)
    rows = len(escaped)
    providers = pa.chunked_array([pa.array(c.events.providers, pa.string()) for c in chunks], pa.string())
    parsed: list[object] = ['","parsed":{"provider":', _json_string(providers), ',"event_id":', str(event_id)]
    for name, pattern in _FIELDS_NUM.items():
        number = pc.cast(pc.cast(_extract(escaped, pattern), pa.uint64()), pa.string())
        parsed += [f',"{name}":', pc.fill_null(number, "null")]
    for name, pattern in _FIELDS_STR.items():
        parsed += [f',"{name}":', _quoted(_extract(escaped, pattern))]
    event_data = pc.binary_join_element_wise('{"raw_xml":"', escaped, *parsed, "}}", "")
    return pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(event_id, pa.uint32()), rows),
            _repeated([(c.received, len(c.events)) for c in chunks]),
            _repeated([(c.source_host, len(c.events)) for c in chunks]),
            _repeated([(c.subscription_id, len(c.events)) for c in chunks]),
            event_data,
        ],
        schema=SCHEMA,
    )


def write_parquet(table: pa.Table) -> bytes:
    out = pa.BufferOutputStream()
    pq.write_table(table, out, compression="snappy")
    data: bytes = out.getvalue().to_pybytes()
    return data


def build_files(chunks: list[Chunk], event_id: int, max_bytes: int) -> list[tuple[bytes, int]]:
    """Parquet files of at most `max_bytes` each (halved until they fit; a single huge event is kept whole)."""
    pending = [build_table(chunks, event_id)]
    files: list[tuple[bytes, int]] = []
    while pending:
        table = pending.pop(0)
        data = write_parquet(table)
        if len(data) > max_bytes and table.num_rows > 1:
            half = table.num_rows // 2
            pending[:0] = [table.slice(0, half), table.slice(half)]
            continue
        files.append((data, table.num_rows))
    return files


def encode_partition(chunks: list[Chunk], event_id: int, max_bytes: int) -> list[tuple[bytes, int, str]]:
    """build_files plus each file's CRC32: all of a flush's CPU work, done in one worker-thread call."""
    return [(data, rows, crc32_of(data)) for data, rows in build_files(chunks, event_id, max_bytes)]


# --- the sink -----------------------------------------------------------------------------------


class KeyNamer:
    """`event_type=<id>/year=YYYY/month=MM/day=DD/events_<id>_<YYYYMMDD>_<HHMMSS>.parquet`, `_<n>` only on collision."""

    def __init__(self) -> None:
        self._second = ""
        self._used: dict[str, int] = {}

    def key(self, event_id: int, when: datetime) -> str:
        second = when.strftime("%Y%m%d_%H%M%S")
        if second != self._second:
            self._second, self._used = second, {}
        base = (
            f"event_type={event_id}/year={when:%Y}/month={when:%m}/day={when:%d}/"
            f"events_{event_id}_{second}"
        )
        n = self._used.get(base, 0)
        self._used[base] = n + 1
        return f"{base}.parquet" if n == 0 else f"{base}_{n}.parquet"


class Sink:
    """Buffers per partition, seals them by time or size, builds files off the loop, hands them to the uploader."""

    def __init__(
        self, uploader: Uploader, *, flush_interval: float, max_file_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uploader = uploader
        self._interval = flush_interval
        self._max_bytes = max_file_bytes
        self._clock = clock
        self._parts: dict[int, _Partition] = {}
        self._namer = KeyNamer()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet")
        self._builds: set[asyncio.Task[None]] = set()
        self._building_events = 0
        self.build_failures = 0
        self._timer: asyncio.Task[None] | None = None
        # File size ÷ uncompressed estimate seen last time, per partition (with a margin): parquet
        # compresses event XML several-fold, so sealing on the raw estimate alone would cut files
        # far below the limit and ahead of the flush interval. build_files halves any file that
        # still comes out too large, so a ratio that is too optimistic cannot break the limit.
        self._ratio: dict[int, float] = {}

    def start(self) -> None:
        self._timer = asyncio.create_task(self._tick())

    @property
    def buffered_events(self) -> int:
        return sum(p.events for p in self._parts.values()) + self._building_events

    def add(self, by_event_id: dict[int, EventSlices], body: bytes, source_host: str,
            subscription_id: str | None = None) -> None:
        received = rfc3339_now()
        for event_id, slices in by_event_id.items():
            chunk = Chunk(body, slices, received, source_host, subscription_id, slices.xml_bytes())
            self._add_chunk(event_id, chunk)

    def _add_chunk(self, event_id: int, chunk: Chunk) -> None:
        n = len(chunk.events)
        if estimate_bytes(chunk.xml_bytes, n) > self._max_bytes and n > 1:
            per_event = estimate_bytes(chunk.xml_bytes, n) / n
            for piece in chunk.split(max(1, int(self._max_bytes // per_event))):
                self._add_chunk(event_id, piece)
            return
        part = self._parts.get(event_id)
        projected = (part.estimate + estimate_bytes(chunk.xml_bytes, n)) if part is not None else 0
        if part is not None and projected * self._ratio.get(event_id, 1.0) > self._max_bytes:
            self._seal(event_id)
            part = None
        if part is None:
            part = self._parts[event_id] = _Partition(opened=self._clock())
        part.chunks.append(chunk)
        part.events += n
        part.xml_bytes += chunk.xml_bytes

    def _seal(self, event_id: int) -> None:
        part = self._parts.pop(event_id, None)
        if part is None or not part.chunks:
            return
        self._building_events += part.events
        task = asyncio.create_task(self._build(event_id, part))
        self._builds.add(task)
        task.add_done_callback(self._builds.discard)

    async def _build(self, event_id: int, part: _Partition) -> None:
        when = datetime.now(timezone.utc)
        loop = asyncio.get_running_loop()
        try:
            files = await loop.run_in_executor(self._pool, encode_partition, part.chunks, event_id, self._max_bytes)
        except Exception as exc:  # a bug or undecodable input must still be counted, not lost
            self.build_failures += 1
            self._uploader.record_drop(f"event_type={event_id}", part.events, f"parquet build failed: {exc!r}")
            return
        finally:
            self._building_events -= part.events
        if part.estimate > 0:
            seen = sum(len(data) for data, _, _ in files) / part.estimate
            self._ratio[event_id] = min(1.0, max(seen * _RATIO_MARGIN, _RATIO_FLOOR))
        for data, rows, crc32 in files:
            self._uploader.submit(PendingFile(self._namer.key(event_id, when), data, rows, crc32))

    async def _tick(self) -> None:
        step = max(0.05, min(0.5, self._interval / 5))
        while True:
            await asyncio.sleep(step)
            now = self._clock()
            for event_id in [e for e, p in self._parts.items() if now - p.opened >= self._interval]:
                self._seal(event_id)

    async def close(self) -> None:
        """Seal every buffer and wait until each file is built and queued for upload."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        for event_id in list(self._parts):
            self._seal(event_id)
        while self._builds:
            await asyncio.gather(*list(self._builds), return_exceptions=True)
        self._pool.shutdown(wait=True)
