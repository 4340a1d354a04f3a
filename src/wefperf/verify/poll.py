"""Polling S3 after a load until the run's rows are there and the bucket is quiet, or the wait runs out.

Each poll lists the partitions and reads only objects it has not read before; when an
object changed or vanished, the count starts again. A file is counted whole or not at all,
so a poll that fails half-way (a `503 SlowDown`, a request that did not answer before the
deadline) is simply tried again at the next poll; its error is reported only when the last
poll fails. Once nothing is missing, polling goes on until no object appeared or changed
for `settle_secs` (a later flush may still write a duplicate), or the deadline; with a run
id, only objects holding the run's rows count as appeared.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from .accounting import Accounting, SeqCounter, expected_span, summarize
from .listing import Lister, StoredObject
from .model import VerifyOptions, VerifyResult
from .numbering import Numbering
from .reader import ObjectReader, Outcome
from .s3client import IO_CONCURRENCY, Deadline, S3Failure, describe_error, gather_all, open_client

SAMPLE_KEYS = 5

Progress = Callable[[str], None]


def numbering_of(opts: VerifyOptions) -> Numbering | None:
    """The run's numbering: given, or contiguous batches from what the options say; None when unknown."""
    if opts.numbering is not None:
        return opts.numbering
    if not opts.run_id:
        return None
    batch_size = opts.batch_size or 1000
    span = expected_span(batch_size, opts.sent_batches, opts.total_events)
    if span is None and opts.expect_events is not None:
        span = opts.expect_events
    return Numbering.contiguous(batch_size, span) if span is not None else None


