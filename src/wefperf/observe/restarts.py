"""A collector that restarted during a run: when, for how long it was out of reach, and what its
counters could not show.

A restart is seen when the server's counters fall (observe/stats.py sums across the fall). Around it,
two outages can be measured: the stats endpoint not answering (the stats sampler's reads) and
the events endpoint refusing or dropping batches (the recorder's failures, until the next
acknowledgement). Times here are on the load's clock (time.perf_counter); `Restart` holds them
as seconds since the load started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..measure.reach import Outage
from ..model import Restart as Restart


@dataclass
class _Seen:
    """A fall of the counters, with what the stats reads knew around it."""

    seen_at: float
    last_ok_at: float | None  # the last good read before it (before its outage, if there was one)
    counted_before: int | None
    acked_at_last_ok: int | None
    stats_down: tuple[float, float] | None  # (first failed read, next good read) before it
    acked_when_down: int | None
    acked_at_seen: int


# A restarted collector's /stats/throughput may list no rows until its first event: the fall
# then shows a read or two after it answers again. Its outage counts for the fall this long.
KEEP_OUTAGE_READS = 10


@dataclass
class RestartWatch:
    """Fed every stats read (good or failed); turns the falls it saw into `Restart`s at the end."""

    baseline: int | None = None  # the server's count before the load
    resets: int = 0  # falls the reader had counted at the last read
    _seen: list[_Seen] = field(default_factory=list)
    _last_ok: tuple[float, int, int] | None = None  # (when, total, acknowledged then)
    _before: tuple[float, int, int] | None = None  # the last good read before the latest stats outage
    _down: tuple[float, int] | None = None  # the latest outage: (first failed read, acknowledged then)
    _up_at: float | None = None  # the good read that ended it; None while it lasts
    _reads_since_up = 0

    def read_ok(self, when: float, total: int, resets: int, acked: int) -> None:
        if self._down is not None and self._up_at is None:
            self._up_at, self._reads_since_up = when, 0
        if resets > self.resets:
            down = self._down
            last = self._before if down is not None else self._last_ok
            base = self.baseline or 0
            self._seen.append(_Seen(
                seen_at=when, last_ok_at=last[0] if last else None,
                counted_before=last[1] - base if last and self.baseline is not None else None,
                acked_at_last_ok=last[2] if last else None,
                stats_down=(down[0], self._up_at or when) if down is not None else None,
                acked_when_down=down[1] if down is not None else None, acked_at_seen=acked,
            ))
            self._down = None
        elif self._down is not None:
            self._reads_since_up += 1
            if self._reads_since_up > KEEP_OUTAGE_READS:
                self._down = None  # back without a fall: a network blip, not a restart
        self.resets = max(self.resets, resets)
        self._last_ok = (when, total, acked)

    def read_failed(self, when: float, acked: int) -> None:
        if self._down is None or self._up_at is not None:
            self._down, self._up_at, self._before = (when, acked), None, self._last_ok

    def restarts(self, load_start: float, outages: list[Outage]) -> list[Restart]:
        """Each fall, with the events outage that began between the last good read and the fall."""
        out: list[Restart] = []
        for seen in self._seen:
            lo = seen.last_ok_at if seen.last_ok_at is not None else float("-inf")
            # the events outage that overlaps the time from that read to the fall
            events = next((o for o in outages if o.start <= seen.seen_at and (o.end is None or o.end >= lo)), None)
            down_since = seen.stats_down[0] if seen.stats_down is not None else None
            starts = [t for t in (down_since, events.start if events else None) if t is not None]
            went = min(starts) if starts else seen.seen_at
            stats_s = seen.stats_down[1] - seen.stats_down[0] if seen.stats_down is not None else 0.0
            events_s = None
            if events is not None:
                events_s = (events.end if events.end is not None else seen.seen_at) - events.start
            acked_then = events.acked_before if events is not None and (
                down_since is None or events.start <= down_since) else seen.acked_when_down
            if acked_then is None:  # gone and back between two reads: all acknowledged since is the bound
                acked_then = seen.acked_at_seen
            unseen = (acked_then - seen.acked_at_last_ok
                      if acked_then is not None and seen.acked_at_last_ok is not None else None)
            out.append(Restart(
                at_seconds=went - load_start, seen_at_seconds=seen.seen_at - load_start,
                unreachable_seconds=max(stats_s, events_s or 0.0), stats_unreachable_seconds=stats_s,
                events_unreachable_seconds=events_s, counted_before=seen.counted_before,
                acknowledged_unseen=max(unseen, 0) if unseen is not None else None,
                back_at_seconds=events.end - load_start if events is not None and events.end is not None else None,
            ))
        return out


def describe(r: Mapping[str, Any]) -> str:
    """One restart in words, from its results-JSON form (the console and the HTML report say the same)."""
    at, seen = float(r.get("at_seconds") or 0), float(r.get("seen_at_seconds") or 0)
    stats_s = float(r.get("stats_unreachable_seconds") or 0)
    events_s = r.get("events_unreachable_seconds")
    if not stats_s and events_s is None:
        return (f"between two stats reads, by {seen:.1f} s into the load: its counters fell with no failed read"
                " or batch (a quick restart, or a reset of its counters)")
    parts = []
    if stats_s:
        parts.append(f"stats endpoint {stats_s:.1f} s")
    if events_s is not None:
        parts.append(f"events endpoint {float(events_s):.1f} s")
    unreachable = float(r.get("unreachable_seconds") or 0)
    return (f"at {at:.1f} s into the load: unreachable for {unreachable:.1f} s ({', '.join(parts)});"
            f" its counters seen lower at {seen:.1f} s")


def unseen_note(restarts: list[Restart], acknowledged: int, received: int | None) -> str | None:
    """Between samples: what a restart's counters took with them, where it explains a shortfall."""
    unseen = sum(r.acknowledged_unseen or 0 for r in restarts)
    if received is None or received >= acknowledged or not unseen:
        return None
    short = acknowledged - received
    could = (f"all {short:,} acknowledged events missing from the server's count can be such" if unseen >= short else
             f"up to {unseen:,} of the {short:,} acknowledged events missing from the server's count can be such")
    return (f"a restart takes with it what the collector counted after wefperf's last stats read before it: {could}"
            " (acknowledged between that read and the restart); its counters cannot show them, the S3 check does")
