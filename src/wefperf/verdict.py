"""Pass or fail, with the reasons, from the seed's thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

from .metrics import LoadSummary
from .settings import Settings

EXIT_PASS, EXIT_FAIL, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(frozen=True)
class Verdict:
    passed: bool
    exit_code: int
    reasons: list[str] = field(default_factory=list)
    # The share of the target that was held (None when no target applies).
    target_ratio: float | None = None
    achieved_eps: float = 0.0


def judge(settings: Settings, load: LoadSummary, s3_passed: bool | None, *, unavailable: str | None = None) -> Verdict:
    """Duration mode: sent ≥ ratio × duration × target. Count mode: ≥ ratio of the events
    sent before the timeout and, with a target, achieved rate ≥ ratio × target.
    Always: no failed batch, and S3 verification passed when it ran."""
    reasons: list[str] = []
    ratio = settings.pass_ratio
    achieved = load.events_sent / load.elapsed_s if load.elapsed_s > 0 else 0.0
    target_ratio: float | None = None
    if unavailable:
        reasons.append(unavailable)
    elif settings.duration_mode:
        if settings.target_eps > 0:
            expected = settings.duration_secs * settings.target_eps
            target_ratio = load.events_sent / expected
            if target_ratio < ratio:
                reasons.append(
                    f"sent {load.events_sent:,} events, {target_ratio:.1%} of the {expected:,.0f} expected"
                    f" ({settings.duration_secs:g} s x {settings.target_eps:,.0f}/s); {ratio:.0%} needed"
                )
    else:
        sent_share = load.events_sent / settings.total_events if settings.total_events else 1.0
        if sent_share < ratio:
            why = f"timeout reached after {settings.timeout_secs:g} seconds: " if load.timed_out else ""
            reasons.append(
                f"{why}sent {load.events_sent:,} of {settings.total_events:,} events ({sent_share:.1%}); {ratio:.0%} needed"
            )
        if settings.target_eps > 0:
            target_ratio = achieved / settings.target_eps
            if target_ratio < ratio:
                reasons.append(
                    f"achieved {achieved:,.0f} events/s, {target_ratio:.1%} of the {settings.target_eps:,.0f}/s target;"
                    f" {ratio:.0%} needed"
                )
    if load.batches_failed:
        classes = ", ".join(f"{name} x{cls.batches}" for name, cls in sorted(load.errors.items()))
        reasons.append(f"{load.batches_failed:,} batch(es) failed ({classes})")
    if s3_passed is False:
        reasons.append("S3 verification failed")
    if load.interrupted:
        return Verdict(False, EXIT_INTERRUPTED, ["interrupted"] + reasons, target_ratio, achieved)
    return Verdict(not reasons, EXIT_PASS if not reasons else EXIT_FAIL, reasons, target_ratio, achieved)
