"""`--processes`: a child's snapshot as one JSON object, and the children's merged into the parent's.

The parent shows one view of the whole run, live or plain, from the same `Snapshot` a
one-process run shows; these two functions are all that crosses the pipe.
"""

from __future__ import annotations

from typing import Any

from ..model import Second, Snapshot


def snapshot_to_wire(snap: Snapshot) -> dict[str, Any]:
    """What the parent needs of a child's snapshot (its last second without the per-second extras)."""
    last = snap.last
    return {
        "elapsed_s": snap.elapsed_s, "events_sent": snap.events_sent, "events_ok": snap.events_ok,
        "events_failed": snap.events_failed, "in_flight": snap.in_flight, "server_events": snap.server_events,
        "errors": snap.errors,
        "last": None if last is None else {
            "t": last.t, "sent_events": last.sent_events, "acked_events": last.acked_events,
            "failed_events": last.failed_events, "p50_ms": last.p50_ms, "p99_ms": last.p99_ms, "max_ms": last.max_ms,
        },
    }


def merged_snapshot(wires: list[dict[str, Any]]) -> Snapshot:
    """The children's snapshots as one run's: counts summed, the longest elapsed time.

    The server's count is the largest any child saw (each reads the same collector, so summing would
    count it N times). The last second's p50 and p99 are the slowest child's: percentiles do not add,
    and this bound errs on the side of showing latency, never hiding it; its max is exact.
    """
    errors: dict[str, int] = {}
    for w in wires:
        for name, n in (w.get("errors") or {}).items():
            errors[str(name)] = errors.get(str(name), 0) + int(n)
    lasts = [w["last"] for w in wires if w.get("last")]
    last = None
    if lasts:
        last = Second(
            t=max(int(x.get("t", 0)) for x in lasts),
            sent_events=sum(int(x.get("sent_events", 0)) for x in lasts),
            acked_events=sum(int(x.get("acked_events", 0)) for x in lasts),
            failed_events=sum(int(x.get("failed_events", 0)) for x in lasts),
            p50_ms=_slowest(lasts, "p50_ms"), p99_ms=_slowest(lasts, "p99_ms"), max_ms=_slowest(lasts, "max_ms"),
        )
    return Snapshot(
        elapsed_s=max((float(w.get("elapsed_s", 0.0)) for w in wires), default=0.0),
        events_sent=sum(int(w.get("events_sent", 0)) for w in wires),
        events_ok=sum(int(w.get("events_ok", 0)) for w in wires),
        events_failed=sum(int(w.get("events_failed", 0)) for w in wires),
        in_flight=sum(int(w.get("in_flight", 0)) for w in wires),
        server_events=max((int(w.get("server_events", 0)) for w in wires), default=0),
        errors=errors,
        last=last,
    )


def _slowest(lasts: list[dict[str, Any]], key: str) -> float | None:
    seen = [float(x[key]) for x in lasts if x.get(key) is not None]
    return max(seen) if seen else None
