"""`wefperf run`: settings from flags, -e NAME=VALUE, the environment and a profile; then the runner."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from ..config.help import field_help
from ..config.limits import ensure_open_files_for_hosts
from ..config.loading import load_settings
from ..config.rules import ConfigError, base_url
from ..config.settings import ENV_NAMES, SECRET_FIELDS, S3Settings, Settings
from ..model import ExitCode

if TYPE_CHECKING:
    from ..capacity.runs import CapacityResult
    from ..model import RunResult
    from ..runner.reporter import Reporter

PROFILE_ENV = "PERF_TEST_PROFILE"
EMBEDDED_STATS_STANDIN = "http://127.0.0.1/replaced-by-the-embedded-stack"
# Settings with a flag of their own name, the run's before the S3 ones; credentials only from
# the environment, the results path as --results, the report path as --report, no_live as --no-live.
_FLAGGED = [
    name
    for name in sorted(Settings.model_fields, key=lambda n: n in S3Settings.model_fields)
    if name not in SECRET_FIELDS and name not in ("results_path", "thresholds", "report_path", "no_live")
]
_BOOL_FIELDS = {name for name, field in Settings.model_fields.items() if field.annotation is bool}


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "run",
        help="run a load test",
        description="Run a load test. Precedence: flag > -e NAME=VALUE / environment > profile > default.",
    )
    add_run_arguments(p)


def add_run_arguments(p: argparse.ArgumentParser, *, profile_default: str | None = None) -> None:
    """Every setting's flag; `profile_default` replaces PERF_TEST_PROFILE as the profile when none is given."""
    where = f"default {profile_default}" if profile_default else f"env {PROFILE_ENV}"
    p.add_argument("--profile", default=profile_default, help=f"built-in profile name or a .toml path ({where})")
    p.add_argument("--results", default=None, metavar="PATH", help=_help("results_path"))
    p.add_argument("--report", dest="set_report_path", default=None, metavar="PATH", help=_help("report_path"))
    p.add_argument("--no-live", dest="set_no_live", action="store_const", const=True, default=None,
                   help=_help("no_live"))
    p.add_argument("--embedded", action="store_true", help="start the reference collector and an embedded S3, run against them")
    p.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE", help="set a setting by its environment name")
    p.add_argument("--threshold", dest="threshold", action="append", default=[], metavar="NAME=VALUE",
                   help="an SLO threshold, repeatable: " + _help("thresholds"))
    for field in _FLAGGED:
        flag = "--" + field.replace("_", "-")
        if field in _BOOL_FIELDS:
            p.add_argument(flag, dest=f"set_{field}", action=argparse.BooleanOptionalAction, default=None,
                           help=_help(field))
        else:
            p.add_argument(flag, dest=f"set_{field}", default=None, metavar=_metavar(field), help=_help(field))
    p.set_defaults(handler=handle_run)


def _metavar(field: str) -> str:
    if Settings.model_fields[field].annotation in (int, float):
        return "N"
    return "URL" if field.endswith("endpoint") else "TEXT"


def _help(field: str) -> str:
    return field_help(field).replace("%", "%%")  # argparse formats help with %


def _environment(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    known = {name.upper() for name in ENV_NAMES.values()} | {PROFILE_ENV}
    env = dict(os.environ)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"-e {pair!r}: expected NAME=VALUE")
        if name.upper() not in known:
            raise ConfigError(f"-e {name}: not a setting wefperf reads (see `wefperf run --help`)")
        env[name.upper()] = value
    return env


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, str | None]:
    environ = _environment(args.env)
    profile = args.profile or (environ or os.environ).get(PROFILE_ENV) or None
    flags: dict[str, Any] = {
        key.removeprefix("set_"): value for key, value in vars(args).items() if key.startswith("set_") and value is not None
    }
    if args.results:
        flags["results_path"] = args.results
    if args.threshold:
        flags["thresholds"] = ",".join(args.threshold)
    if getattr(args, "embedded", False):
        # The embedded stack says where its stats are once it is up; until then, a stand-in.
        flags["wef_stats_endpoint"] = EMBEDDED_STATS_STANDIN
    settings = load_settings(profile, flags, environ)
    if settings.results_dir:
        settings = settings.model_copy(update={"results_path": timestamped_path(settings.results_dir, profile)})
    if settings.report_path == "auto":
        from ..report.html import report_beside

        settings = settings.model_copy(update={"report_path": report_beside(settings.results_path)})
    return settings, profile


def timestamped_path(folder: str, profile: str | None) -> str:
    """`DIR/wefperf-20261128T101500Z-sustained-10k.json`: every run keeps its own file."""
    import datetime as dt
    from pathlib import Path

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")[:-4] + "Z"
    label = Path(profile).stem if profile else "run"
    return str(Path(folder) / f"wefperf-{stamp}-{label}.json")


