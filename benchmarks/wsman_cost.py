"""Client CPU per request: one WS-Management Events envelope vs one batch body (simulated hosts).

Both are built from pieces made before the clock (payload/hosts.py, wsman/payload.py); this times
only the per-request part: patching record ids, host name and batch number, and joining. Run:
    .venv/bin/python benchmarks/wsman_cost.py [--json]
`make bench` runs it with --json for section 7 of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from wefperf.payload.hosts import build_host_payload
from wefperf.wsman import envelope
from wefperf.wsman.payload import WsmanPayload

SPEC = envelope.SubscriptionSpec("ID", "uuid:V", "https://wec.example:5986/wsman/subscriptions/ID")
REFERENCE = envelope.reference_parameters(SPEC)


def per_call_us(fn: Callable[[int], object], budget_s: float = 0.6) -> float:
    """Median-free and simple: as many calls as fit in the budget, mean time per call."""
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget_s:
        fn(calls)
        calls += 1
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    if "--json" in sys.argv[1:]:
        rows = []
        for k in (10, 1000):
            b, w, bb, wb = measure(k)
            rows.append({"events": k, "batch_us": b, "wsman_us": w, "batch_bytes": bb, "wsman_bytes": wb})
        print(json.dumps(rows))
        return
    print(f"{'events':>7} {'batch body':>12} {'wsman envelope':>15} {'ratio':>6} {'batch bytes':>12} {'wsman bytes':>12}")
    for k in (10, 1000):
        b, w, bb, wb = measure(k)
        print(f"{k:>7} {b:>10.1f}us {w:>13.1f}us {w / b:>6.2f} {bb:>12,} {wb:>12,}")


def measure(k: int) -> tuple[float, float, int, int]:
    """(batch µs, wsman µs, batch bytes, wsman bytes) for deliveries of k events."""
    hosts = build_host_payload(run_id="bench0000001", hosts=100, max_items=k, seed=1, variants=2)
    hosts.frame("wec.example:5986", "/wsman/events")
    wsman = WsmanPayload(hosts)

    def batch(i: int) -> bytes:
        return hosts.request(i, k, i % 100, 1000 + i * k)

    def ws(i: int) -> bytes:
        return wsman.envelopes(i, k, i % 100, 1000 + i * k, to=SPEC.notify_to, machine="WKS-00001.corp.example.com",
                               session="uuid:S", reference=REFERENCE, max_envelope=10**9).data

    return per_call_us(batch), per_call_us(ws), len(batch(0)), len(ws(0))


if __name__ == "__main__":
    main()
