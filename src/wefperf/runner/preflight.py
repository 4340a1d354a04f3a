"""Checks before the load that cost a second and can save a whole run: the S3 buckets it will need.

A wrong S3 endpoint or bucket used to show only after the load (an hour with soak-1h). Each bucket
the run will read (--verify-s3) or write (--shard-results s3://...) is listed once, bounded, with
the verifier's own client and wording, before anything is sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..config.settings import Settings

# A listing normally answers in milliseconds; the client's own connect timeout (5 s) and one retry
# fit in this, so an endpoint that accepts and never answers costs this, not the whole run.
PREFLIGHT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class BucketNeed:
    """One bucket the run will use, and why (the flag a user recognises)."""

    bucket: str
    prefix: str
    why: str
    bucket_setting: str  # what to check when the bucket is wrong


@dataclass
class S3Preflight:
    """What the check found: `problem` is empty when every bucket answered."""

    checked: list[str] = field(default_factory=list)  # one line per bucket that answered
    problem: str = ""


def s3_needs(settings: Settings) -> list[BucketNeed]:
    """The buckets this process (a run, a segment or the --processes parent) will use after its load."""
    needs: list[BucketNeed] = []
    if settings.verify_s3 and not settings.segment:  # a segment's S3 check is its merge's
        needs.append(BucketNeed(settings.s3_bucket, "", "--verify-s3", "S3_BUCKET"))
    if settings.shard_results.startswith("s3://") and (settings.segment or settings.process_count > 1):
        from ..scaleout.shards import split_s3

        bucket, prefix = split_s3(settings.shard_results)
        needs.append(BucketNeed(bucket, prefix, f"--shard-results {settings.shard_results}",
                                "the bucket in the s3:// URL"))
    return needs


async def check_s3(settings: Settings, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> S3Preflight:
    """List each needed bucket once (one key at most); the first failure is the one line to show."""
    out = S3Preflight()
    for need in s3_needs(settings):
        problem = await _check_bucket(settings, need, timeout_s)
        if problem:
            out.problem = f"S3 check before the load ({need.why}): {problem}"
            return out
        out.checked.append(f"S3 bucket '{need.bucket}' at {settings.s3_endpoint} is readable")
    return out


async def _check_bucket(settings: Settings, need: BucketNeed, timeout_s: float) -> str:
    from ..verify.model import VerifyOptions
    from ..verify.s3client import describe_error, open_client

    opts = VerifyOptions(endpoint=settings.s3_endpoint, bucket=need.bucket, access_key=settings.access_key,
                         secret_key=settings.secret_key)
    doing = f"listing bucket '{need.bucket}'"

    async def listing() -> None:
        async with open_client(opts) as client:
            await client.list_objects_v2(Bucket=need.bucket, Prefix=need.prefix, MaxKeys=1)

    try:
        await asyncio.wait_for(listing(), timeout_s)
    except asyncio.TimeoutError:
        return f"S3 at {settings.s3_endpoint} did not answer within {timeout_s:.0f} s while {doing}"
    except Exception as exc:  # every S3 or network failure becomes the verifier's one line
        return describe_error(exc, opts, doing, bucket_setting=need.bucket_setting)
    return ""