def handle_run(args: argparse.Namespace) -> int:
    try:
        settings, profile = settings_from_args(args)
        if settings.embedded_subscription and not args.embedded:
            raise ConfigError("PERF_TEST_EMBEDDED_SUBSCRIPTION (--embedded-subscription) sets what the embedded"
                              " collector offers: give it with --embedded")
        check_results_path(settings.results_path)
        if settings.report_path:
            check_output_path(settings.report_path, "report_path", "--report")
        ensure_open_files_for_hosts(settings.hosts)
        from ..runner.segments import check_start_at

        check_start_at(settings)
    except ConfigError as exc:
        print(f"wefperf: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return run_loop(_main(settings, profile, args.embedded))


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """uvloop when it is installed; only its import is guarded, never the run itself."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a declared dependency off Windows
        return asyncio.run(main)
    return uvloop.run(main)


def check_results_path(path: str) -> None:
    """Before any load: a results file that cannot be written would throw the whole test away."""
    check_output_path(path, "results_path", "--results")


def check_output_path(path: str, field: str, flag: str) -> None:
    from ..report.results_json import check_writable

    try:
        check_writable(path)
    except OSError as exc:
        raise ConfigError(f"{ENV_NAMES[field]} / {flag}: cannot write {path}: {exc.strerror or exc}") from None


def make_reporter(settings: Settings) -> Reporter:
    """The live view on a terminal; today's plain lines anywhere else, or with --no-live.

    A --processes parent shows its children's merged progress the same way (scaleout/processes.py).
    """
    from ..report.console import ConsoleReporter

    if os.environ.get("WEFPERF_PROGRESS_JSON") == "1":  # a child of --processes: progress for the parent
        from ..scaleout.processes import ProgressPrinter

        return ProgressPrinter()
    if settings.no_live or not sys.stdout.isatty() or os.environ.get("TERM") == "dumb":
        return ConsoleReporter()
    from ..report.live import LiveReporter

    return LiveReporter()


async def _main(settings: Settings, profile: str | None, embedded: bool) -> int:
    from ..runner.phases import run_test

    stop = stop_on_signals()
    reporter = make_reporter(settings)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(reporter.close)  # a live view gives the terminal back, whatever happens
        if embedded:
            stopped, against = await embedded_unless_stopped(stack, settings, reporter, stop)
            if stopped:
                result = stopped_before_start(settings, profile, "starting the embedded collector")
                reporter.line("Interrupted while starting the embedded collector: nothing was sent")
                return finish(result, settings.results_path, interrupted=True, report=settings.report_path)
            if against is None:
                return ExitCode.USAGE
            settings = against
        try:
            if settings.process_count > 1:
                from ..scaleout.processes import run_processes

                result, interrupted = await run_processes(settings, reporter=reporter, stop=stop, profile=profile)
                return finish(result, settings.results_path, interrupted=interrupted, report=settings.report_path)
            result = await run_test(settings, reporter=reporter, stop=stop, profile=profile, freeze_gc=True)
        except ConfigError as exc:  # e.g. --start-at, checked above, slipped out of the run while it started
            print(f"wefperf: configuration error: {exc}", file=sys.stderr)
            return ExitCode.USAGE
        except asyncio.CancelledError:
            print("wefperf: interrupted twice; no results written", file=sys.stderr)
            return ExitCode.INTERRUPTED
    code = finish(result, settings.results_path, interrupted=stop.is_set(), report=settings.report_path)
    if settings.shard_results and result.shard is not None and result.exit_code != ExitCode.USAGE:
        code = await _store_shard(result, settings) or code  # refused before the load: nothing to merge
    return code


async def _store_shard(result: RunResult, settings: Settings) -> int:
    """--shard-results: this segment's results beside the other segments', for `wefperf merge`."""
    from ..scaleout.shards import ShardError, store_shard
    from ..verify.s3client import S3Failure

    try:
        where = await store_shard(result.to_dict(), settings.shard_results, settings)
    except (ShardError, S3Failure, OSError) as exc:
        print(f"wefperf: could not store the segment's results under {settings.shard_results}: {exc}",
              file=sys.stderr)
        return ExitCode.FAILED
    print(f"Segment results stored at {where}")
    return 0


def stop_on_signals() -> asyncio.Event:
    """An event Ctrl-C and SIGTERM set; a second one cancels the running task (gives up on the drain)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main_task is not None:
            main_task.cancel()  # a second Ctrl-C: give up on the drain
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    return stop


def stopped_before_start(settings: Settings, profile: str | None, phase: str) -> RunResult:
    """The result of a run stopped before its first phase: nothing sent, and where it stopped."""
    from ..runner.outcome import empty_result

    return empty_result(settings, profile, phase)


def finish(result: RunResult | CapacityResult, path: str, *, interrupted: bool = False, report: str = "") -> int:
    """Write the results file (and the HTML report) and give the exit code: never success without them."""
    from ..report.results_json import write_results

    code = ExitCode.INTERRUPTED if interrupted else result.exit_code
    try:
        written = write_results(result, path)
    except OSError as exc:
        print(f"wefperf: could not write results to {path}: {exc.strerror or exc}", file=sys.stderr)
        # The path passed the check before the load, so something changed since: a harness
        # reading the file would find nothing, so a passed run is not reported as passed.
        return code or ExitCode.USAGE
    print(f"\nResults written to {written}")
    if report:
        from ..report.html import write_report

        try:
            shown = write_report(result.to_dict(), report)
        except OSError as exc:
            print(f"wefperf: could not write the report to {report}: {exc.strerror or exc}", file=sys.stderr)
            return code or ExitCode.USAGE
        print(f"Report written to {shown}")
    return code


async def embedded_unless_stopped(
    stack: contextlib.AsyncExitStack, settings: Settings, reporter: Any, stop: asyncio.Event
) -> tuple[bool, Settings | None]:
    """Start the embedded stack, unless a stop request comes first: (stopped, settings against it)."""
    starting = asyncio.ensure_future(_embedded(stack, settings, reporter))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return True, None
    return False, starting.result()


async def _embedded(stack: contextlib.AsyncExitStack, settings: Settings, reporter: Any) -> Settings | None:
    try:
        from ..collector.embedded import embedded_stack
    except ImportError as exc:
        print(f"wefperf: --embedded needs {exc.name}: pip install 'wefperf[collector]'", file=sys.stderr)
        return None

    wsman = settings.protocol == "wsman"
    try:
        tls, health_ssl = _embedded_tls(stack, settings) if wsman and settings.client_ca_cert else (None, True)
        ends = await stack.enter_async_context(
            embedded_stack(
                flush_interval_secs=settings.flush_interval_secs,
                max_file_size_mb=settings.max_file_size_mb,
                bucket=settings.s3_bucket,
                metrics=settings.stats_format == "prometheus",
                wsman=wsman, tls=tls, health_ssl=health_ssl, subscription=settings.embedded_options if wsman else None,
            )
        )
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"wefperf: could not start the embedded collector: {exc}", file=sys.stderr)
        return None
    shown = base_url(ends.wef_endpoint) + "/wsman/SubscriptionManager/WEC (WS-Management)" if wsman else ends.wef_endpoint
    reporter.line(f"Embedded reference collector at {shown}, S3 at {ends.s3_endpoint}")
    if wsman:
        reporter.line(f"  Its subscription offers: {settings.embedded_options.describe()}")
    extra: dict[str, Any] = {"tls_ca": settings.client_ca_cert} if tls else {}
    prometheus = settings.stats_format == "prometheus"
    return settings.model_copy(
        update={
            **extra,
            "wef_endpoint": ends.wef_endpoint,
            # With prometheus stats, its /metrics port and its counter (the health check follows the URL).
            "wef_stats_endpoint": ends.metrics_endpoint if prometheus else base_url(ends.wef_endpoint) + "/stats/throughput",
            **({"stats_metric": "wefperf_collector_events_received_total"} if prometheus else {}),
            "s3_endpoint": ends.s3_endpoint,
            "s3_bucket": ends.bucket,
            "aws_access_key_id": SecretStr(ends.access_key),
            "aws_secret_access_key": SecretStr(ends.secret_key),
        }
    )


def _embedded_tls(stack: contextlib.ExitStack | contextlib.AsyncExitStack, settings: Settings) -> tuple[tuple[str, str, str], Any]:
    """wsman with a client CA: the embedded collector serves https with a certificate that CA signs
    (so PERF_TEST_TLS_CA is that CA) and requires client certificates from it."""
    import tempfile
    from pathlib import Path

    from ..wsman import certs
    from ..wsman.tls import client_context

    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wefperf-tls-")))
    ca = certs.load_issuer(Path(settings.client_ca_cert), Path(settings.client_ca_key))
    cert, key = certs.issue(ca, "127.0.0.1", server_names=("127.0.0.1", "localhost"))
    server = certs.write_pair(cert, key, folder / "server.crt", folder / "server.key")
    cert, key = certs.issue(ca, "wefperf-observer")
    observer = certs.write_pair(cert, key, folder / "observer.crt", folder / "observer.key")
    health = client_context(verify=True, ca_file=settings.client_ca_cert, pair=observer)
    return (str(server.cert), str(server.key), settings.client_ca_cert), health
