"""Issue 20 §4: WS-Man hosts back off as a Windows fleet does, and a fleet that cannot subscribe ends the run.

Before a subscription exists a host retries its Enumerate after growing, bounded, jittered waits;
an answer that cannot change (a 404: no WS-Management there) ends it at once. A failed delivery is
retried as the subscription's ConnectionRetry says (Total retries, one interval apart); after the
last one the subscription has expired. When no host subscribed, or none holds a subscription any
more, the run ends early with one line naming the cause (exit 1). The peers are real aiohttp
servers on 127.0.0.1 (tests/wec_receiver.py answers as Microsoft's WEC does).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_collector import FakeCollector
from helpers import wefperf
from wec_receiver import WecReceiver
from wefperf.load import errors
from wefperf.load.hosts import build_hosts
from wefperf.load.scheduler import Schedule
from wefperf.load.wsman_hosts import WsmanHostsEngine
from wefperf.model import Percentiles
from wefperf.report.console import _pct_line
from wefperf.wsman.backoff import ENUMERATE, Backoff, connection_retry


@pytest.fixture
def receiver() -> Iterator[WecReceiver]:
    r = WecReceiver(shape="microsoft").start()
    yield r
    r.stop()


def _engine(url: str, *, hosts: int, seconds: float, eps: float = 40, max_items: int = 5,
            backoff: Backoff = ENUMERATE) -> WsmanHostsEngine:
    schedule = Schedule.for_run(target_eps=eps, batch_size=max_items, total_events=0, duration_s=seconds,
                                timeout_s=60)
    payload, arrivals = build_hosts(run_id="backoff", seed=4, hosts=hosts, max_items=max_items, schedule=schedule,
                                    total_events=None, constant_eps=eps)
    return WsmanHostsEngine(payload=payload, arrivals=arrivals, url=url, max_items=max_items, max_latency_s=0.2,
                            plan_end_s=seconds, timeout_s=60, request_timeout_s=5, drain_timeout_s=5,
                            enumerate_backoff=backoff)


def test_the_backoffs_grow_are_bounded_and_jittered() -> None:
    rng = random.Random(1)
    bases = [ENUMERATE.base_s(r) for r in range(ENUMERATE.retries)]
    assert bases == sorted(bases) and bases[0] < bases[-1]  # grows
    assert ENUMERATE.retries + 1 <= 7 and ENUMERATE.longest_s < 30  # bounded: a few Enumerates, seconds
    drawn = {round(ENUMERATE.delay_s(0, rng), 6) for _ in range(50)}
    assert len(drawn) > 40 and all(0.8 <= d <= 1.2 for d in drawn)  # jittered around its base
    retry = connection_retry(5, 5.0)
    assert retry.retries == 5 and {retry.base_s(r) for r in range(5)} == {5.0}
    assert all(4.5 <= retry.delay_s(r, rng) <= 5.5 for r in range(5))


def test_a_row_without_samples_says_n_a() -> None:
    empty = Percentiles(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert _pct_line("service time", empty) == f"  {'service time':<26} n/a (no samples)"
    assert "p50      1.50" in _pct_line("x", Percentiles(1, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5))


async def test_every_enumerate_refused_the_hosts_back_off_then_the_load_does_not_start(
        receiver: WecReceiver) -> None:
    receiver.enumerate_ok = 0  # 503 to every Enumerate
    small = Backoff(first_s=0.1, factor=2.0, cap_s=0.4, retries=4, jitter=0.2)
    engine = _engine(receiver.manager_url, hosts=4, seconds=1.0, backoff=small)
    started = time.monotonic()
    load = await asyncio.wait_for(engine.run(), 30)
    took = time.monotonic() - started
    # each host: the first try and the backoff's 4 retries, no more (not one per delivery)
    assert sorted(receiver.enumerates.values()) == [5, 5, 5, 5]
    for times in receiver.enumerate_times.values():
        gaps = [b - a for a, b in zip(times, times[1:])]
        # the waits grow: 0.1, 0.2, 0.4, 0.4 s +/- 20 % (later ones may be later on a busy machine)
        assert gaps[0] >= 0.08 and gaps[2] >= 0.32 and gaps[2] > gaps[0], gaps
    assert took < 20  # bounded: about 1.1 s of waits
    assert engine.unavailable is not None and engine.unavailable.startswith("no host could subscribe at ")
    assert "20 Enumerates by 4 hosts" in engine.unavailable and "http_503 x20" in engine.unavailable
    assert "nothing was sent" in engine.unavailable
    assert (load.events_sent, load.batches_sent, load.events_ok) == (0, 0, 0)
    assert receiver.events_posts == 0


async def test_delivery_retries_follow_connection_retry_then_the_subscription_expires(
        receiver: WecReceiver) -> None:
    receiver.events_status, receiver.retry_total, receiver.retry = 503, 3, "PT0.3S"
    engine = _engine(receiver.manager_url, hosts=2, seconds=8.0)
    started = time.monotonic()
    load = await asyncio.wait_for(engine.run(), 60)
    took = time.monotonic() - started
    # each host: one envelope tried 1 + Total (3) times, ConnectionRetry's interval apart (+/- 10 %)
    assert sorted(len(t) for t in receiver.events_times.values()) == [4, 4]
    for times in receiver.events_times.values():
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(g >= 0.25 for g in gaps), gaps
    assert load.wsman is not None and load.wsman.retries == 6
    # then its subscription expired: nothing more went out, and with none left the run stopped
    assert load.aborted is not None and load.aborted.startswith("no host holds a subscription")
    assert "http_503 x2" in load.aborted and "expired" in load.aborted
    assert took < 6  # the 8 s plan was cut short
    assert load.events_sent == sum(receiver.events_in.values())  # sent = what the collector was given
    assert set(load.errors) <= {"http_503", errors.NO_SUBSCRIPTION}
    assert sum(receiver.enumerates.values()) == 2  # no Enumerate storm


def test_a_short_run_against_a_collector_without_ws_man_ends_at_once_saying_why(tmp_path: Path) -> None:
    collector = FakeCollector().start()  # the batch contract only: 404 at the subscription manager
    try:
        results = tmp_path / "r.json"
        started = time.monotonic()
        done = wefperf(
            "run", "--protocol", "wsman", "--hosts", "64", "--target-eps", "200", "--duration-secs", "2", "--no-live",
            "--processing-wait-secs", "0", "--results", str(results),
            "--wef-endpoint", f"{collector.url}/wsman/SubscriptionManager/WEC", timeout=90,
        )
        took = time.monotonic() - started
    finally:
        collector.stop()
    assert done.code == 1, done.out + done.err
    assert took < 20, took  # it ran 30 s (the hosts' max latency) before
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done.err
    assert lines[0].startswith("wefperf: no host could subscribe at ") and "http_404 x64" in lines[0]
    assert "subscription manager URL?" in lines[0]
    data = json.loads(results.read_text())
    assert data["results"]["events_sent"] == 0 and data["verdict"]["exit_code"] == 1
    assert "Target rate maintained" not in done.out and data["verdict"]["target_ratio"] is None


def test_processes_against_a_collector_without_ws_man_claim_no_share_of_the_target(tmp_path: Path) -> None:
    """Two processes whose hosts all fail to subscribe: the merged run had 0 events due in 0 s, which
    is no rate at all, not "Target rate maintained: 100.0%"; the reason says whose figures it quotes."""
    collector = FakeCollector().start()
    try:
        results = tmp_path / "r.json"
        done = wefperf(
            "run", "--protocol", "wsman", "--hosts", "10", "--target-eps", "100", "--duration-secs", "2", "--no-live",
            "--processing-wait-secs", "0", "--processes", "2", "--results", str(results),
            "--wef-endpoint", f"{collector.url}/wsman/SubscriptionManager/WEC", timeout=90,
        )
    finally:
        collector.stop()
    assert done.code == 1, done.out + done.err
    assert "Target rate maintained" not in done.out
    assert "no host could subscribe at " in done.out and "5 Enumerates by 5 hosts" in done.out
    assert "(process 1 of 2; 2 of 2 processes stopped)" in done.out
    data = json.loads(results.read_text())
    assert data["results"]["events_sent"] == 0 and data["verdict"]["target_ratio"] is None


@pytest.mark.slow
def test_fifty_hosts_against_a_503_collector_offering_connection_retry_5_x_5s(tmp_path: Path) -> None:
    """The issue's check: at most 7 Enumerates per host, exit non-zero, within 45 s."""
    receiver = WecReceiver(shape="microsoft", retry_total=5, retry="PT5.0S", enumerate_ok=1, events_status=503)
    receiver.start()
    try:
        results = tmp_path / "r.json"
        started = time.monotonic()
        done = wefperf(
            "run", "--protocol", "wsman", "--hosts", "50", "--target-eps", "500", "--duration-secs", "30",
            "--max-items", "10", "--no-live", "--processing-wait-secs", "0", "--results", str(results),
            "--wef-endpoint", receiver.manager_url, timeout=120,
        )
        took = time.monotonic() - started
    finally:
        receiver.stop()
    assert done.code != 0 and took < 45, (took, done.out[-3000:])
    assert len(receiver.enumerates) == 50 and max(receiver.enumerates.values()) <= 7
    # each host's envelope: 1 + 5 tries, then its subscription expired
    assert sorted({len(t) for t in receiver.events_times.values()}) == [6]
    assert "no host holds a subscription" in done.out and "Aborted after" in done.out
    data = json.loads(results.read_text())
    r = data["results"]
    assert r["events_acknowledged"] == 0
    assert r["events_sent"] == sum(receiver.events_in.values())  # never more than the collector was given
    # nothing was acknowledged: the service time has no sample, and says so
    assert any(line.strip().startswith("service time") and "n/a" in line for line in done.out.splitlines())
