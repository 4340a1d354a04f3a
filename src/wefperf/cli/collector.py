"""`wefperf collector`: the reference WEF collector (docs/contract.md), writing parquet to S3.

Without an S3 endpoint it starts moto's S3 server mode on a free 127.0.0.1 port.
Flags win over the environment (S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from urllib.parse import urlsplit

MB = 1024 * 1024


def add_parser(sub: "argparse._SubParsersAction[Any]") -> None:
    p = sub.add_parser(
        "collector", help="run the reference WEF collector (embedded S3 unless --s3-endpoint)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    # `target` was this command's name before 0.2; kept, unlisted, so old compose files still work.
    old = sub.add_parser("target", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(old)
    old.set_defaults(renamed=True)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in compose)")
    p.add_argument("--port", type=int, default=5985, help="port to listen on; 0 picks a free one (default 5985)")
    p.add_argument("--s3-endpoint", default=None, help="S3/MinIO URL (env S3_ENDPOINT); none: embedded moto S3")
    p.add_argument("--bucket", default=None, help="bucket for parquet files (env S3_BUCKET, default wef-events)")
    p.add_argument("--flush-interval-secs", type=float, default=5.0, help="write each partition's buffer this often (5)")
    p.add_argument("--max-file-size-mb", type=float, default=100.0, help="largest parquet file, in MiB (100)")
    p.add_argument("--max-body-mb", type=float, default=64.0, help="larger request bodies get 413 (64 MiB)")
    p.add_argument("--max-pending-mb", type=float, default=512.0,
                   help="parquet waiting for S3 beyond this is dropped and counted (512 MiB)")
    p.add_argument("--shutdown-timeout-secs", type=float, default=30.0,
                   help="how long to keep retrying S3 at shutdown before counting files as dropped (30)")
    p.set_defaults(handler=_run)


def _fail(message: str) -> int:
    sys.stderr.write(f"wefperf collector: error: {message}\n")
    return 2


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "renamed", False):
        sys.stderr.write("wefperf: `wefperf target` is now `wefperf collector`; the old name goes in a later release\n")
    env = os.environ
    endpoint = (args.s3_endpoint if args.s3_endpoint is not None else env.get("S3_ENDPOINT", "")).strip()
    bucket = (args.bucket if args.bucket is not None else env.get("S3_BUCKET", "")).strip() or "wef-events"
    if endpoint:
        parts = urlsplit(endpoint)
        try:
            parts.port
        except ValueError:
            return _fail(f"--s3-endpoint / S3_ENDPOINT has an invalid port (got {endpoint!r})")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return _fail(f"--s3-endpoint / S3_ENDPOINT must be an http:// or https:// URL (got {endpoint!r})")
    if not 0 <= args.port <= 65535:
        return _fail(f"--port must be between 0 and 65535 (got {args.port})")
    for name in ("flush_interval_secs", "shutdown_timeout_secs"):
        if getattr(args, name) < 0:
            return _fail(f"--{name.replace('_', '-')} must be 0 or more")
    for name in ("max_file_size_mb", "max_body_mb", "max_pending_mb"):
        if getattr(args, name) <= 0:
            return _fail(f"--{name.replace('_', '-')} must be more than 0")
    if not 3 <= len(bucket) <= 63:
        return _fail(f"--bucket / S3_BUCKET must be 3 to 63 characters (got {bucket!r})")
    try:
        from ..collector.service import TargetConfig, run
    except ImportError as exc:
        return _fail(f"the reference collector needs {exc.name}: pip install 'wefperf[collector]'")
    cfg = TargetConfig(
        host=args.host,
        port=args.port,
        s3_endpoint=endpoint,
        bucket=bucket,
        access_key=env.get("AWS_ACCESS_KEY_ID") or "miniouser",
        secret_key=env.get("AWS_SECRET_ACCESS_KEY") or "miniopassword",
        flush_interval_secs=args.flush_interval_secs,
        max_file_bytes=int(args.max_file_size_mb * MB),
        max_body_bytes=int(args.max_body_mb * MB),
        max_pending_bytes=int(args.max_pending_mb * MB),
        shutdown_timeout_secs=args.shutdown_timeout_secs,
    )
    return run(cfg)
