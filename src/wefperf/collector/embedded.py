"""An embedded stack for runs without Docker: moto S3 and `wefperf collector`, each its own process.

The collector runs in a child process so it has its own core and GIL, as a real collector
would; moto runs apart from it so its objects survive the collector's shutdown flush and the
runner can verify them afterwards. Both children hold a lifeline (see s3server) to this process,
so a run killed with SIGKILL leaves neither of them running.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp

from ..config.settings import DEFAULTS
from ..wsman.options import SubscriptionOptions
from .s3server import Lifeline, MotoServer
from .service import READY_PREFIX
from .upload import S3Target, s3_client

# moto takes any key; the embedded stack uses the documented defaults (S3Settings).
ACCESS_KEY = DEFAULTS.access_key
SECRET_KEY = DEFAULTS.secret_key


class EmbeddedStackError(RuntimeError):
    """The embedded S3 or collector did not come up; the message says why (with the collector's last lines)."""


@dataclass(frozen=True)
class StackEndpoints:
    wef_endpoint: str
    s3_endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    metrics_endpoint: str = ""  # the collector's Prometheus /metrics, when asked for (metrics=True)


async def _drain(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    """Keep reading the child's output so it never blocks on a full pipe; remember the last lines."""
    while line := await stream.readline():
        tail.append(line.decode("utf-8", "replace").rstrip())


async def _metrics_line(proc: asyncio.subprocess.Process, tail: collections.deque[str], timeout: float) -> str:
    """The line after the ready one, when the collector serves /metrics: where it does."""
    from .metrics import READY_PREFIX as METRICS_PREFIX

    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode("utf-8", "replace").strip()
    if not line.startswith(METRICS_PREFIX):
        tail.append(line)
        raise EmbeddedStackError(_died("did not say where its /metrics is", proc, tail))
    return line[len(METRICS_PREFIX):]


async def _wait_ready(
    proc: asyncio.subprocess.Process, tail: collections.deque[str], timeout: float, ssl: Any = True,
) -> str:
    assert proc.stdout is not None

    async def first_line() -> str:
        while line := await proc.stdout.readline():  # type: ignore[union-attr]
            text = line.decode("utf-8", "replace").strip()
            if text.startswith(READY_PREFIX):
                return text[len(READY_PREFIX):]
            tail.append(text)
        raise EmbeddedStackError(_died("exited before listening", proc, tail))

    base = await asyncio.wait_for(first_line(), timeout)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl)) as session:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                async with session.get(base + "/health", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return base
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise EmbeddedStackError(f"the embedded collector at {base} did not answer /health within {timeout:.0f} s")
            await asyncio.sleep(0.1)


def _died(what: str, proc: asyncio.subprocess.Process, tail: collections.deque[str]) -> str:
    last = " | ".join(list(tail)[-3:])
    return f"the embedded collector {what} (exit code {proc.returncode}){': ' + last if last else ''}"


@contextlib.asynccontextmanager
async def embedded_stack(
    *, flush_interval_secs: float = DEFAULTS.flush_interval_secs, max_file_size_mb: float = DEFAULTS.max_file_size_mb,
    bucket: str = DEFAULTS.s3_bucket, start_timeout: float = 60.0, stop_timeout: float = 60.0,
    max_eps: float | None = None, metrics: bool = False, wsman: bool = False,
    tls: tuple[str, str, str] | None = None, health_ssl: Any = True,
    subscription: SubscriptionOptions | None = None,
) -> AsyncIterator[StackEndpoints]:
    """Start moto S3 (with `bucket`) and the collector on free 127.0.0.1 ports; on exit SIGTERM the
    collector (it flushes every buffer to S3), wait for it, then stop moto.

    `max_eps`: the collector admits at most that many events a second (`wefperf collector --max-eps`).
    `metrics`: it also serves Prometheus /metrics on a free port (`--metrics-port 0`);
    `wsman`: it speaks WEF push mode too, offering `subscription` (OpenWEC's defaults when None);
    `tls`: (cert, key, client CA) for https with client certificates, and `health_ssl` the context its
    /health is probed with."""
    try:
        moto = await asyncio.to_thread(MotoServer().start)
    except RuntimeError as exc:
        raise EmbeddedStackError(str(exc)) from None
    proc: asyncio.subprocess.Process | None = None
    drains: list[asyncio.Task[None]] = []
    lifeline = Lifeline()
    try:
        async with s3_client(S3Target(moto.endpoint, bucket, ACCESS_KEY, SECRET_KEY)) as client:
            await client.create_bucket(Bucket=bucket)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        argv = lifeline.argv(
            "wefperf", "collector", "--host", "127.0.0.1", "--port", "0",
            "--s3-endpoint", moto.endpoint, "--bucket", bucket,
            "--flush-interval-secs", str(flush_interval_secs), "--max-file-size-mb", str(max_file_size_mb),
            *(("--max-eps", repr(float(max_eps))) if max_eps else ()),
            *(("--metrics-port", "0") if metrics else ()),
            *(("--wsman", *(subscription or SubscriptionOptions()).collector_args()) if wsman else ()),
            *(("--tls-cert", tls[0], "--tls-key", tls[1], "--client-ca", tls[2]) if tls else ()),
        )
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
                pass_fds=lifeline.pass_fds,
            )
        finally:
            lifeline.started()
        tail: collections.deque[str] = collections.deque(maxlen=50)
        assert proc.stderr is not None and proc.stdout is not None
        drains.append(asyncio.create_task(_drain(proc.stderr, tail)))
        try:
            base = await _wait_ready(proc, tail, start_timeout, health_ssl)
        except asyncio.TimeoutError:
            raise EmbeddedStackError(f"the embedded collector did not start within {start_timeout:.0f} s") from None
        metrics_endpoint = await _metrics_line(proc, tail, start_timeout) if metrics else ""
        drains.append(asyncio.create_task(_drain(proc.stdout, tail)))
        yield StackEndpoints(base + "/wsman/events", moto.endpoint, bucket, ACCESS_KEY, SECRET_KEY, metrics_endpoint)
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), stop_timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        # Only now: closing it earlier would cut the collector's flush short (see Lifeline).
        lifeline.close()
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        await asyncio.to_thread(moto.stop)
