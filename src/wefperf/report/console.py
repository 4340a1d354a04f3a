"""The seed's console output, line for line, plus latency, errors and the server's per-type delta."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Callable, TextIO

from ..load.shapes import RateCurve
from ..model import ExitCode, LoadSummary, Percentiles, ProgressInfo
from ..runner.reporter import Reporter
from ..wording import plural

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..model import RunResult, ServerStats

RULE = "=" * 70


# A wait line that says the same as the last one is printed again only after this long.
QUIET_REPEAT_S = 5.0


class ConsoleReporter(Reporter):
    """Plain lines: what a container log, a CI log and a terminal all show the same way."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._clock = clock
        self._s3_said: tuple[str, float] | None = None  # the last S3 wait line's news, and when

    def s3_waiting(self, text: str) -> None:
        """Printed when its news changes (files, events), else at most every QUIET_REPEAT_S.

        The verifier polls every second; only the time left changes while nothing arrives, and a
        log of identical lines hides the ones that matter.
        """
        news, now = text.split("; up to ", 1)[0], self._clock()
        if self._s3_said is None or news != self._s3_said[0] or now - self._s3_said[1] >= QUIET_REPEAT_S:
            self._s3_said = (news, now)
            self._print(text)

    def waiting(self, what: str, limit_s: float) -> None:
        self._s3_said = None

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def line(self, text: str = "") -> None:
        self._print(text)

    def error(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def banner(self, settings: "Settings", run_id: str) -> None:
        for text in banner_lines(settings, run_id):
            self._print(text)

    def progress(self, info: ProgressInfo) -> None:
        self._print(progress_line(info))

    def results(self, result: "RunResult") -> None:
        for text in result_lines(result):
            self._print(text)


def banner_lines(settings: "Settings", run_id: str) -> list[str]:
    lines = [RULE, f"PERFORMANCE TEST: {settings.test_name}", RULE]
    if settings.duration_mode:
        lines.append(f"Test duration: {settings.duration_secs:g} seconds")
        if settings.stages:
            lines.append(f"Expected events: ~{RateCurve.from_stages(settings.stages).total_events:,.0f}")
        elif settings.target_eps:
            lines.append(f"Expected events: ~{settings.duration_secs * settings.target_eps:,.0f}")
    else:
        lines.append(f"Total events: {settings.total_events:,}")
        lines.append(f"Timeout: {settings.timeout_secs:g} seconds")
    if settings.hosts and settings.protocol == "wsman":
        lines.append(f"Simulated hosts: {settings.hosts:,}, each its own connection; a host delivers as its"
                     f" subscription says (MaxElements, at most {plural(settings.max_items, 'event')}; MaxTime)"
                     + (f", and enumerates again every {settings.refresh_secs:g} s" if settings.refresh_secs else ""))
    elif settings.hosts:
        lines.append(
            f"Simulated hosts: {settings.hosts:,}, each its own connection; a host delivers at"
            f" {plural(settings.max_items, 'event')} held or {settings.max_latency_secs:g} s after its oldest"
        )
    else:
        lines.append(f"Batch size: {settings.batch_size}")
    if settings.stages:
        shape = ", ".join(f"{st.duration_s:g} s to {st.target_eps:,.0f}/s" for st in settings.stages)
        lines.append(f"Load shape: {len(settings.stages)} stages ({shape}); they replace the target rate")
    else:
        lines.append(
            f"Target rate: {settings.target_eps:,.0f} events/second" if settings.target_eps else "Target rate: unlimited"
        )
    if settings.thresholds:
        lines.append("Thresholds: " + ", ".join(f"{k}={v:g}" for k, v in settings.thresholds.items()))
    if settings.event_type:
        lines.append(f"Event type: {settings.event_type} (single type)")
    else:
        lines.append("Event type: weighted mix of 4624, 4634, 4672, 4688, 4625")
    lines.append(f"S3 verification: {'Enabled' if settings.verify_s3 else 'Disabled'}")
    # The URL the run sends to: WS-Man hosts start at the subscription manager, not /wsman/events.
    endpoint = settings.subscription_manager_url if settings.protocol == "wsman" else settings.events_url
    lines.append(f"Endpoint: {endpoint}")
    if settings.protocol == "wsman" and settings.client_cert and settings.hosts > 1:
        from ..wsman.certs import shared_cert_line

        lines.append(shared_cert_line(settings.client_cert, settings.hosts))
    if settings.stats_format == "prometheus":
        lines.append(f"Server count: Prometheus counter {settings.stats_metric} at {settings.wef_stats_endpoint}")
    lines.append(f"Run id: {run_id}")
    lines.append("")
    return lines


def progress_line(info: ProgressInfo) -> str:
    """The seed's line (its rate is events sent per second since the start), then what the live view
    adds: acknowledged, failed, requests in flight and the last second's p99."""
    remaining = f"{info.remaining_s:.0f}s" if info.remaining_s is not None else "unknown"
    p99 = f"{info.p99_ms:,.1f} ms" if info.p99_ms is not None else "-"
    running = f" - Processes running: {info.processes_running} of {info.processes}" if info.processes_running is not None else ""
    return (
        f"  Progress: {info.events_sent:,} events sent - Current rate: {info.rate_eps:.1f} events/sec"
        f" - Remaining: {remaining} - Acknowledged: {info.events_acked:,} ({info.acked_rate_eps:.1f}/sec)"
        f" - Failed: {info.events_failed:,} - In flight: {info.in_flight:,} - p99 (last second): {p99}{running}"
    )


def per_type_lines(server: "ServerStats") -> list[str]:
    """The server's counts by EventID beside what the run sent, or why they are missing."""
    if not server.expected_per_type and not server.per_type_delta:
        return []
    if not server.per_type_known:
        return ["", f"Server per-type delta: {server.per_type_unavailable()}"]
    if not server.counts_known:
        return ["", "Server per-type delta: unavailable (the server's /stats/throughput could not be read"
                    " before and after the load; see the note below)"]
    lines = ["", "Server per-type delta by EventID (counted / sent and acknowledged; the server's labels where they"
                 " say more than the EventID):"]
    for row in server.per_event_id():
        name = f"EventID {row.event_id}" if row.event_id is not None else "no EventID"
        want = f"{row.expected:,}" if row.expected is not None else "- (not sent by this run)"
        # A server that labels a type `EventID 4624` (logthing v0.5.0) would only repeat the first column.
        labels = ", ".join(label for label in row.labels if label != name) if row.labels else "(none counted)"
        lines.append(f"  {name:<16} {row.counted:>12,} / {want:<26} {labels}".rstrip())
    return lines


def restart_lines(server: "ServerStats") -> list[str]:
    """Each time the collector restarted (its counters fell), and how long it was out of reach."""
    if not server.restarts:
        return []
    from ..observe.restarts import describe

    lines = ["", f"Collector restarted {plural(len(server.restarts), 'time')} during the run (its counters started"
                 " again from 0; the server's counts here are summed across):"]
    lines.extend(f"  {describe(r.to_dict())}" for r in server.restarts)
    return lines


def hosts_lines(load: "LoadSummary") -> list[str]:
    """What the simulated hosts did: deliveries by trigger, connections, events still held."""
    h = load.hosts
    if h is None:
        return []
    lines = [
        "",
        f"Simulated hosts: {h.hosts:,} ({plural(h.connections, 'connection')} opened,"
        f" {h.hosts_delivering:,} hosts delivered)",
        f"  Deliveries: {h.full_deliveries:,} full ({plural(h.max_items, 'event')}),"
        f" {h.timed_deliveries:,} on max latency ({h.max_latency_s:g} s, fewer events)",
        f"  Events due in the plan: {h.events_due:,}; sent: {load.events_sent:,};"
        + (f" failed unsent ({'no connection or subscription' if load.wsman else 'no connection'}):"
           f" {load.events_unsent:,};" if load.events_unsent else "")
        + f" still held at their hosts when the window closed: {h.events_held:,}",
    ]
    if h.connect_failures:
        lines.append(f"  Hosts that could not connect before the load: {h.connect_failures:,}")
    return lines


def wsman_lines(load: "LoadSummary") -> list[str]:
    """What WS-Management added around the events, and where the subscription and the hosts differ."""
    w = load.wsman
    if w is None:
        return []
    lines = [
        f"WS-Management: {w.enumerations:,} enumerations, {w.envelopes:,} Events envelopes,"
        f" {w.retries:,} retries, {w.wrong_acks:,} wrong Acks, {w.heartbeats:,} heartbeats"
        f" ({w.heartbeats_acked:,} acknowledged)",
    ]
    if w.refreshes or w.refresh_failures:
        lines.append(f"  Refresh: {w.refreshes:,} re-enumerations ({w.refresh_failures:,} failed),"
                     f" {w.bookmarks_behind:,} answered with a bookmark behind the host's last Acked event")
    for a in w.subscriptions:
        elements = "no MaxElements" if a.max_elements is None else f"MaxElements {a.max_elements:,}"
        lines.append(f"  Subscription ({plural(a.hosts, 'host')}): {elements}, MaxTime {a.max_time_s:g} s,"
                     f" Heartbeats {a.heartbeat_s:g} s, MaxEnvelopeSize {a.max_envelope:,} bytes")
    for b in w.batching:
        lines.append(f"  Batching ({plural(b.hosts, 'host')}): at most {plural(b.max_items, 'event')} ({b.items_from}),"
                     f" after {b.max_latency_s:g} s ({b.latency_from})")
    if any(b.items_from == "--max-items" or b.latency_from == "--max-latency-secs" for b in w.batching):
        lines.append("  Note: a Windows forwarder would batch by the subscription's MaxElements and MaxTime;"
                     " the flags given overrode them")
    if w.max_time_s is not None and not w.subscriptions:  # results written before subscriptions were kept
        lines.append(f"  Subscription: Heartbeats {w.heartbeat_s:g} s, MaxTime {w.max_time_s:g} s,"
                     f" MaxEnvelopeSize {w.max_envelope:,} bytes")
    if w.content_format:
        lines.append(f"  ContentFormat {w.content_format}" + (
            ": events carried their RenderingInfo (message, level, task, keywords), as Windows sends them"
            if w.content_format == "RenderedText" else ""))
    return lines


def _pct_line(label: str, p: Percentiles) -> str:
    """One latency row; a row with no sample says n/a (a run where nothing was acknowledged has no
    service time: zeros would read as instant answers)."""
    if not p.count:
        return f"  {label:<26} n/a (no samples)"
    return (
        f"  {label:<26} p50 {p.p50:9.2f}  p90 {p.p90:9.2f}  p99 {p.p99:9.2f}"
        f"  p99.9 {p.p999:9.2f}  max {p.max:9.2f}"
    )


def _across(server: "ServerStats") -> str:
    return f" (summed across {plural(len(server.restarts), 'collector restart')})" if server.restarts else ""


def _unacked(load: LoadSummary) -> str:
    """How many latency samples are not acknowledgements (failed, or never sent)."""
    acked = load.latency_acked.count if load.latency_acked is not None else load.batches_ok
    other = load.latency.count - acked
    return f"; {other:,} failed or never sent, each counted until then" if other > 0 else ""


def result_lines(result: "RunResult") -> list[str]:
    load, server, verdict = result.load, result.server, result.verdict
    received = server.events_received
    lines = [
        "",
        RULE,
        "PERFORMANCE TEST RESULTS",
        RULE,
        f"Total time: {load.elapsed_s:.2f} seconds (load {load.rate_window_s:.2f} s + drain {load.drain_s:.2f} s)",
        f"Events sent: {load.events_sent:,}",
        f"Events acknowledged (2xx): {load.events_ok:,}",
        f"Events failed: {load.events_failed:,}"
        + (f" ({load.events_unsent:,} of them never sent: no connection or subscription)" if load.events_unsent else ""),
        (f"Events received (by server): {received:,}{_across(server)}" if received is not None
         else "Events received (by server): unknown (stats unavailable)"),
        f"Successful batches: {load.batches_ok:,}",
        f"Failed batches: {load.batches_failed:,}",
        "",
        f"Overall ingestion rate: {load.acked_rate_eps:.2f} events/second (acknowledged;"
        f" {load.sent_rate_eps:.2f} sent; over the {load.rate_window_s:.2f} s load window)",
        (
            f"Server processing rate: {load.per_window_s(received):.2f} events/second"
            if received is not None
            else "Server processing rate: unknown"
        ),
        "",
        f"Latency (ms, {plural(load.latency.count, 'batch')} that fell due{_unacked(load)}):",
        _pct_line("from intended send time", load.latency),
        *([_pct_line("  acknowledged only", load.latency_acked)]
          if load.latency_acked is not None and load.latency_acked.count != load.latency.count else []),
        _pct_line("service time", load.service),
        _pct_line("schedule lag", load.schedule_lag),
        f"  Late batches (sent > 10 ms after their time): {load.late_batches:,}",
    ]
    if load.event_latency is not None:
        lines[-1:-1] = [_pct_line("event latency (per event)", load.event_latency)]
        lines.extend(hosts_lines(load))
        lines.extend(wsman_lines(load))
    if load.due_not_sent:
        lines.append(
            f"  Behind schedule: {plural(load.due_not_sent, 'batch')} due but never sent (every sender was busy;"
            " raise PERF_TEST_CONCURRENCY or the server is too slow)"
        )
    if load.errors:
        lines.append("")
        lines.append("Errors by class:")
        for name, cls in sorted(load.errors.items(), key=lambda kv: -kv[1].batches):
            lines.append(f"  {name:<22} {plural(cls.batches, 'batch'):>14}  {plural(cls.events, 'event'):>16}")
            for sample in cls.samples:
                lines.append(f"      e.g. {sample}")
    lines.extend(restart_lines(server))
    lines.extend(per_type_lines(server))
    for note in server.notes:
        lines.append(f"Note: {note}")
    if result.s3 is not None:
        from .s3 import s3_block

        lines.append("")
        lines.extend(s3_block(result.s3))
    else:
        lines.append(RULE)
    lines.append("")
    cfg = result.configuration
    if verdict.passed:
        lines.append("✓ Performance test completed successfully")
    elif verdict.exit_code == ExitCode.INTERRUPTED:
        lines.append("✗ Performance test interrupted (partial results)")
    else:
        lines.append("✗ Performance test failed")
    if load.cut_short:
        why = "interrupted" if load.interrupted else ("aborted" if load.aborted else "timeout reached")
        planned = f" of {cfg['duration_secs']:g}" if cfg.get("duration_secs") else ""
        lines.append(f"  Duration: {load.window_s:.1f}{planned} seconds (cut short: {why})")
    elif cfg.get("duration_secs"):
        lines.append(f"  Duration: {cfg['duration_secs']:g} seconds")
    lines.append(f"  Events sent: {load.events_sent:,}")
    if verdict.target_ratio is not None:
        of_what = f" of what was due in the {load.window_s:.1f} s it ran" if load.cut_short and load.due_events else ""
        lines.append(f"  Target rate maintained: {verdict.target_ratio * 100:.1f}%{of_what}")
    for reason in verdict.reasons:
        lines.append(f"  - {reason}")
    if result.configuration.get("thresholds") and verdict.thresholds:
        lines.append("  Thresholds:")
        lines.extend(f"    {'✓' if j.passed else '✗'} {j.describe()}" for j in verdict.thresholds)
    return lines
