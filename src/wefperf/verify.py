"""The async S3 verifier: what the collector really stored, down to each event of a run.

It walks the `event_type=<id>/year=/month=/day=` partitions a run covered (paginated,
one level at a time so stray objects beside the layout are seen too), checks each
object's key, size and parquet footer with ranged GETs, and, given a run id, counts the
run's events exactly from the `event_data` column chunks alone. After a load it polls
until the expected rows are there or a deadline passes, instead of sleeping blindly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, TypeVar

from .accounting import Accounting, SeqCounter, expected_span, summarize
from .s3parquet import (
    FOOTER_PROBE,
    CorruptParquet,
    Footer,
    footer_length,
    iter_markers,
    parse_footer,
)

MIB = 1024 * 1024
IO_CONCURRENCY = 16  # ranged GETs and listings in flight
DATA_CONCURRENCY = 3  # files whose event_data is held in memory and decoded at once
SAMPLE_KEYS = 5
MAX_PROBLEMS = 1000

Progress = Callable[[str], None]
T = TypeVar("T")


@dataclass
class VerifyOptions:
    endpoint: str
    bucket: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    event_types: list[str] = field(default_factory=list)  # event IDs, e.g. ["4624"]
    dates: list[dt.date] | None = None  # UTC partitions to look in; None = all
    max_file_size_bytes: int = 100 * MIB
    run_id: str | None = None
    batch_size: int | None = None
    sent_batches: int | None = None
    total_events: int | None = None  # count mode: the last batch may be short
    failed_batches: list[int] = field(default_factory=list)
    expect_events: int | None = None  # expected rows of this run (or all rows if no run id)
    wait_secs: float = 0.0  # poll until expectations hold or this deadline passes
    poll_interval_secs: float = 1.0


@dataclass
class VerifyResult:
    passed: bool
    files: int
    total_bytes: int
    rows: int
    sample_keys: list[str]
    problems: list[str]
    accounting: Accounting | None = None
    reasons: list[str] = field(default_factory=list)  # why it failed, one short phrase each
    error: str | None = None  # a failure that stopped the verification (endpoint, bucket, access)
    bucket: str = ""
    event_types: list[str] = field(default_factory=list)
    dates: list[str] | None = None
    max_file_size_bytes: int = 100 * MIB
    run_id: str | None = None
    expect_events: int | None = None
    bytes_fetched: int = 0
    polls: int = 0
    elapsed_secs: float = 0.0

    @property
    def total_mb(self) -> float:
        return self.total_bytes / MIB

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """The results-JSON form: the seed's keys first, then the accounting."""
        return {
            "success": self.passed,
            "files_found": self.files,
            "total_size_mb": round(self.total_mb, 2),
            "sample_files": list(self.sample_keys),
            "total_size_bytes": self.total_bytes,
            "rows": self.rows,
            "reason": self.reason or None,
            "error": self.error,
            "problems": self.problems[:MAX_PROBLEMS],
            "problem_count": len(self.problems),
            "bucket": self.bucket,
            "event_types": list(self.event_types),
            "dates": self.dates,
            "max_file_size_mb": round(self.max_file_size_bytes / MIB, 3),
            "run_id": self.run_id,
            "expect_events": self.expect_events,
            "accounting": self.accounting.to_dict() if self.accounting else None,
            "bytes_fetched": self.bytes_fetched,
            "polls": self.polls,
            "elapsed_secs": round(self.elapsed_secs, 3),
        }


def dates_covered(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """The UTC dates from start to end inclusive (naive times are taken as UTC)."""

    def utc(t: dt.datetime) -> dt.date:
        return (t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)).date()

    first, last = utc(start), utc(end)
    if last < first:
        first, last = last, first
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


class S3Failure(Exception):
    """A failure that stops the verification; the message is the one line the user sees."""


@dataclass
class _Object:
    key: str
    size: int
    etag: str
    event_type: str


@dataclass
class _Outcome:
    size: int
    etag: str
    rows: int = 0
    problems: list[str] = field(default_factory=list)


_LEVELS = (("year", r"\d{4}"), ("month", r"\d{2}"), ("day", r"\d{2}"))
_SHAPES = {"year": "YYYY", "month": "MM", "day": "DD"}


