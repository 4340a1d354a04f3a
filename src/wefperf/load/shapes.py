"""Load shapes: the target rate over time, and when the plan has the N-th event due.

A shape is a chain of segments whose rate moves linearly from one value to the next, as in
k6's ramping-arrival-rate: `--stages 5:5000,5:20000` ramps 0 → 5,000/s over 5 s, then
5,000 → 20,000/s over 5 s. A constant rate is one flat segment. A batch is due when the
integral of the rate reaches its first event, so the arrival pattern follows the curve
exactly and latency can still be measured from each batch's intended time.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """Ramp linearly from the previous stage's rate (0 before the first) to `target_eps`."""

    duration_s: float
    target_eps: float


def parse_stages(text: str) -> list[Stage]:
    """`SECS:EPS,SECS:EPS,...` as the user writes it; ValueError names the bad part."""
    stages: list[Stage] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        secs, sep, eps = part.partition(":")
        if not sep:
            raise ValueError(f"stage {part!r} is not SECS:EPS (e.g. 30:5000)")
        try:
            stage = Stage(float(secs), float(eps.replace("_", "")))
        except ValueError:
            raise ValueError(f"stage {part!r}: SECS and EPS must be numbers") from None
        if not (math.isfinite(stage.duration_s) and stage.duration_s > 0):
            raise ValueError(f"stage {part!r}: its duration must be more than 0 seconds")
        if not (math.isfinite(stage.target_eps) and stage.target_eps >= 0):
            raise ValueError(f"stage {part!r}: its rate must be 0 or more events/s")
        stages.append(stage)
    if not stages:
        raise ValueError("no stages given (expected SECS:EPS,SECS:EPS,...)")
    if all(s.target_eps == 0 for s in stages):
        raise ValueError("every stage has rate 0: nothing would be sent")
    return stages


def format_stages(stages: list[Stage]) -> str:
    return ",".join(f"{s.duration_s:g}:{s.target_eps:g}" for s in stages)


@dataclass(frozen=True)
class _Segment:
    start_s: float
    duration_s: float
    from_eps: float
    to_eps: float
    events_before: float

    @property
    def slope(self) -> float:
        return (self.to_eps - self.from_eps) / self.duration_s

    @property
    def events(self) -> float:
        return (self.from_eps + self.to_eps) / 2 * self.duration_s


class RateCurve:
    """The plan's rate over time; `duration_s` None means it goes on at its last rate (count mode)."""

    def __init__(self, segments: list[tuple[float, float, float]], open_ended: bool = False) -> None:
        """`segments`: (duration_s, from_eps, to_eps), in order."""
        built: list[_Segment] = []
        at = done = 0.0
        for duration, first, last in segments:
            seg = _Segment(at, duration, first, last, done)
            built.append(seg)
            at += duration
            done += seg.events
        self._segments = built
        self._starts = [s.start_s for s in built]
        self._cumulative = [s.events_before for s in built]
        self.open_ended = open_ended
        self.duration_s: float | None = None if open_ended else at
        self.total_events: float = math.inf if open_ended else done
        # A constant rate (one flat segment) answers time_at with a division: no bisect, no root.
        only = built[0] if len(built) == 1 else None
        self._flat: _Segment | None = only if only is not None and only.from_eps == only.to_eps > 0 else None

    @classmethod
    def constant(cls, eps: float, duration_s: float | None) -> "RateCurve":
        if duration_s is None:
            return cls([(1.0, eps, eps)], open_ended=True)
        return cls([(duration_s, eps, eps)])

    @classmethod
    def from_stages(cls, stages: list[Stage]) -> "RateCurve":
        parts, rate = [], 0.0
        for stage in stages:
            parts.append((stage.duration_s, rate, stage.target_eps))
            rate = stage.target_eps
        return cls(parts)

    @property
    def peak_eps(self) -> float:
        return max(max(s.from_eps, s.to_eps) for s in self._segments)

    def rate_at(self, t: float) -> float:
        seg = self._segment_at_time(t)
        if self.open_ended and t >= seg.start_s + seg.duration_s:
            return seg.to_eps
        tau = min(max(t - seg.start_s, 0.0), seg.duration_s)
        return seg.from_eps + seg.slope * tau

    def events_by(self, t: float) -> float:
        """Events the plan has due from 0 to `t` seconds (the integral of the rate)."""
        if t <= 0:
            return 0.0
        seg = self._segment_at_time(t)
        tau = t - seg.start_s
        if not self.open_ended:
            tau = min(tau, seg.duration_s)
        elif seg is self._segments[-1] and tau > seg.duration_s:
            return seg.events_before + seg.events + (tau - seg.duration_s) * seg.to_eps
        return seg.events_before + seg.from_eps * tau + seg.slope * tau * tau / 2

    def time_at(self, events: float) -> float | None:
        """When the `events`-th event (counted from 0) is due, or None past the end of the plan."""
        if events <= 0:
            return 0.0
        if events >= self.total_events:
            return None
        flat = self._flat
        if flat is not None:
            # What the general case below computes for one flat segment, term for term (so the same
            # float): sqrt(a * a) is a, and 2 * left / (a + a) is left / a.
            if self.open_ended and events > flat.events:
                return flat.start_s + flat.duration_s + (events - flat.events) / flat.to_eps
            return flat.start_s + events / flat.from_eps
        # The last segment starting at or before this count; a zero-rate stretch holds no events,
        # so it shares its count with the next segment and bisect_right steps past it.
        i = max(bisect.bisect_right(self._cumulative, events) - 1, 0)
        seg = self._segments[i]
        left = events - seg.events_before
        a, s = seg.from_eps, seg.slope
        if self.open_ended and i == len(self._segments) - 1 and left > seg.events:
            return seg.start_s + seg.duration_s + (left - seg.events) / seg.to_eps
        # Solve a*tau + s*tau^2/2 = left for tau >= 0, in the form that stays exact when s -> 0.
        root = math.sqrt(max(a * a + 2 * s * left, 0.0))
        if a + root == 0:
            return None
        return seg.start_s + 2 * left / (a + root)

    def _segment_at_time(self, t: float) -> _Segment:
        return self._segments[max(bisect.bisect_right(self._starts, t) - 1, 0)]
