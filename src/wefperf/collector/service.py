"""The collector's life: S3 check, serve, and a flush of every buffer on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..config.limits import raise_open_files
from ..model import ExitCode
from ..wsman.options import SubscriptionOptions
from .s3server import MotoServer
from .server import Collector, make_app
from .sink import Sink
from .stats import ThroughputStats
from .upload import S3ConfigError, S3Target, Uploader, check_bucket, s3_client

log = logging.getLogger("wefperf.collector")

READY_PREFIX = "wefperf collector listening on "


class TargetError(Exception):
    """A start-up problem the user can fix: printed as one line, exit code 2."""


@dataclass(frozen=True)
class TargetConfig:
    """Everything the collector needs, all given by `wefperf collector`: its defaults live there
    and in `S3Settings`, not here."""

    host: str
    port: int
    s3_endpoint: str  # empty: start the embedded moto S3
    bucket: str
    access_key: str
    secret_key: str
    flush_interval_secs: float
    max_file_bytes: int
    max_body_bytes: int
    max_pending_bytes: int
    shutdown_timeout_secs: float
    # On SIGINT/SIGTERM, refuse new events (503) but answer the stats for this long before closing,
    # so whoever reads the counts (a load tester's sampler) sees the last of them; 0: close at once.
    drain_secs: float = 0.0
    max_eps: float | None = None  # admit at most this many events a second (admission.py); None: no limit
    metrics_port: int | None = None  # serve Prometheus /metrics on this port (0: a free one); None: off
    # --- WS-Management push mode (wsman_routes.py) and TLS ---
    wsman: bool = False
    wsman_options: SubscriptionOptions = SubscriptionOptions()  # what its one subscription offers
    tls_cert: str = ""  # with tls_key: serve https
    tls_key: str = ""
    client_ca: str = ""  # with TLS: a client certificate signed by this CA is required


async def serve(cfg: TargetConfig) -> ExitCode:
    """Run until SIGINT/SIGTERM; PASSED when every event reached S3, FAILED when some were dropped."""
    moto: MotoServer | None = None
    endpoint = cfg.s3_endpoint
    if not endpoint:
        try:
            moto = await asyncio.to_thread(MotoServer().start)
        except RuntimeError as exc:
            raise TargetError(str(exc)) from None
        endpoint = moto.endpoint
        log.info("embedded S3 (moto) at %s, bucket %s; its contents vanish when the collector stops", endpoint, cfg.bucket)
    try:
        target = S3Target(endpoint, cfg.bucket, cfg.access_key, cfg.secret_key)
        async with s3_client(target) as client:
            if moto is not None:
                await client.create_bucket(Bucket=cfg.bucket)
            try:
                await check_bucket(client, target)
            except S3ConfigError as exc:
                raise TargetError(str(exc)) from None
            return await _serve_http(cfg, client, target)
    finally:
        if moto is not None:
            await asyncio.to_thread(moto.stop)


async def _serve_http(cfg: TargetConfig, client: object, target: S3Target) -> ExitCode:
    raise_open_files()  # a socket per client: 10,000 simulated hosts need 10,000 files
    uploader = Uploader(client, target.bucket, max_pending_bytes=cfg.max_pending_bytes)
    uploader.start()
    sink = Sink(uploader, flush_interval=cfg.flush_interval_secs, max_file_bytes=cfg.max_file_bytes)
    collector = Collector(ThroughputStats(), sink, uploader, target.bucket)
    draining = asyncio.Event()
    middlewares: tuple[object, ...] = (drain_middleware(draining),)
    if cfg.max_eps:
        from .admission import Admission, admission_middleware

        middlewares += (admission_middleware(Admission(cfg.max_eps), collector.stats),)
    app = make_app(collector, max_body_bytes=cfg.max_body_bytes, middlewares=middlewares)
    ssl_context = None
    if cfg.tls_cert:
        from ..wsman.certs import CertError
        from ..wsman.tls import server_context

        try:
            ssl_context = server_context(Path(cfg.tls_cert), Path(cfg.tls_key),
                                         Path(cfg.client_ca) if cfg.client_ca else None)
        except CertError as exc:
            await uploader.close(0)
            raise TargetError(str(exc)) from None
    if cfg.wsman:
        from ..wsman.certs import thumbprint
        from .wsman_routes import WsmanState, add_routes

        # TLS with client certificates: the Subscribe names their CA, as OpenWEC does (read above)
        add_routes(app, WsmanState(options=cfg.wsman_options,
                                   thumbprint=thumbprint(Path(cfg.client_ca)) if cfg.client_ca else ""))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.host, cfg.port, ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        await uploader.close(0)
        if exc.errno == errno.EADDRINUSE:
            raise TargetError(f"port {cfg.port} on {cfg.host} is already in use: stop what uses it or pass another --port") from None
        raise TargetError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}") from None
    metrics_runner = None
    if cfg.metrics_port is not None:
        try:
            metrics_runner = await _start_metrics(cfg, collector)
        except TargetError:
            await runner.cleanup()
            await uploader.close(0)
            raise
    sink.start()
    # Everything alive now (botocore's service models, aiohttp) lives as long as the process: out of
    # the collector's way, so a full collection during the load does not walk it with the loop held.
    gc.freeze()
    # Before the ready line: whoever waits for it may signal us at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    port = runner.addresses[0][1]
    print(f"{READY_PREFIX}{'https' if ssl_context else 'http'}://{cfg.host}:{port}", flush=True)
    if metrics_runner is not None:
        from .metrics import READY_PREFIX as METRICS_PREFIX

        print(f"{METRICS_PREFIX}http://{cfg.host}:{metrics_runner.addresses[0][1]}/metrics", flush=True)
    # In the unit of --max-file-size-mb (MiB), so the number is the one the user gave.
    log.info("writing parquet to s3://%s at %s (flush every %g s, files up to %g MiB)",
             target.bucket, target.endpoint, cfg.flush_interval_secs, cfg.max_file_bytes / (1024 * 1024))
    if cfg.max_eps:
        log.info("admitting at most %s events/s (--max-eps): replies wait for their turn", f"{cfg.max_eps:,g}")

    await stop.wait()
    if cfg.drain_secs > 0:
        draining.set()
        log.info("draining for %g s: new events get 503, the stats still answer", cfg.drain_secs)
        await asyncio.sleep(cfg.drain_secs)
    log.info("stopping: flushing every buffer to S3")
    await runner.cleanup()  # no new requests; in-flight ones finish first
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await sink.close()
    await uploader.close(cfg.shutdown_timeout_secs)
    s = collector.summary()
    log.info(
        "stopped: received %d events (%d unknown) in %d requests; uploaded %d files with %d events to s3://%s;"
        " %d upload retries; dropped %d events",
        s["received_events"], s["unknown_events"], s["requests"], s["uploaded_files"], s["uploaded_events"],
        target.bucket, s["upload_retries"], s["dropped_events"],
    )
    return ExitCode.FAILED if s["dropped_events"] else ExitCode.PASSED


def drain_middleware(draining: asyncio.Event) -> Any:
    """While draining: events and /health answer 503 (and close the connection); stats still answer."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if draining.is_set() and (request.method == "POST" or request.path == "/health"):
            return web.Response(status=503, text="draining: the collector is stopping",
                                headers={"Connection": "close"})
        response: web.StreamResponse = await handler(request)
        return response

    return middleware


async def _start_metrics(cfg: TargetConfig, collector: Collector) -> web.AppRunner:
    """The Prometheus port beside the WEF one, as the real collector has it (9100/9090)."""
    from .metrics import metrics_app

    runner = web.AppRunner(metrics_app(collector), access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.host, cfg.metrics_port).start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise TargetError(f"--metrics-port {cfg.metrics_port} on {cfg.host} is already in use:"
                              " stop what uses it or pass another port") from None
        raise TargetError(f"cannot listen on {cfg.host}:{cfg.metrics_port}: {exc.strerror or exc}") from None
    return runner


def run(cfg: TargetConfig) -> ExitCode:
    """Run `serve` under uvloop when it is importable; user errors become one line and exit code USAGE."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="wefperf collector: %(message)s")
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency off Windows
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(serve(cfg))
    except TargetError as exc:
        sys.stderr.write(f"wefperf collector: error: {exc}\n")
        return ExitCode.USAGE
