"""Reading one stored object: its size against the limit, its footer, and (for accounting) its rows.

Only ranged GETs: the footer from the object's tail, then the `event_data` column chunks
when a run's events are counted. Never the whole file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .footer import FOOTER_PROBE, CorruptParquet, Footer, footer_length, parse_footer
from .listing import StoredObject
from .markers import FileCount, count_file
from .model import MIB, VerifyOptions
from .numbering import Numbering
from .s3client import Deadline, S3Failure, error_code, failure, gather_all

DATA_CONCURRENCY = 3  # files whose event_data is held in memory and decoded at once


@dataclass
class Outcome:
    """What one object turned out to be."""

    size: int
    etag: str
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    count: FileCount | None = None  # this run's rows, for the caller to add to its counter


class ObjectReader:
    """Inspects objects; when counting, places every row's marker of the run in its numbering."""

    def __init__(self, opts: VerifyOptions, client: Any, io: asyncio.Semaphore, deadline: Deadline,
                 numbering: Numbering | None, width: int) -> None:
        self.opts, self.client, self.io, self.deadline = opts, client, io, deadline
        self.numbering, self.width = numbering, width
        self.data = asyncio.Semaphore(DATA_CONCURRENCY)
        self.bytes_fetched = 0
        # Objects with the same ETag and size hold the same bytes (a re-uploaded file): one footer read.
        self._footers: dict[tuple[str, int], asyncio.Future[Footer]] = {}

    async def inspect(self, obj: StoredObject, counting: bool) -> Outcome:
        out = Outcome(size=obj.size, etag=obj.etag)
        limit = self.opts.max_file_size_bytes
        if obj.size > limit:
            out.problems.append(f"{obj.key}: {obj.size / MIB:.2f} MB is over the {limit / MIB:g} MB maximum file size")
        try:
            if not counting:
                self._check_footer(obj, out, await self._shared_footer(obj))
            else:
                await self._count(obj, out)
        except CorruptParquet as exc:
            out.problems.append(f"{obj.key}: corrupt parquet: {exc}")
        except S3Failure:
            raise
        except Exception as exc:  # a file we cannot decode is that file's problem
            out.problems.append(f"{obj.key}: could not be read ({type(exc).__name__}: {str(exc)[:200]})")
        return out

    async def _get(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive) of one object."""
        async with self.io:
            limit = self.deadline.bound(end - start + 1)
            try:
                async with asyncio.timeout(limit) as timer:
                    resp = await self.client.get_object(Bucket=self.opts.bucket, Key=key, Range=f"bytes={start}-{end}")
                    async with resp["Body"] as body:
                        data: bytes = await body.read()
            except TimeoutError:
                if timer.expired():
                    raise self.deadline.timed_out(limit, f"reading {key}") from None
                raise failure(TimeoutError("timed out"), self.opts, f"reading {key}") from None
            except Exception as exc:
                if error_code(exc) in ("NoSuchKey", "404"):
                    raise CorruptParquet("vanished while being read") from None
                raise failure(exc, self.opts, f"reading {key}") from None
        self.bytes_fetched += len(data)
        return data

    async def _fetch_footer(self, obj: StoredObject) -> tuple[int, bytes, Footer]:
        """The object's last bytes (from `tail_at`) and its decoded footer: one GET, two if it is large."""
        size = obj.size
        if size < 12:
            footer_length(b"", size)  # raises with the reason
        tail_at = max(0, size - FOOTER_PROBE)
        tail = await self._get(obj.key, tail_at, size - 1)
        flen = footer_length(tail, size)
        if flen + 8 > len(tail):
            tail_at = size - flen - 8
            tail = await self._get(obj.key, tail_at, size - 1)
        return tail_at, tail, await asyncio.to_thread(parse_footer, size, tail_at, tail)

    async def _footer_only(self, obj: StoredObject) -> Footer:
        return (await self._fetch_footer(obj))[2]

    async def _shared_footer(self, obj: StoredObject) -> Footer:
        same = (obj.etag, obj.size)
        job = self._footers.get(same) if obj.etag else None
        if job is None:
            job = asyncio.ensure_future(self._footer_only(obj))
            if obj.etag:
                self._footers[same] = job
        try:
            return await job
        except BaseException:
            if self._footers.get(same) is job:
                del self._footers[same]  # a failed or cancelled read is tried again at the next poll
            raise

    async def _count(self, obj: StoredObject, out: Outcome) -> None:
        tail_at, tail, footer = await self._fetch_footer(obj)
        size = obj.size
        self._check_footer(obj, out, footer)
        if footer.missing_columns or not footer.rows:
            return
        async with self.data:
            ranges = {tail_at: tail}
            needed = [(o, n) for o, n in footer.data_ranges if n > 0 and (o < tail_at or o + n > size)]
            chunks = await gather_all([self._get(obj.key, o, o + n - 1) for o, n in needed])
            ranges.update({o: c for (o, _), c in zip(needed, chunks)})
            # In a worker thread: decode and place the rows; the caller counts them all at once.
            out.count = await asyncio.to_thread(count_file, size, ranges, self.opts.run_id or "", self.numbering,
                                                self.width, obj.event_type)

    @staticmethod
    def _check_footer(obj: StoredObject, out: Outcome, footer: Footer) -> None:
        out.rows = footer.rows
        if footer.missing_columns:
            out.problems.append(f"{obj.key}: missing column(s) {', '.join(footer.missing_columns)} "
                                f"(has {', '.join(footer.columns)})")
        if footer.event_ids is not None and obj.event_type.isdigit():
            lo, hi = footer.event_ids
            if lo != hi or lo != int(obj.event_type):
                held = f"{lo}" if lo == hi else f"{lo}..{hi}"
                out.problems.append(f"{obj.key}: holds rows of event {held} under event_type="
                                    f"{obj.event_type} (wrong partition)")
