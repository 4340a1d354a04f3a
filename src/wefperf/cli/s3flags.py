"""--s3-endpoint and --bucket, shared by `verify` and `collector`: flags over S3Settings' sources."""

from __future__ import annotations

import argparse

from ..config.help import field_help
from ..config.loading import load_s3_settings
from ..config.settings import S3Settings

# S3Settings field -> flag, for the parser and for messages that name both.
S3_FLAGS = {"s3_endpoint": "--s3-endpoint", "s3_bucket": "--bucket"}


def add_s3_arguments(p: argparse.ArgumentParser, *, endpoint_default: str | None = None) -> None:
    """`endpoint_default` describes what the command does when no endpoint is given at all."""
    p.add_argument(S3_FLAGS["s3_endpoint"], dest="s3_endpoint", default=None, metavar="URL",
                   help=field_help("s3_endpoint", default=endpoint_default))
    p.add_argument(S3_FLAGS["s3_bucket"], dest="s3_bucket", default=None, metavar="NAME", help=field_help("s3_bucket"))


def s3_settings(args: argparse.Namespace) -> S3Settings:
    """Flags, then S3_* and AWS_* variables, then defaults; ConfigError names flag and variable."""
    return load_s3_settings({field: getattr(args, field) for field in S3_FLAGS}, flag_names=S3_FLAGS)
