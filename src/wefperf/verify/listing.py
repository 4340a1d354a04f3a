"""Which objects a collector stored, and which keys break the partition layout.

Walks `event_type=<id>/year=/month=/day=` one level at a time (paginated, with a
delimiter), so objects that sit beside the layout are seen and reported too. Zero-byte keys
ending in `/` are the folder markers some S3 tools create, not objects: they are skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .model import VerifyOptions
from .s3client import Deadline, S3Failure, failure, gather_all

_LEVELS = (("year", r"\d{4}"), ("month", r"\d{2}"), ("day", r"\d{2}"))
_SHAPES = {"year": "YYYY", "month": "MM", "day": "DD"}
_LAYOUT = "event_type=<id>/year=YYYY/month=MM/day=DD/<name>.parquet"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str
    event_type: str


class Lister:
    """Lists the partitions the options ask for; `io` bounds the requests in flight."""

    def __init__(self, opts: VerifyOptions, client: Any, io: asyncio.Semaphore, deadline: Deadline) -> None:
        self.opts, self.client, self.io, self.deadline = opts, client, io, deadline
        self.wanted = {(d.year, d.month, d.day) for d in opts.dates} if opts.dates is not None else None

    async def list_objects(self) -> tuple[list[StoredObject], list[str]]:
        """Every parquet object in the wanted partitions (sorted by key), and the layout problems."""
        objects: list[StoredObject] = []
        problems: list[str] = []
        await gather_all([self._walk(f"event_type={et}/", 0, (), et, objects, problems)
                          for et in self.opts.event_types])
        objects.sort(key=lambda o: o.key)
        return objects, sorted(problems)

    async def bucket_hint(self) -> str:
        """What the bucket does hold at its top level, for a 'No files found' line."""
        try:
            contents, prefixes = await self._list("", "/")
        except S3Failure:
            return ""
        names = prefixes[:5] + [c["Key"] for c in contents[: max(0, 5 - len(prefixes))]]
        if not names:
            return f" (bucket '{self.opts.bucket}' is empty)"
        more = ", ..." if len(prefixes) + len(contents) > len(names) else ""
        return f" (bucket '{self.opts.bucket}' holds: {', '.join(names)}{more})"

    async def _list(self, prefix: str, delimiter: str | None) -> tuple[list[dict[str, Any]], list[str]]:
        kwargs: dict[str, Any] = {"Bucket": self.opts.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        contents: list[dict[str, Any]] = []
        prefixes: list[str] = []
        async with self.io:
            pages = self.client.get_paginator("list_objects_v2").paginate(**kwargs).__aiter__()
            while True:
                limit = self.deadline.bound()
                try:
                    async with asyncio.timeout(limit) as timer:
                        page = await anext(pages)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if timer.expired():
                        raise self.deadline.timed_out(limit, f"listing {prefix or 'the bucket'}") from None
                    raise failure(TimeoutError("timed out"), self.opts, "listing") from None
                except Exception as exc:  # every failure becomes one line
                    raise failure(exc, self.opts, "listing") from None
                contents.extend(c for c in page.get("Contents", []) if not _folder(c))
                prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        return contents, prefixes

    async def _walk(self, prefix: str, depth: int, parts: tuple[int, ...], et: str,
                    objects: list[StoredObject], problems: list[str]) -> None:
        """List one partition level; anything that is not the next partition is a problem."""
        if depth == len(_LEVELS):
            contents, _ = await self._list(prefix, None)
            for item in contents:
                key = item["Key"]
                name = key[len(prefix):]
                if "/" in name or not name.endswith(".parquet"):
                    problems.append(f"{key}: outside the partition layout (expected {prefix}<name>.parquet)")
                    continue
                objects.append(StoredObject(key, int(item["Size"]), str(item.get("ETag", "")), et))
            return
        contents, prefixes = await self._list(prefix, "/")
        level, digits = _LEVELS[depth]
        for item in contents:
            problems.append(f"{item['Key']}: outside the partition layout (expected {_LAYOUT})")
        subtasks = []
        for sub in prefixes:
            value = _partition_value(sub[len(prefix):], depth, parts)
            if value is None:
                problems.append(f"{sub}: outside the partition layout (expected {level}={_SHAPES[level]})")
                continue
            here = parts + (value,)
            if self.wanted is not None and not any(w[: len(here)] == here for w in self.wanted):
                continue
            subtasks.append(self._walk(sub, depth + 1, here, et, objects, problems))
        await gather_all(subtasks)


def _folder(item: dict[str, Any]) -> bool:
    """A zero-byte `.../` key: a folder marker, not an object."""
    return str(item.get("Key", "")).endswith("/") and int(item.get("Size", 0)) == 0


def _partition_value(name: str, depth: int, parts: tuple[int, ...]) -> int | None:
    """The number in `year=2026/` (or month, day) when it is a real calendar value, else None."""
    level, digits = _LEVELS[depth]
    m = re.fullmatch(level + "=(" + digits + ")/", name)
    if m is None:
        return None
    value = int(m.group(1))
    if depth == 1 and not 1 <= value <= 12:
        return None
    if depth == 2:
        try:
            dt.date(parts[0], parts[1], value)
        except ValueError:
            return None
    return value
