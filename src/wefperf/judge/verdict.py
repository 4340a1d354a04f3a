"""Pass or fail, with the reasons: the seed's rules as default thresholds, then the user's.

The seed passed a run that held 95 % of its target with no failed batch; those are the
`achieved_ratio` and `error_ratio` thresholds unless the user sets them. A count-mode run
must also send its events before the timeout, and the S3 check must pass when it ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..load.shapes import RateCurve
from ..model import ExitCode, LoadSummary, ServerStats
from ..model import S3Figures as S3Figures
from ..model import Verdict as Verdict
from ..wording import plural
from .thresholds import Measures
from .thresholds import judge as judge_thresholds

if TYPE_CHECKING:
    from ..config.settings import Settings


def judge(settings: Settings, load: LoadSummary, s3: S3Figures | bool | None, *,
          server: ServerStats | None = None, unavailable: str | None = None) -> Verdict:
    """Every threshold with its measured value, and the reasons for a failure."""
    if isinstance(s3, bool):
        s3 = S3Figures(s3)
    if unavailable:
        return Verdict(False, ExitCode.FAILED, [unavailable])
    reasons: list[str] = []
    share, shortfall = _achieved(settings, load)
    if not settings.duration_mode:
        sent_share = load.events_sent / settings.total_events if settings.total_events else 1.0
        if sent_share < settings.pass_ratio and not load.interrupted:
            why = f"timeout reached after {settings.timeout_secs:g} seconds: " if load.timed_out else ""
            reasons.append(f"{why}sent {load.events_sent:,} of {settings.total_events:,} events"
                           f" ({sent_share:.1%}); {settings.pass_ratio:.0%} needed")
    judged = judge_thresholds(settings.effective_thresholds(), measures(load, share, server, s3))
    for j in judged:
        if j.passed:
            continue
        if j.name == "achieved_ratio" and shortfall and j.measured is not None:
            reasons.append(f"{shortfall}; {j.limit:.0%} needed")
        elif j.name == "error_ratio" and load.batches_failed:
            classes = ", ".join(f"{name} x{cls.batches}" for name, cls in sorted(load.errors.items()))
            reasons.append(f"{plural(load.batches_failed, 'batch')} failed ({classes}); {j.describe()}")
        else:
            reasons.append(j.describe())
    if s3 is not None and not s3.passed:
        reasons.append("S3 verification failed")
    nobody = _no_host_delivered(load)
    if nobody:
        reasons.insert(0, nobody)
    if load.aborted:
        reasons.insert(0, f"aborted: {load.aborted}")
    if load.interrupted:
        return Verdict(False, ExitCode.INTERRUPTED, ["interrupted"] + reasons, share, judged)
    return Verdict(not reasons, ExitCode.PASSED if not reasons else ExitCode.FAILED, reasons, share, judged)


def _no_host_delivered(load: LoadSummary) -> str:
    """Simulated hosts of which none wrote a delivery though some were due: why, in one line."""
    h = load.hosts
    if h is None or h.hosts_delivering or not load.events_unsent:
        return ""
    verb = "enumerate" if load.wsman is not None else "connect"
    classes = ", ".join(f"{name} x{cls.batches}" for name, cls in sorted(load.errors.items()))
    before = f"; {h.connect_failures:,} of {h.hosts:,} hosts could not {verb} before the load" if h.connect_failures else ""
    return f"no host sent a delivery ({classes}){before}"


def measures(load: LoadSummary, achieved: float | None, server: ServerStats | None, s3: S3Figures | None) -> Measures:
    """The figures the thresholds look at, from what the run measured."""
    # With simulated hosts the latency thresholds judge each event, from when it became due.
    lat = load.event_latency if load.event_latency is not None else load.latency
    counted = lat.count > 0
    missing_at_server: float | None = None
    if server is not None and server.counts_known and not server.per_type_known:
        # A total only (a Prometheus counter): what was acknowledged and not counted.
        missing_at_server = float(max(load.events_ok - (server.events_received or 0), 0))
    elif server is not None and server.counts_known:
        missing_at_server = sum(max((r.expected or 0) - r.counted, 0) for r in server.per_event_id()
                                if r.event_id is not None)
    return Measures(
        latency_p50_ms=lat.p50 if counted else None,
        latency_p99_ms=lat.p99 if counted else None,
        latency_p999_ms=lat.p999 if counted else None,
        schedule_lag_p99_ms=load.schedule_lag.p99 if load.schedule_lag.count else None,
        error_ratio=load.error_ratio,
        achieved_ratio=achieved,
        server_missing_events=missing_at_server,
        s3_missing_events=None if s3 is None or s3.missing is None else float(s3.missing),
        s3_duplicated_events=None if s3 is None or s3.duplicated is None else float(s3.duplicated),
    )


def _achieved(settings: Settings, load: LoadSummary) -> tuple[float | None, str]:
    """The share of the plan held, and how to say it when it falls short; (None, "") without a rate.

    Ingested means acknowledged: a refused batch was sent, but it was not taken. A run cut
    short, and any duration or staged run, is judged on the events its plan had due in the
    window it ran; a count-mode run on its rate over the whole run (with simulated hosts, on its events due).
    """
    if not settings.rate_limited:
        return None, ""
    # Simulated hosts deliver each event up to max-latency after it was due, so their count-mode
    # runs too are judged on the events due, not on a rate over a window that includes the wait.
    if (load.cut_short or settings.duration_mode or load.hosts is not None) and load.due_events is not None:
        if load.due_events == 0 and load.cut_short:
            # Stopped before anything fell due (no host could subscribe, say): there is no rate to judge,
            # and 0 of 0 is not "100 % held". The reason the run stopped says what happened.
            return None, ""
        if load.due_events == 0:  # sparse Poisson arrivals can give a short hosts run no event at all
            return 1.0, "no event was due in the plan, so none was owed"
        share = load.events_ok / load.due_events
        if load.cut_short and load.hosts is not None:
            window = (f"in the {load.window_s:.1f} s the run lasted (a host holds an event up to"
                      f" {load.hosts.max_latency_s:g} s)")
        elif load.cut_short:
            window = f"in the {load.window_s:.1f} s the run lasted"
        elif settings.duration_mode:
            window = f"by the plan ({settings.duration_secs:g} s)"
        else:
            window = "by the plan"
        return share, f"{load.events_ok:,} events acknowledged, {share:.1%} of the {load.due_events:,} due {window}"
    if settings.duration_mode:
        expected = (RateCurve.from_stages(settings.stages).total_events if settings.stages
                    else settings.duration_secs * settings.target_eps)
        share = load.events_ok / expected
        return share, (f"{load.events_ok:,} events acknowledged, {share:.1%} of the {expected:,.0f} expected"
                       f" ({settings.duration_secs:g} s x {settings.target_eps:,.0f}/s)")
    achieved = load.acked_rate_eps  # over the load window, the same figure the reports show
    share = achieved / settings.target_eps
    return share, f"achieved {achieved:,.0f} events/s, {share:.1%} of the {settings.target_eps:,.0f}/s target"
