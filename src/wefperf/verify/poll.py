"""Polling S3 after a load until the run's rows are there or the wait runs out.

Each poll lists the partitions and reads only objects it has not read before; when an
object changed or vanished, the count starts again. After a load this replaces a blind
sleep: the verifier stops as soon as waiting longer could not change the outcome.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Callable

from .accounting import Accounting, SeqCounter, expected_span, summarize
from .listing import Lister, StoredObject
from .model import VerifyOptions, VerifyResult
from .reader import ObjectReader, Outcome
from .s3client import IO_CONCURRENCY, S3Failure, describe_error, gather_all, open_client

SAMPLE_KEYS = 5

Progress = Callable[[str], None]


class _Verifier:
    """State kept across polls: objects already read are not read again."""

    def __init__(self, opts: VerifyOptions, client: Any) -> None:
        self.opts = opts
        io = asyncio.Semaphore(IO_CONCURRENCY)
        self.batch_size = opts.batch_size or 1000
        self.sent_batches, self.total_events = opts.sent_batches, opts.total_events
        if opts.run_id and opts.expect_events is not None and self.sent_batches is None:
            self.sent_batches = math.ceil(opts.expect_events / self.batch_size)
            self.total_events = opts.expect_events
        self.lister = Lister(opts, client, io)
        self.reader = ObjectReader(opts, client, io, self.batch_size)
        self._reset()

    def _reset(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        span = expected_span(self.batch_size, self.sent_batches, self.total_events)
        self.counter = SeqCounter(span) if self.opts.run_id else None

    async def poll(self) -> tuple[list[StoredObject], list[str]]:
        objects, problems = await self.lister.list_objects()
        current = {o.key: o for o in objects}
        if any(k not in current or current[k].etag != o.etag or current[k].size != o.size
               for k, o in self.outcomes.items()):
            self._reset()  # an object changed or vanished: count everything again
        fresh = [o for o in objects if o.key not in self.outcomes]
        outcomes = await gather_all([self.reader.inspect(o, self.counter) for o in fresh])
        self.outcomes.update({o.key: r for o, r in zip(fresh, outcomes)})
        return objects, problems

    def accounting(self) -> Accounting | None:
        if self.counter is None or not self.opts.run_id:
            return None
        return summarize(self.counter, run_id=self.opts.run_id, batch_size=self.batch_size,
                         sent_batches=self.sent_batches, total_events=self.total_events,
                         failed_ranges=self.opts.failed_ranges, here=self.opts.here)

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
            hint = ""
            if opts.here is None and opts.expect_events is not None:
                hint = (" (if the run sent several event types, --expect-events cannot say which sequence"
                        " numbers are this type's: check with --results RESULTS.json instead)")
            out.append(f"{acct.unexpected:,} rows of this run were never sent{hint}")
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
        async with open_client(opts) as client:
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


def _waiting_line(result: VerifyResult, remaining: float) -> str:
    acct = result.accounting
    if acct is not None and acct.expected is not None:
        have = f"{acct.found:,}/{acct.expected:,} events of run {acct.run_id}"
    else:
        have = f"{result.rows:,} rows"
    return f"  Waiting for S3: {result.files:,} files, {have} so far; up to {remaining:.1f} s more"