async def _all(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run together; the first failure cancels the rest and is raised as itself (S3Failure first)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except* Exception as failures:
        errors = list(failures.exceptions)
        raise next((e for e in errors if isinstance(e, S3Failure)), errors[0]) from None
    return [t.result() for t in tasks]


class _Verifier:
    """State kept across polls: objects already read are not read again."""

    def __init__(self, opts: VerifyOptions, client: Any) -> None:
        self.opts = opts
        self.client = client
        self.io = asyncio.Semaphore(IO_CONCURRENCY)
        self.data = asyncio.Semaphore(DATA_CONCURRENCY)
        self.batch_size = opts.batch_size or 1000
        self.sent_batches, self.total_events = opts.sent_batches, opts.total_events
        if opts.run_id and opts.expect_events is not None and self.sent_batches is None:
            self.sent_batches = math.ceil(opts.expect_events / self.batch_size)
            self.total_events = opts.expect_events
        self.wanted = {(d.year, d.month, d.day) for d in opts.dates} if opts.dates is not None else None
        self.bytes_fetched = 0
        self.footers: dict[tuple[str, int], asyncio.Future[Footer]] = {}
        self._reset()

    def _reset(self) -> None:
        self.outcomes: dict[str, _Outcome] = {}
        span = expected_span(self.batch_size, self.sent_batches, self.total_events)
        self.counter = SeqCounter(span) if self.opts.run_id else None

    # -- listing -------------------------------------------------------------------------

    async def _list(self, prefix: str, delimiter: str | None) -> tuple[list[dict[str, Any]], list[str]]:
        kwargs: dict[str, Any] = {"Bucket": self.opts.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        contents: list[dict[str, Any]] = []
        prefixes: list[str] = []
        async with self.io:
            try:
                async for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                    contents.extend(page.get("Contents", []))
                    prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            except Exception as exc:  # noqa: BLE001 - every failure becomes one line
                raise S3Failure(describe_error(exc, self.opts, "listing")) from None
        return contents, prefixes

    async def _walk(self, prefix: str, depth: int, parts: tuple[int, ...], et: str,
                    objects: list[_Object], problems: list[str]) -> None:
        """List one partition level; anything that is not the next partition is a problem."""
        if depth == len(_LEVELS):
            contents, _ = await self._list(prefix, None)
            for item in contents:
                key = item["Key"]
                name = key[len(prefix):]
                if "/" in name or not name.endswith(".parquet"):
                    problems.append(f"{key}: outside the partition layout "
                                    f"(expected {prefix}<name>.parquet)")
                    continue
                objects.append(_Object(key, int(item["Size"]), str(item.get("ETag", "")), et))
            return
        contents, prefixes = await self._list(prefix, "/")
        level, digits = _LEVELS[depth]
        for item in contents:
            problems.append(f"{item['Key']}: outside the partition layout "
                            f"(expected event_type=<id>/year=YYYY/month=MM/day=DD/<name>.parquet)")
        subtasks = []
        for sub in prefixes:
            m = re.fullmatch(level + "=(" + digits + ")/", sub[len(prefix):])
            value = int(m.group(1)) if m else None
            if value is not None and depth == 2:
                try:
                    dt.date(parts[0], parts[1], value)
                except ValueError:
                    value = None
            elif value is not None and depth == 1 and not 1 <= value <= 12:
                value = None
            if value is None:
                problems.append(f"{sub}: outside the partition layout (expected {level}={_SHAPES[level]})")
                continue
            here = parts + (value,)
            if self.wanted is not None and not any(w[: len(here)] == here for w in self.wanted):
                continue
            subtasks.append(self._walk(sub, depth + 1, here, et, objects, problems))
        await _all(subtasks)

    async def list_objects(self) -> tuple[list[_Object], list[str]]:
        objects: list[_Object] = []
        problems: list[str] = []
        await _all([self._walk(f"event_type={et}/", 0, (), et, objects, problems) for et in self.opts.event_types])
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

    # -- reading -------------------------------------------------------------------------

    async def _get(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive) of one object."""
        async with self.io:
            try:
                resp = await self.client.get_object(Bucket=self.opts.bucket, Key=key, Range=f"bytes={start}-{end}")
                async with resp["Body"] as body:
                    data: bytes = await body.read()
            except Exception as exc:  # noqa: BLE001
                code = _error_code(exc)
                if code in ("NoSuchKey", "404"):
                    raise CorruptParquet("vanished while being read") from None
                raise S3Failure(describe_error(exc, self.opts, f"reading {key}")) from None
        self.bytes_fetched += len(data)
        return data

    async def inspect(self, obj: _Object) -> _Outcome:
        out = _Outcome(size=obj.size, etag=obj.etag)
        limit = self.opts.max_file_size_bytes
        if obj.size > limit:
            out.problems.append(f"{obj.key}: {obj.size / MIB:.2f} MB is over the "
                                f"{limit / MIB:g} MB maximum file size")
        try:
            await self._read(obj, out)
        except CorruptParquet as exc:
            out.problems.append(f"{obj.key}: corrupt parquet: {exc}")
        except S3Failure:
            raise
        except Exception as exc:  # noqa: BLE001 - a file we cannot decode is that file's problem
            out.problems.append(f"{obj.key}: could not be read ({type(exc).__name__}: {str(exc)[:200]})")
        return out

    async def _fetch_footer(self, obj: _Object) -> tuple[int, bytes, Footer]:
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

    async def _footer_only(self, obj: _Object) -> Footer:
        return (await self._fetch_footer(obj))[2]

    async def _read(self, obj: _Object, out: _Outcome) -> None:
        if self.counter is None:
            # Without accounting only the footer matters, and objects with the same ETag and
            # size hold the same bytes (a re-uploaded file): read that footer once.
            same = (obj.etag, obj.size)
            job = self.footers.get(same) if obj.etag else None
            if job is None:
                job = asyncio.ensure_future(self._footer_only(obj))
                if obj.etag:
                    self.footers[same] = job
            self._check_footer(obj, out, await job)
            return
        tail_at, tail, footer = await self._fetch_footer(obj)
        size = obj.size
        self._check_footer(obj, out, footer)
        if self.counter is None or footer.missing_columns or not footer.rows:
            return
        async with self.data:
            ranges = {tail_at: tail}
            needed = [(o, n) for o, n in footer.data_ranges if n > 0 and (o < tail_at or o + n > size)]
            chunks = await _all([self._get(obj.key, o, o + n - 1) for o, n in needed])
            ranges.update({o: c for (o, _), c in zip(needed, chunks)})
            await asyncio.to_thread(self._count, size, ranges)

    def _count(self, size: int, ranges: dict[int, bytes]) -> None:
        """In a worker thread: decode a slice of rows, count its markers, go on."""
        assert self.counter is not None
        for part in iter_markers(size, ranges, self.opts.run_id or "", self.batch_size):
            self.counter.add(part.seqs, part.max_seq, bad=part.bad_index, other=part.other, unmarked=part.unmarked)

    @staticmethod
    def _check_footer(obj: _Object, out: _Outcome, footer: Footer) -> None:
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

    # -- one poll ------------------------------------------------------------------------

    async def poll(self) -> tuple[list[_Object], list[str]]:
        objects, problems = await self.list_objects()
        current = {o.key: o for o in objects}
        if any(k not in current or current[k].etag != o.etag or current[k].size != o.size
               for k, o in self.outcomes.items()):
            self._reset()  # an object changed or vanished: count everything again
        fresh = [o for o in objects if o.key not in self.outcomes]
        outcomes = await _all([self.inspect(o) for o in fresh])
        self.outcomes.update({o.key: r for o, r in zip(fresh, outcomes)})
        return objects, problems

    def accounting(self) -> Accounting | None:
        if self.counter is None or not self.opts.run_id:
            return None
        return summarize(self.counter, run_id=self.opts.run_id, batch_size=self.batch_size,
                         sent_batches=self.sent_batches, total_events=self.total_events,
                         failed_batches=self.opts.failed_batches)

    def satisfied(self, files: int, rows: int, acct: Accounting | None) -> bool:
        """Whether waiting longer could not change the outcome for the better."""
        if acct is not None and acct.expected is not None:
            return acct.missing == 0
        if self.opts.expect_events is not None:
            return rows >= self.opts.expect_events
        return files > 0


def _reasons(opts: VerifyOptions, res: VerifyResult, hint: str = "") -> list[str]:
    out: list[str] = []
    if res.error:
        return [res.error]
    if res.files == 0:
        out.append("No files found" + hint)
    if res.problems:
        n = len(res.problems)
        out.append(f"{n} problem{'s' if n != 1 else ''} with stored objects")
    acct = res.accounting
    if acct is not None:
        if acct.missing:
            out.append(f"{acct.missing:,} of {acct.expected:,} acknowledged events missing")
        if acct.duplicated:
            out.append(f"{acct.duplicated:,} events duplicated")
        if acct.unexpected:
            out.append(f"{acct.unexpected:,} rows of this run were never sent")
        if acct.expected is None and acct.rows == 0:
            out.append(f"no rows of run {acct.run_id} found")
    elif opts.expect_events is not None and res.rows != opts.expect_events:
        out.append(f"expected {opts.expect_events:,} rows, found {res.rows:,}")
    return out


async def verify_s3(opts: VerifyOptions, progress: Progress | None = None) -> VerifyResult:
    """Check what the collector stored; never raises for S3 trouble, the result says it."""
    started = time.monotonic()
    deadline = started + max(0.0, opts.wait_secs)
    result = VerifyResult(passed=False, files=0, total_bytes=0, rows=0, sample_keys=[], problems=[],
                          bucket=opts.bucket, event_types=list(opts.event_types),
                          dates=[d.isoformat() for d in opts.dates] if opts.dates is not None else None,
                          max_file_size_bytes=opts.max_file_size_bytes, run_id=opts.run_id,
                          expect_events=opts.expect_events)
    verifier: _Verifier | None = None
    hint = ""
    try:
        async with _client(opts) as client:
            verifier = _Verifier(opts, client)
            while True:
                result.polls += 1
                objects, layout = await verifier.poll()
                _fill(result, objects, layout, verifier)
                remaining = deadline - time.monotonic()
                if verifier.satisfied(result.files, result.rows, result.accounting) or remaining <= 0:
                    break
                if progress is not None:
                    progress(_waiting_line(result, remaining))
                await asyncio.sleep(min(opts.poll_interval_secs, remaining))
            if result.files == 0:
                hint = await verifier.bucket_hint()
    except S3Failure as exc:
        result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a client that cannot even be built (bad endpoint)
        result.error = describe_error(exc, opts, "verifying")
    if verifier is not None:
        result.bytes_fetched = verifier.bytes_fetched
    result.reasons = _reasons(opts, result, hint)
    result.passed = not result.reasons
    result.elapsed_secs = time.monotonic() - started
    return result


def _fill(result: VerifyResult, objects: list[_Object], layout: list[str], v: _Verifier) -> None:
    outcomes = [v.outcomes[o.key] for o in objects]
    result.files = len(objects)
    result.total_bytes = sum(o.size for o in objects)
    result.rows = sum(o.rows for o in outcomes)
    result.sample_keys = [o.key for o in objects[:SAMPLE_KEYS]]
    result.problems = layout + [p for o in outcomes for p in o.problems]
    result.accounting = v.accounting()


def _waiting_line(result: VerifyResult, remaining: float) -> str:
    acct = result.accounting
    if acct is not None and acct.expected is not None:
        have = f"{acct.found:,}/{acct.expected:,} events of run {acct.run_id}"
    else:
        have = f"{result.rows:,} rows"
    return f"  Waiting for S3: {result.files:,} files, {have} so far; up to {remaining:.1f} s more"


class _client:
    """An aiobotocore S3 client: path-style (MinIO, moto), short connect timeout, few retries."""

    def __init__(self, opts: VerifyOptions) -> None:
        self.opts = opts
        self._cm: Any = None

    async def __aenter__(self) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=IO_CONCURRENCY * 2,
        )
        self._cm = get_session().create_client(
            "s3", endpoint_url=self.opts.endpoint, region_name=self.opts.region,
            aws_access_key_id=self.opts.access_key, aws_secret_access_key=self.opts.secret_key,
            config=config,
        )
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(*exc)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return ""


def describe_error(exc: BaseException, opts: VerifyOptions, doing: str) -> str:
    """One line that says what went wrong and what to check; never a credential."""
    from botocore import exceptions as be

    where = f"S3 at {opts.endpoint}"
    code = _error_code(exc)
    if isinstance(exc, (be.EndpointConnectionError, be.ConnectTimeoutError, be.ConnectionClosedError)) \
            or isinstance(exc, ConnectionError):
        return f"cannot reach {where} while {doing}: check S3_ENDPOINT and that the S3 server is running"
    if isinstance(exc, be.ReadTimeoutError):
        return f"{where} did not answer in time while {doing}"
    if isinstance(exc, be.NoCredentialsError):
        return "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if code in ("NoSuchBucket",):
        return f"bucket '{opts.bucket}' does not exist at {opts.endpoint}: check S3_BUCKET"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "InvalidClientTokenId"):
        return (f"{where} rejected the credentials ({code}) while {doing}: "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return (f"access denied to bucket '{opts.bucket}' while {doing}: check that AWS_ACCESS_KEY_ID "
                "may list and read it (IAM or bucket policy)")
    if isinstance(exc, be.ClientError):
        msg = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")).strip()
        return f"{where} answered {code or 'an error'} while {doing}" + (f": {msg[:200]}" if msg else "")
    if isinstance(exc, ValueError) and "endpoint" in str(exc).lower():
        return f"invalid S3 endpoint {opts.endpoint!r}: expected http://host:port"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return f"S3 error while {doing} ({type(exc).__name__}): {text}"
