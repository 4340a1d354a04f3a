"""The verifier's S3 client, and every S3 failure turned into one line that says what to check."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Coroutine, TypeVar

from .model import MIB, VerifyOptions

IO_CONCURRENCY = 16  # ranged GETs and listings in flight
GRACE_S = 5.0  # how long past the deadline a request may still take to answer
MIN_RATE = 1 * MIB  # bytes per second a ranged GET is allowed at least, on top of that
T = TypeVar("T")
# Answers that waiting will not change: stop at once instead of polling until the deadline.
_PERMANENT = {"NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "InvalidClientTokenId",
              "AccessDenied", "403", "AllAccessDisabled", "InvalidBucketName"}


class S3Failure(Exception):
    """A failed poll; the message is the one line the user sees. `permanent`: retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Deadline:
    """The verification's deadline, which bounds every request: a server that accepts a connection
    and never answers costs the time left plus a short grace, not the client's read timeout × retries."""

    def __init__(self, at: float, opts: VerifyOptions) -> None:
        self.at, self.opts = at, opts

    def bound(self, nbytes: int = 0) -> float:
        """Seconds one request may take from now."""
        return max(self.at - time.monotonic(), 0.0) + GRACE_S + nbytes / MIN_RATE

    def timed_out(self, seconds: float, doing: str) -> S3Failure:
        return S3Failure(f"S3 at {self.opts.endpoint} did not answer within {seconds:.0f} s while {doing}")


def failure(exc: BaseException, opts: VerifyOptions, doing: str) -> S3Failure:
    """The S3Failure for a client error, marked permanent when waiting cannot change it."""
    from botocore import exceptions as be

    permanent = error_code(exc) in _PERMANENT or isinstance(exc, be.NoCredentialsError) \
        or (isinstance(exc, ValueError) and "endpoint" in str(exc).lower())
    return S3Failure(describe_error(exc, opts, doing), permanent=permanent)


async def gather_all(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run together; the first failure cancels the rest and is raised as itself (S3Failure first)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except* Exception as failures:
        errors = list(failures.exceptions)
        raise next((e for e in errors if isinstance(e, S3Failure)), errors[0]) from None
    return [t.result() for t in tasks]


class open_client:
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


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return ""


def describe_error(exc: BaseException, opts: VerifyOptions, doing: str, *, bucket_setting: str = "S3_BUCKET") -> str:
    """One line that says what went wrong and what to check; never a credential.

    `bucket_setting` is where the bucket's name came from (an s3:// URL names its own)."""
    from botocore import exceptions as be

    where = f"S3 at {opts.endpoint}"
    code = error_code(exc)
    if isinstance(exc, (be.EndpointConnectionError, be.ConnectTimeoutError, be.ConnectionClosedError)) \
            or isinstance(exc, ConnectionError):
        return f"cannot reach {where} while {doing}: check S3_ENDPOINT and that the S3 server is running"
    if isinstance(exc, be.ReadTimeoutError):
        return f"{where} did not answer in time while {doing}"
    if isinstance(exc, be.NoCredentialsError):
        return "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if code in ("NoSuchBucket",):
        return f"bucket '{opts.bucket}' does not exist at {opts.endpoint}: check {bucket_setting}"
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