class _Verifier:
    """State kept across polls: objects already read are not read again."""

    def __init__(self, opts: VerifyOptions, client: Any, deadline: Deadline) -> None:
        self.opts = opts
        io = asyncio.Semaphore(IO_CONCURRENCY)
        self.numbering = numbering_of(opts)
        width = self.numbering.width if self.numbering is not None else (opts.batch_size or 1000)
        self.lister = Lister(opts, client, io, deadline)
        self.reader = ObjectReader(opts, client, io, deadline, self.numbering, width)
        self.new_rows = 0  # this run's rows in the objects read by the current poll
        self._reset()

    def _reset(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        span = self.numbering.span if self.numbering is not None else None
        self.counter = SeqCounter(span) if self.opts.run_id else None

    async def poll(self) -> tuple[list[StoredObject], list[str], bool]:
        """The objects and layout problems, and whether anything that matters changed since the last poll:
        an object changed or vanished, or a new one appeared (with a run id: one holding this run's rows,
        so other writers to a shared bucket do not keep the check waiting)."""
        objects, problems = await self.lister.list_objects()
        current = {o.key: o for o in objects}
        changed = any(k not in current or current[k].etag != o.etag or current[k].size != o.size
                      for k, o in self.outcomes.items())
        if changed:
            self._reset()  # an object changed or vanished: count everything again
        fresh = [o for o in objects if o.key not in self.outcomes]
        self.new_rows = 0
        await gather_all([self._read(o) for o in fresh])
        appeared = self.new_rows > 0 if self.counter is not None else bool(fresh)
        return objects, problems, changed or appeared

    async def _read(self, obj: StoredObject) -> None:
        out = await self.reader.inspect(obj, self.counter is not None)
        # No await from here on: the file's rows and its outcome are recorded together or not at all.
        if out.count is not None and self.counter is not None:
            self.counter.add(out.count)
            self.new_rows += out.count.rows
        out.count = None
        self.outcomes[obj.key] = out

    def accounting(self) -> Accounting | None:
        if self.counter is None or not self.opts.run_id:
            return None
        return summarize(self.counter, run_id=self.opts.run_id, numbering=self.numbering,
                         failed_ranges=self.opts.failed_ranges, checked=self.opts.event_types)

    def satisfied(self, files: int, rows: int, acct: Accounting | None) -> bool:
        """Whether nothing is missing any more (waiting longer could only find late copies)."""
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
            out.append(f"{acct.missing:,} of {acct.expected:,} acknowledged events missing{_elsewhere_hint(opts)}")
        if acct.duplicated:
            out.append(f"{acct.duplicated:,} events duplicated")
        if acct.misplaced:
            out.append(f"{acct.misplaced:,} events stored under another event type's partition (misplaced)")
        if acct.unexpected:
            hint = ""
            if opts.numbering is None and opts.expect_events is not None:
                hint = (" (if the run sent several event types, --expect-events cannot say which sequence"
                        " numbers are this type's: check with --results RESULTS.json instead)")
            out.append(f"{acct.unexpected:,} rows of this run were never sent{hint}")
        if acct.expected is None and acct.rows == 0:
            out.append(f"no rows of run {acct.run_id} found")
    elif opts.expect_events is not None and res.rows != opts.expect_events:
        out.append(f"expected {opts.expect_events:,} rows, found {res.rows:,}")
    return out


def _elsewhere_hint(opts: VerifyOptions) -> str:
    """Some types of a mixed run checked: events missing here may sit under a type not listed."""
    numbering = opts.numbering
    if numbering is None or numbering.types is None:
        return ""
    if set(opts.event_types) >= {str(e) for e in numbering.sent_types()}:
        return ""
    return (" from the partitions checked (every type checked at once would show any filed under another"
            " type's partition as misplaced)")


async def verify_s3(opts: VerifyOptions, progress: Progress | None = None) -> VerifyResult:
    """Check what the collector stored; never raises for S3 trouble, the result says it."""
    started = time.monotonic()
    deadline = Deadline(started + max(0.0, opts.wait_secs), opts)
    result = VerifyResult(passed=False, files=0, total_bytes=0, rows=0, sample_keys=[], problems=[],
                          bucket=opts.bucket, event_types=list(opts.event_types),
                          dates=[d.isoformat() for d in opts.dates] if opts.dates is not None else None,
                          max_file_size_bytes=opts.max_file_size_bytes, run_id=opts.run_id,
                          expect_events=opts.expect_events)
    verifier: _Verifier | None = None
    hint = ""
    try:
        async with open_client(opts) as client:
            verifier = _Verifier(opts, client, deadline)
            quiet_since = time.monotonic()
            while True:
                result.polls += 1
                failed: S3Failure | None = None
                try:
                    objects, layout, changed = await verifier.poll()
                except S3Failure as exc:
                    if exc.permanent:
                        raise
                    failed = exc
                else:
                    if changed:
                        quiet_since = time.monotonic()
                    _fill(result, objects, layout, verifier)
                now = time.monotonic()
                remaining = deadline.at - now
                done = failed is None and verifier.satisfied(result.files, result.rows, result.accounting)
                quiet = now - quiet_since
                if (done and quiet >= opts.settle_secs) or remaining <= 0:
                    if failed is not None:
                        raise failed
                    break
                if progress is not None:
                    progress(_waiting_line(result, remaining, failed, opts.settle_secs - quiet if done else None))
                await asyncio.sleep(min(opts.poll_interval_secs, remaining))
            if result.files == 0:
                hint = await verifier.lister.bucket_hint()
    except S3Failure as exc:
        result.error = str(exc)
    except Exception as exc:  # a client that cannot even be built (bad endpoint)
        result.error = describe_error(exc, opts, "verifying")
    if verifier is not None:
        result.bytes_fetched = verifier.reader.bytes_fetched
    result.reasons = _reasons(opts, result, hint)
    result.passed = not result.reasons
    result.elapsed_secs = time.monotonic() - started
    return result


def _fill(result: VerifyResult, objects: list[StoredObject], layout: list[str], v: _Verifier) -> None:
    outcomes = [v.outcomes[o.key] for o in objects]
    result.files = len(objects)
    result.total_bytes = sum(o.size for o in objects)
    result.rows = sum(o.rows for o in outcomes)
    result.sample_keys = [o.key for o in objects[:SAMPLE_KEYS]]
    result.problems = layout + [p for o in outcomes for p in o.problems]
    result.accounting = v.accounting()


def _waiting_line(result: VerifyResult, remaining: float, failed: S3Failure | None, settling: float | None) -> str:
    if failed is not None:
        return f"  Waiting for S3: the last poll failed ({failed}); trying again, up to {remaining:.1f} s more"
    acct = result.accounting
    if acct is not None and acct.expected is not None:
        have = f"{acct.found:,}/{acct.expected:,} events of run {acct.run_id}"
    else:
        have = f"{result.rows:,} rows"
    if settling is not None:
        return (f"  Waiting for S3: {result.files:,} files, {have}; watching for late copies until nothing"
                f" changes for {max(settling, 0.0):.1f} s more (up to {remaining:.1f} s)")
    return f"  Waiting for S3: {result.files:,} files, {have} so far; up to {remaining:.1f} s more"
