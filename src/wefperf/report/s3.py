"""The seed's "S3 VERIFICATION" console block, followed by the exact event accounting."""

from __future__ import annotations

from ..verify.accounting import format_ranges
from ..verify.model import VerifyResult
from ..wording import plural

RULE = "=" * 70
MAX_PROBLEM_LINES = 20
SAMPLE_SHOWN = 3


def s3_block(result: VerifyResult) -> list[str]:
    lines = [RULE, "S3 VERIFICATION", RULE]
    if result.passed:
        lines.append("✓ S3 files verified successfully")
    else:
        lines.append(f"✗ S3 verification failed: {result.reason or 'unknown reason'}")
    lines.append(f"  Files found: {result.files:,}")
    lines.append(f"  Total size: {result.total_mb:.2f} MB")
    if result.files:
        lines.append(f"  Rows: {result.rows:,}")
    if result.sample_keys:
        shown = ", ".join(result.sample_keys[:SAMPLE_SHOWN])
        more = ", ..." if result.files > SAMPLE_SHOWN else ""
        lines.append(f"  Sample files: {shown}{more}")
    lines.extend(_accounting_lines(result))
    if result.problems:
        lines.append(f"  Problems ({len(result.problems):,}):")
        lines.extend(f"    - {p}" for p in result.problems[:MAX_PROBLEM_LINES])
        if len(result.problems) > MAX_PROBLEM_LINES:
            lines.append(f"    ... and {len(result.problems) - MAX_PROBLEM_LINES:,} more (see the results JSON)")
    lines.append(RULE)
    return lines


def _accounting_lines(result: VerifyResult) -> list[str]:
    acct = result.accounting
    if acct is None:
        if result.expect_events is not None:
            return [f"  Expected rows: {result.expect_events:,}"]
        return []
    lines = []
    if acct.expected is not None:
        misplaced = f", misplaced {acct.misplaced:,}" if acct.misplaced else ""
        lines.append(f"  Events of run {acct.run_id}: expected {acct.expected:,}, found {acct.found:,}, "
                     f"missing {acct.missing:,}, duplicated {acct.duplicated:,}{misplaced}")
    else:
        lines.append(f"  Events of run {acct.run_id}: {acct.rows:,} rows, {acct.found:,} distinct, "
                     f"duplicated {acct.duplicated:,} (expected count unknown)")
    if acct.missing:
        lines.append(f"  Missing: {acct.missing:,} events: "
                     + format_ranges(acct.missing_ranges, acct.missing_range_count, acct.batch_size))
    if acct.duplicated:
        lines.append(f"  Duplicated: {acct.duplicated:,} extra copies: "
                     + format_ranges(acct.duplicate_ranges, acct.duplicate_range_count, acct.batch_size))
    if acct.misplaced:
        lines.append(f"  Misplaced: {acct.misplaced:,} rows under another event type's partition: "
                     + format_ranges(acct.misplaced_ranges, acct.misplaced_range_count, acct.batch_size))
    if acct.unexpected:
        lines.append(f"  Never sent: {acct.unexpected:,} rows of this run have sequence numbers it did not send")
    if acct.not_acknowledged_found:
        lines.append(f"  Stored although not acknowledged: {acct.not_acknowledged_found:,} events "
                     f"of {plural(acct.failed_batches, 'failed batch')}")
    if acct.other_rows or acct.unmarked_rows:
        lines.append(f"  Other rows: {acct.other_rows:,} of other runs, {acct.unmarked_rows:,} without a marker")
    return lines
