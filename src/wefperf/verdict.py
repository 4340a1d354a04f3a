"""Pass or fail, with the reasons, from the seed's thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

from .exitcodes import ExitCode
from .metrics import LoadSummary
from .settings import Settings
from .wording import plural


@dataclass(frozen=True)
class Verdict:
    passed: bool
    exit_code: ExitCode
    reasons: list[str] = field(default_factory=list)
    # The share of the target that was held (None when no target applies).
    target_ratio: float | None = None
    achieved_eps: float = 0.0


def judge(settings: Settings, load: LoadSummary, s3_passed: bool | None, *, unavailable: str | None = None) -> Verdict:
    """Duration mode: sent ≥ ratio × duration × target. Count mode: ≥ ratio of the events
    sent before the timeout and, with a target, achieved rate ≥ ratio × target. A run cut
    short (interrupted, timed out) is judged on what its plan had due in the window it ran.
    Always: no failed batch, and S3 verification passed when it ran."""
    reasons: list[str] = []
    ratio = settings.pass_ratio
    # Ingested means acknowledged: a refused batch was sent, but it was not taken.
    achieved = load.events_ok / load.elapsed_s if load.elapsed_s > 0 else 0.0
    target_ratio: float | None = None
    if unavailable:
        reasons.append(unavailable)
    else:
        if not settings.duration_mode:
            sent_share = load.events_sent / settings.total_events if settings.total_events else 1.0
            if sent_share < ratio and not load.interrupted:
                why = f"timeout reached after {settings.timeout_secs:g} seconds: " if load.timed_out else ""
                reasons.append(f"{why}sent {load.events_sent:,} of {settings.total_events:,} events"
                               f" ({sent_share:.1%}); {ratio:.0%} needed")
        if settings.target_eps > 0:
            target_ratio, why_not = _rate(settings, load, achieved)
            if target_ratio < ratio:
                reasons.append(f"{why_not}; {ratio:.0%} needed")
    if load.batches_failed:
        classes = ", ".join(f"{name} x{cls.batches}" for name, cls in sorted(load.errors.items()))
        reasons.append(f"{plural(load.batches_failed, 'batch')} failed ({classes})")
    if s3_passed is False:
        reasons.append("S3 verification failed")
    if load.interrupted:
        return Verdict(False, ExitCode.INTERRUPTED, ["interrupted"] + reasons, target_ratio, achieved)
    return Verdict(not reasons, ExitCode.PASSED if not reasons else ExitCode.FAILED, reasons, target_ratio, achieved)


def _rate(settings: Settings, load: LoadSummary, achieved: float) -> tuple[float, str]:
    """The share of the target held, and how to say it when it falls short."""
    if load.cut_short and load.due_events:
        share = load.events_ok / load.due_events
        return share, (f"{load.events_ok:,} events acknowledged, {share:.1%} of the {load.due_events:,} due"
                       f" in the {load.window_s:.1f} s the run lasted")
    if settings.duration_mode:
        expected = settings.duration_secs * settings.target_eps
        share = load.events_ok / expected
        return share, (f"{load.events_ok:,} events acknowledged, {share:.1%} of the {expected:,.0f} expected"
                       f" ({settings.duration_secs:g} s x {settings.target_eps:,.0f}/s)")
    share = achieved / settings.target_eps
    return share, (f"achieved {achieved:,.0f} events/s, {share:.1%} of the {settings.target_eps:,.0f}/s target")
