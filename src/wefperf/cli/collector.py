"""`wefperf collector`: the reference WEF collector (docs/contract.md), writing parquet to S3.

Without an S3 endpoint (neither --s3-endpoint nor S3_ENDPOINT) it starts moto's S3 server
mode on a free 127.0.0.1 port. S3 settings come from the shared model (wefperf.config.settings):
flags win over S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..config.rules import ConfigError
from ..config.settings import DEFAULTS
from ..model import ExitCode
from ..wsman.options import CONTENT_FORMATS, SubscriptionOptions
from .s3flags import add_s3_arguments, s3_settings

MB = 1024 * 1024
# A subscription option (as wsman/options.py names it in its messages) -> the flag that sets it.
_OPTION_FLAGS = {
    "Heartbeats": "--heartbeat-secs", "MaxTime": "--max-time-secs", "MaxElements": "--max-elements",
    "ContentFormat": "--content-format", "ConnectionRetry": "--connection-retry-count/--connection-retry-secs",
}


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
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
    add_s3_arguments(p, endpoint_default="none: an embedded moto S3 on 127.0.0.1")
    p.add_argument("--flush-interval-secs", type=float, default=DEFAULTS.flush_interval_secs,
                   help=f"write each partition's buffer this often (default {DEFAULTS.flush_interval_secs:g})")
    p.add_argument("--max-file-size-mb", type=float, default=DEFAULTS.max_file_size_mb,
                   help=f"largest parquet file, in MiB (default {DEFAULTS.max_file_size_mb:g})")
    p.add_argument("--max-body-mb", type=float, default=64.0, help="larger request bodies get 413 (default 64 MiB)")
    p.add_argument("--max-pending-mb", type=float, default=512.0,
                   help="parquet waiting for S3 beyond this is dropped and counted (default 512 MiB)")
    p.add_argument("--shutdown-timeout-secs", type=float, default=30.0,
                   help="how long to keep retrying S3 at shutdown before counting files as dropped (default 30)")
    p.add_argument("--drain-secs", type=float, default=0.0, metavar="SECS",
                   help="on SIGINT/SIGTERM, answer new events 503 but keep serving the stats this long before"
                        " closing, so a load tester's last read sees every count (default 0: close at once)")
    p.add_argument("--max-eps", type=float, default=None, metavar="N",
                   help="admit at most N events/s: each request's events reserve their share of one admission"
                        " clock and the reply waits for its turn, like a collector with that capacity (default: no limit)")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="also serve Prometheus /metrics on this port (0 picks a free one), as the real collector"
                        " does on 9100/9090: wefperf_collector_events_received_total{event_type} and more"
                        " (default: off)")
    # --- WS-Management push mode and TLS (docs/wsman.md) ---
    p.add_argument("--wsman", action="store_true",
                   help="also speak WEF push mode: Enumerate on any other POST path, Events and Heartbeat on"
                        " /wsman/subscriptions/<GUID>, each answered with an Ack")
    # What the one subscription offers; defaults as OpenWEC's (wsman/options.py).
    d = SubscriptionOptions()
    p.add_argument("--heartbeat-secs", type=float, default=d.heartbeat_s,
                   help=f"with --wsman: the Heartbeats interval the subscription asks for (default {d.heartbeat_s:g})")
    p.add_argument("--max-time-secs", type=float, default=d.max_time_s,
                   help="with --wsman: the subscription's MaxTime, how long a client may hold events before it"
                        f" delivers them (default {d.max_time_s:g})")
    p.add_argument("--max-elements", type=int, default=None, metavar="N",
                   help="with --wsman: the subscription's MaxElements, the most events a client puts in one"
                        " delivery (default: none offered, as OpenWEC)")
    p.add_argument("--content-format", choices=CONTENT_FORMATS, default=d.content_format,
                   help="with --wsman: the subscription's ContentFormat; RenderedText asks clients to add each"
                        f" event's RenderingInfo (its message) (default {d.content_format}, as OpenWEC)")
    p.add_argument("--connection-retry-count", type=int, default=d.retry_total, metavar="N",
                   help=f"with --wsman: ConnectionRetry's Total, how often a client retries (default {d.retry_total})")
    p.add_argument("--connection-retry-secs", type=float, default=d.retry_s, metavar="SECS",
                   help=f"with --wsman: ConnectionRetry's interval (default {d.retry_s:g})")
    p.add_argument("--tls-cert", default="", help="PEM server certificate: serve https (with --tls-key)")
    p.add_argument("--tls-key", default="", help="PEM key of --tls-cert")
    p.add_argument("--client-ca", default="",
                   help="with --tls-cert: require a client certificate signed by this CA (PEM); its CN names the host")
    p.set_defaults(handler=_run)


def _fail(message: str) -> ExitCode:
    sys.stderr.write(f"wefperf collector: error: {message}\n")
    return ExitCode.USAGE


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "renamed", False):
        sys.stderr.write("wefperf: `wefperf target` is now `wefperf collector`; the old name goes in a later release\n")
    try:
        s3 = s3_settings(args)
    except ConfigError as exc:
        return _fail(str(exc))
    if not 0 <= args.port <= 65535:
        return _fail(f"--port must be between 0 and 65535 (got {args.port})")
    for name in ("flush_interval_secs", "shutdown_timeout_secs", "drain_secs"):
        if getattr(args, name) < 0:
            return _fail(f"--{name.replace('_', '-')} must be 0 or more")
    for name in ("max_file_size_mb", "max_body_mb", "max_pending_mb"):
        if getattr(args, name) <= 0:
            return _fail(f"--{name.replace('_', '-')} must be more than 0")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        return _fail(f"--metrics-port must be between 0 and 65535 (got {args.metrics_port})")
    if args.metrics_port is not None and args.metrics_port == args.port != 0:
        return _fail(f"--metrics-port must differ from --port (both {args.port})")
    if args.max_eps is not None and not (0 < args.max_eps < float("inf")):
        return _fail(f"--max-eps must be more than 0 (got {args.max_eps:g})")
    if bool(args.tls_cert) != bool(args.tls_key):
        return _fail("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        return _fail("--client-ca needs --tls-cert and --tls-key")
    try:
        options = SubscriptionOptions(
            heartbeat_s=args.heartbeat_secs, max_time_s=args.max_time_secs, max_elements=args.max_elements,
            content_format=args.content_format, retry_total=args.connection_retry_count,
            retry_s=args.connection_retry_secs,
        ).check()
    except ValueError as exc:
        option = str(exc).split(" ", 1)[0]
        return _fail(f"{_OPTION_FLAGS.get(option, 'the subscription')}: {exc}")
    try:
        from ..collector.service import TargetConfig, run
    except ImportError as exc:
        return _fail(f"the reference collector needs {exc.name}: pip install 'wefperf[collector]'")
    cfg = TargetConfig(
        host=args.host,
        port=args.port,
        # Neither flag nor variable named an endpoint: the collector starts its own (moto).
        s3_endpoint=s3.s3_endpoint if "s3_endpoint" in s3.model_fields_set else "",
        bucket=s3.s3_bucket,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        flush_interval_secs=args.flush_interval_secs,
        max_file_bytes=int(args.max_file_size_mb * MB),
        max_body_bytes=int(args.max_body_mb * MB),
        max_pending_bytes=int(args.max_pending_mb * MB),
        shutdown_timeout_secs=args.shutdown_timeout_secs,
        drain_secs=args.drain_secs,
        max_eps=args.max_eps,
        metrics_port=args.metrics_port,
        wsman=args.wsman,
        wsman_options=options,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
    )
    return run(cfg)
