"""The rules a setting's value must keep, each written once: URLs, buckets, event IDs, segments, stages.

ConfigError is what a bad setting raises anywhere (the CLI prints it as one line, exit 2).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator

from ..load.shapes import parse_stages
from ..wsman.options import parse_options


class ConfigError(ValueError):
    """A bad setting: the CLI prints the message as one line and exits 2."""


# -- the rules, each written once ---------------------------------------------------------


def check_url(value: str) -> str:
    """An http(s) URL with a host and a valid port: what every endpoint setting must be."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
    try:
        _ = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"has an invalid port (got {value!r})") from None
    return text


def check_url_or_empty(value: str) -> str:
    return check_url(value) if value.strip() else ""


def check_bucket(value: str) -> str:
    """S3's length rule for bucket names, for the run, the verifier and the collector alike."""
    text = value.strip()
    if not 3 <= len(text) <= 63:
        raise ValueError(f"must be 3 to 63 characters (got {value!r})")
    return text


def check_event_id(text: str) -> str:
    """A Windows event ID: a whole number from 1 to 65535, returned as its digits."""
    value = text.strip()
    if not (value.isascii() and value.isdigit() and 0 < int(value) <= 65535):
        raise ValueError(f"not a Windows event ID: expected a number from 1 to 65535 (got {text!r})")
    return str(int(value))


MAX_PROCESSES = 1024
RUN_ID = re.compile(r"[0-9a-z]{1,64}")


def parse_segment(text: str) -> tuple[int, int]:
    """`i/N` (0-based i, i < N) as (i, N); ValueError says what is wrong."""
    index, sep, count = text.strip().partition("/")
    if not sep or not (index.strip().isdigit() and count.strip().isdigit()):
        raise ValueError(f"expected i/N with whole numbers, e.g. 0/4 (got {text!r})")
    i, n = int(index), int(count)
    if n < 1:
        raise ValueError(f"the segment count N must be at least 1 (got {text!r})")
    if i >= n:
        raise ValueError(f"the segment index i must be below N (0-based: 0/{n} to {n - 1}/{n}; got {text!r})")
    return i, n


def usable_cores() -> int:
    """The cores this process may run on (its affinity), not the machine's count."""
    counter = getattr(os, "process_cpu_count", None)
    if counter is not None:
        return int(counter() or 1)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - no affinity API (macOS)
        return os.cpu_count() or 1

# A Prometheus metric name, as the exposition format allows it.
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

HttpUrl = Annotated[str, AfterValidator(check_url)]
OptionalHttpUrl = Annotated[str, AfterValidator(check_url_or_empty)]
BucketName = Annotated[str, AfterValidator(check_bucket)]


def _check_subscription(value: str) -> str:
    parse_options(value)
    return value.strip()


SubscriptionText = Annotated[str, AfterValidator(_check_subscription)]


def base_url(url: str) -> str:
    """scheme://host:port of a URL: where /health and /stats/throughput live."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def stage_from_table(item: Any) -> Any:
    """A profile's `[[stages]]` table (duration_secs, target_eps) as a Stage."""
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"duration_secs", "target_eps"})
        if unknown or not {"duration_secs", "target_eps"} <= set(item):
            raise ValueError("each [[stages]] table needs duration_secs and target_eps, nothing else")
        text = f"{item['duration_secs']}:{item['target_eps']}"
        return parse_stages(text)[0]
    return item
