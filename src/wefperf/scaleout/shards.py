"""Where segments' results go and where a merge reads them: a local folder or s3://bucket/prefix.

Layout under the prefix (or folder): `results/<run_id>/segment-<i>-of-<N>.json`. S3 goes through
the verifier's client (the same endpoint and credentials settings), never a second S3 setup.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config.settings import S3Settings

_FROM_URL = "the bucket in the s3:// URL"  # what to check when a shard bucket is wrong
SHARD_NAME = re.compile(r"segment-(\d+)-of-(\d+)\.json$")


class ShardError(ValueError):
    """Shards that cannot be read or do not make one run: the message says which and why."""


@dataclass(frozen=True)
class Shard:
    """One segment's results JSON and where it came from (for messages)."""

    source: str
    data: dict[str, Any]


def shard_key(run_id: str, index: int, count: int) -> str:
    return f"results/{run_id}/segment-{index}-of-{count}.json"


def split_s3(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` as (bucket, "some/prefix"), no slashes at the ends."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ShardError(f"expected s3://bucket/prefix (got {url!r})")
    return parts.netloc, parts.path.strip("/")


def _options(s3: S3Settings, bucket: str) -> Any:
    from ..verify.model import VerifyOptions

    return VerifyOptions(endpoint=s3.s3_endpoint, bucket=bucket, access_key=s3.access_key, secret_key=s3.secret_key)


async def store_shard(data: dict[str, Any], target: str, s3: S3Settings) -> str:
    """Write one segment's results under `target` (s3:// or a folder); returns where it went."""
    seg = data["segment"]
    key = shard_key(str(data["run_id"]), int(seg["index"]), int(seg["count"]))
    body = json.dumps(data, indent=2, default=str).encode()
    if not target.startswith("s3://"):
        path = Path(target) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_bytes(body)
        tmp.replace(path)
        return str(path)
    from ..verify.s3client import S3Failure, describe_error, open_client

    bucket, prefix = split_s3(target)
    full = f"{prefix}/{key}" if prefix else key
    opts = _options(s3, bucket)
    try:
        async with open_client(opts) as client:
            await client.put_object(Bucket=bucket, Key=full, Body=body, ContentType="application/json")
    except S3Failure:
        raise
    except Exception as exc:
        raise ShardError(describe_error(exc, opts, f"storing s3://{bucket}/{full}", bucket_setting=_FROM_URL)) from None
    return f"s3://{bucket}/{full}"


async def read_shards(sources: list[str], s3: S3Settings, run_id: str | None = None) -> list[Shard]:
    """Every shard in `sources`: results files, folders holding results/<run_id>/..., s3:// prefixes."""
    shards: list[Shard] = []
    for source in sources:
        if source.startswith("s3://"):
            shards.extend(await _read_s3(source, s3, run_id))
        else:
            shards.extend(_read_local(source, run_id))
    if not shards:
        raise ShardError(f"no segment results found in {', '.join(sources)}")
    return _one_run(shards, run_id)


def _read_local(source: str, run_id: str | None) -> list[Shard]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("segment-*-of-*.json") if SHARD_NAME.search(p.name))
        if run_id:
            files = [p for p in files if p.parent.name == run_id] or [p for p in files if _run_of(p) == run_id]
        return [parse_shard(str(p), p.read_bytes()) for p in files]
    if not path.exists():
        raise ShardError(f"{source}: no such file or folder")
    return [parse_shard(source, path.read_bytes())]


def _run_of(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_bytes()).get("run_id"))
    except (OSError, ValueError):
        return None


async def _read_s3(source: str, s3: S3Settings, run_id: str | None) -> list[Shard]:
    from ..verify.s3client import describe_error, open_client

    bucket, prefix = split_s3(source)
    base = f"{prefix}/results/" if prefix else "results/"
    if run_id:
        base += f"{run_id}/"
    opts = _options(s3, bucket)
    found: list[Shard] = []
    try:
        async with open_client(opts) as client:
            keys: list[str] = []
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket, Prefix=base):
                keys.extend(obj["Key"] for obj in page.get("Contents", []) if SHARD_NAME.search(obj["Key"]))
            for key in sorted(keys):
                reply = await client.get_object(Bucket=bucket, Key=key)
                async with reply["Body"] as stream:
                    found.append(parse_shard(f"s3://{bucket}/{key}", await stream.read()))
    except ShardError:
        raise
    except Exception as exc:
        raise ShardError(describe_error(exc, opts, f"reading shards under s3://{bucket}/{base}",
                                        bucket_setting=_FROM_URL)) from None
    if not found:
        raise ShardError(f"no segment results under s3://{bucket}/{base}")
    return found


def parse_shard(source: str, raw: bytes) -> Shard:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ShardError(f"{source}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "segment" not in data or "shard" not in data:
        raise ShardError(f"{source}: not a segment's results (no segment/shard keys: run it with --segment i/N)")
    return Shard(source, data)


def _one_run(shards: list[Shard], run_id: str | None) -> list[Shard]:
    """The shards of one run, one per segment, all there; ShardError names what is wrong."""
    runs = sorted({str(s.data.get("run_id")) for s in shards})
    if run_id:
        shards = [s for s in shards if str(s.data.get("run_id")) == run_id]
        if not shards:
            raise ShardError(f"no segment results of run {run_id} (found runs: {', '.join(runs)})")
    elif len(runs) > 1:
        raise ShardError(f"segment results of several runs ({', '.join(runs)}): choose one with --run-id")
    counts = sorted({int(s.data["segment"]["count"]) for s in shards})
    if len(counts) > 1:
        raise ShardError(f"the segments disagree on their count N ({', '.join(map(str, counts))}): not one run")
    count = counts[0]
    by_index: dict[int, Shard] = {}
    for shard in shards:
        index = int(shard.data["segment"]["index"])
        if index in by_index:
            raise ShardError(f"segment {index} of {count} appears twice ({by_index[index].source}, {shard.source})")
        by_index[index] = shard
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        which = ", ".join(str(i) for i in missing)
        raise ShardError(f"segment {which} of {count} {'is' if len(missing) == 1 else 'are'} missing")
    first = by_index[0]
    plan = _plan(first.data)
    for index in range(1, count):
        other = by_index[index]
        if _plan(other.data) != plan:
            raise ShardError(f"{other.source}: its plan differs from segment 0's ({first.source}): not one run")
    return [by_index[i] for i in range(count)]


# Settings that make the plan: segments of one run must agree on every one of them.
PLAN_KEYS = ("total_events", "duration_secs", "batch_size", "target_eps", "stages", "event_type", "hosts",
             "max_items", "max_latency_secs", "payload_variants", "seed")


def _plan(data: dict[str, Any]) -> tuple[Any, ...]:
    cfg = data.get("configuration", {})
    return (*(json.dumps(cfg.get(k), sort_keys=True) for k in PLAN_KEYS), data.get("start_at"),
            (data.get("payload") or {}).get("seed"))
