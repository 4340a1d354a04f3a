"""wefperf's reported figures held to ground truth (issue 19 item 7): the real CLI against the oracle
collector (tests/oracle_collector.py), which writes down every request it gets.

Each scenario runs once per module (a fixture) and several tests judge its results JSON against
what the oracle saw. Tolerances, stated where they are used, are chosen to survive a busy 2-core
machine: counts are exact; a rate is within 3 % only where its definition is exact (events
acknowledged / the planned load window); latency lower bounds are exact (each request's latency
includes the oracle's own reply time) and upper bounds are generous.

Each figure issue 19 found wrong (items 1-3: the rate over the drain, latency blind to failures,
a scale-out run's server count) failed here before its fix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import Done, wefperf
from oracle_collector import HUNG, OracleCollector, rank_value
from wefperf.wsman import ns

pytestmark = pytest.mark.slow

DELAY_S = 0.25  # the oracle's reply delay in the scenarios that have one (see the rate test for why 250 ms)
RATE_TOL = 0.03  # issue 19 item 1: the headline rate within 3 % of acknowledged / planned window
P50_SLACK_MS = 300.0  # upper bound of p50 over the reply delay: scheduling on a busy machine
P90_SLACK_MS = 600.0
CLOCK_SLACK_MS = 0.001  # wefperf truncates its samples to whole microseconds
PACING_TOL = 0.10  # the oracle's arrival rate over 3 s against the target (late sends catch up)
COUNT_LAG_S = 3.0  # the lagging scenarios: /stats/throughput counts events 3 s after their reply
STATS_EVERY = "0.25"  # --stats-interval-secs of the lagging runs: the count is polled often



@dataclass
class Run:
    """One CLI run against one oracle: what wefperf reported and what the oracle saw."""

    oracle: OracleCollector
    done: Done = field(repr=False)
    data: dict[str, Any] = field(repr=False)
    planned_s: float  # the planned load window, from the test's own plan (never from wefperf)
    target_eps: float | None = None  # the constant rate of the plan, when it has one

    @property
    def results(self) -> dict[str, Any]:
        return dict(self.data["results"])

    def latency(self, name: str = "from_intended_send") -> dict[str, float]:
        return dict(self.data["latency_ms"][name])


def _run(tmp: Path, oracle: OracleCollector, planned_s: float, *args: str, path: str = "",
         target_eps: float | None = None) -> Run:
    """Start the oracle, run `wefperf run ARGS` against it (WEF_ENDPOINT: its URL + `path`), stop the
    oracle (its records stay)."""
    results = tmp / "results.json"
    oracle.start()
    try:
        done = wefperf("run", "--no-live", "--results", str(results), "--wef-endpoint", oracle.url + path,
                       *args, timeout=120)
    finally:
        oracle.stop()
    assert results.is_file(), done.out + done.err
    return Run(oracle, done, json.loads(results.read_text()), planned_s, target_eps)


def _scenario(build: Callable[[Path], Run]) -> Any:
    """A module-scoped fixture running `build` once in its own tmp dir."""

    @pytest.fixture(scope="module", name=build.__name__)
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
        yield build(tmp_path_factory.mktemp(build.__name__))

    return fixture


@_scenario
def fixed(tmp: Path) -> Run:
    """2,000/s for 4 s in 100-event batches, 250 ms replies, a server count 3 s behind its acks."""
    oracle = OracleCollector(reply_delay_s=DELAY_S, count_lag_s=COUNT_LAG_S)
    return _run(tmp, oracle, 4.0, "--target-eps", "2000", "--duration-secs", "4", "--batch-size", "100",
                "--stats-interval-secs", STATS_EVERY, target_eps=2000)


@_scenario
def coarse(tmp: Path) -> Run:
    """2,000/s for 4 s in 4,000-event batches: 2 batches, due at 0 and 2 s; immediate replies."""
    return _run(tmp, OracleCollector(), 4.0, "--target-eps", "2000", "--duration-secs", "4",
                "--batch-size", "4000", target_eps=2000)


@_scenario
def stages(tmp: Path) -> Run:
    """A profile's [[stages]]: 1 s ramp to 2,000/s, then 3 s at 2,000/s (7,000 events); 100-event
    batches, 250 ms replies, every 25th request answered 500."""
    profile = tmp / "oracle-stages.toml"
    profile.write_text(
        'name = "oracle-stages"\n\n[settings]\nbatch_size = 100\ntotal_events = 0\n\n'
        "[[stages]]\nduration_secs = 1\ntarget_eps = 2000\n\n[[stages]]\nduration_secs = 3\ntarget_eps = 2000\n"
    )
    oracle = OracleCollector(reply_delay_s=DELAY_S, fail_every=25, fail_mode="500")
    return _run(tmp, oracle, 4.0, "--profile", str(profile))


@_scenario
def hosts(tmp: Path) -> Run:
    """20 simulated hosts, 2,000/s for 4 s, deliveries after 0.5 s at most; 250 ms replies."""
    return _run(tmp, OracleCollector(reply_delay_s=DELAY_S), 4.0, "--hosts", "20", "--target-eps", "2000",
                "--duration-secs", "4", "--max-latency-secs", "0.5", "--seed", "7")


@_scenario
def wsman(tmp: Path) -> Run:
    """WS-Management over plain http: 10 hosts, 1,000/s for 4 s, at most 50 events an envelope."""
    oracle = OracleCollector(reply_delay_s=DELAY_S)
    return _run(tmp, oracle, 4.0, "--protocol", "wsman", "--hosts", "10", "--target-eps", "1000",
                "--duration-secs", "4", "--max-latency-secs", "0.5", "--max-items", "50", "--seed", "7",
                path=ns.SUBSCRIPTION_MANAGER_PATH)


@_scenario
def processes(tmp: Path) -> Run:
    """`--processes 2`, 2,000/s for 4 s in 100-event batches, 250 ms replies, a count 3 s behind.

    Each segment (today) waits only until the count reaches its own 4,000 events: about 2 s + 3 s
    into the run, while the whole run is counted only at about 4 s + 3 s, so its read is short by
    a margin of some 2 s however busy the machine (it does not hang on how fast the load ends)."""
    oracle = OracleCollector(reply_delay_s=DELAY_S, count_lag_s=COUNT_LAG_S)
    return _run(tmp, oracle, 4.0, "--processes", "2", "--target-eps", "2000", "--duration-secs", "4",
                "--batch-size", "100", "--stats-interval-secs", STATS_EVERY, target_eps=2000)


@_scenario
def hung(tmp: Path) -> Run:
    """2,000/s for 4 s in 100-event batches, 250 ms replies, every 20th request never answered,
    `--request-timeout-secs 1`: 4 of 80 requests time out."""
    oracle = OracleCollector(reply_delay_s=DELAY_S, fail_every=20, fail_mode="hang")
    return _run(tmp, oracle, 4.0, "--target-eps", "2000", "--duration-secs", "4", "--batch-size", "100",
                "--request-timeout-secs", "1", target_eps=2000)


ALL = ["fixed", "coarse", "stages", "hosts", "wsman", "processes", "hung"]
NO_FAILURES = ["fixed", "coarse", "hosts", "wsman", "processes"]
DELAYED_NO_FAILURES = ["fixed", "hosts", "wsman", "processes"]
DELAYED = [*DELAYED_NO_FAILURES, "stages", "hung"]


# --- counts: exact -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_event_and_request_counts_equal_the_oracles(name: str, request: pytest.FixtureRequest) -> None:
    """Acknowledged / failed events and batches are exactly what the oracle accepted / refused."""
    run: Run = request.getfixturevalue(name)
    r, o = run.results, run.oracle
    records = o.snapshot()
    accepted = o.accepted()
    assert records, f"the oracle saw no events request: {run.done.out}{run.done.err}"
    assert r["events_acknowledged"] == o.events_accepted() == sum(x.events for x in accepted)
    assert r["events_failed"] == o.events_refused()
    assert r["events_sent"] == r["events_acknowledged"] + r["events_failed"] == sum(x.events for x in records)
    assert r["successful_batches"] == len(accepted)
    assert r["failed_batches"] == len(records) - len(accepted)
    assert run.done.code == (0 if name in NO_FAILURES else 1), run.done.out + run.done.err


@pytest.mark.parametrize("name", ["fixed", "coarse", "processes", "hung"])
def test_a_fixed_rate_sends_exactly_its_plan(name: str, request: pytest.FixtureRequest) -> None:
    """Rate × duration events, in batches of the asked size, each one request at the oracle."""
    run: Run = request.getfixturevalue(name)
    assert run.target_eps is not None
    planned = round(run.target_eps * run.planned_s)
    sizes = {x.events for x in run.oracle.snapshot()}
    batch = int(run.data["configuration"]["batch_size"])
    assert sizes == {batch}
    assert sum(x.events for x in run.oracle.snapshot()) == planned == run.results["events_sent"]
    # Target rate maintained: acknowledged over planned events, the oracle's count over the plan.
    assert run.data["verdict"]["target_ratio"] == pytest.approx(run.oracle.events_accepted() / planned, abs=1e-9)


def test_stages_send_their_plan_and_500s_are_counted_as_failed(stages: Run) -> None:
    """1 s ramp (1,000 events) + 3 s at 2,000/s (6,000): 70 requests of 100; requests 25 and 50 got 500."""
    records = stages.oracle.snapshot()
    assert len(records) == 70 and {x.events for x in records} == {100}
    assert [x.seq for x in records if x.status == 500] == [25, 50]
    assert stages.data["errors"]["http_500"]["batches"] == 2
    assert stages.data["errors"]["http_500"]["events"] == 200 == stages.results["events_failed"]


def test_hung_requests_fail_as_timeouts_after_the_request_timeout(hung: Run) -> None:
    """Requests 20, 40, 60, 80 were never answered; wefperf closed each about 1 s after sending it."""
    records = hung.oracle.snapshot()
    held = [x.seq for x in records if x.status == HUNG]
    assert held == [20, 40, 60, 80]
    assert hung.data["errors"]["timeout"]["batches"] == 4
    assert hung.data["errors"]["timeout"]["events"] == 400
    # Closed by the client's 1 s timeout, counted from its send (at or before the arrival): 0.5 s
    # below for a body that waited in a busy machine's socket buffers, 4 s above for a slow close.
    for x in records:
        if x.status == HUNG:
            assert 0.5 <= x.reply_s - x.arrival_s <= 5.0, x


# --- the headline rate: acknowledged events over the planned load window ------------------------


@pytest.mark.parametrize("name", [
    "fixed",
    "stages",
    "processes",
    "coarse",
    "hosts",
    "wsman",
    "hung",
])
def test_the_headline_rate_is_acknowledged_events_over_the_planned_window(name: str,
                                                                          request: pytest.FixtureRequest) -> None:
    """events_per_second_overall within 3 % of the oracle's accepted events / the planned 4 s.

    Every scenario was wrong by more than 3 % when the rate was over the elapsed time (issue 19
    item 1), and a busy machine could not hide it: the batch runs end 250 ms (the reply delay)
    after the last batch due at 3.95 s (≤ 8,000 / 4.2 s = 1,905/s); hosts added their 0.5 s drain,
    the hung run its last request's 1 s timeout; the coarse run's elapsed time ended with its
    second batch, at about 2 s (≈ 4,000/s).
    """
    run: Run = request.getfixturevalue(name)
    expected = run.oracle.events_accepted() / run.planned_s
    assert run.results["events_per_second_overall"] == pytest.approx(expected, rel=RATE_TOL)


@pytest.mark.parametrize("name", ["fixed", "processes"])
def test_the_oracles_arrival_rate_holds_the_target(name: str, request: pytest.FixtureRequest) -> None:
    """The pacing as the server saw it: events arriving in the first 3 s, within 10 % of 2,000/s
    (a busy machine may send late, but the schedule catches up within the window).

    With several processes the window opens at their common --start-at, not at the first arrival:
    a process that a busy machine started late catches up on its schedule, and counted from the
    other process's first batch its catch-up looked like sending 20 % too fast."""
    run: Run = request.getfixturevalue(name)
    start_at = (run.data.get("merged") or {}).get("start_at")
    if start_at:  # the schedule's start (wall clock), on the oracle's clock (monotonic)
        first = start_at - (time.time() - time.monotonic())
    else:
        first = min(x.arrival_s for x in run.oracle.snapshot())
    assert run.target_eps is not None
    assert run.oracle.arrival_rate(first, first + 3.0) == pytest.approx(run.target_eps, rel=PACING_TOL)


# --- latency from intended send: bounded by the oracle's own reply times ------------------------


@pytest.mark.parametrize("name", DELAYED_NO_FAILURES)
def test_latency_percentiles_are_at_least_the_oracles_reply_times(name: str, request: pytest.FixtureRequest) -> None:
    """Each request's latency from intended send (and its service time) includes the oracle's reply
    time (reply − arrival of the whole body); so, one sample per request, each wefperf percentile
    is at least the oracle's value of the same rank. Exact but for wefperf's 1 µs truncation."""
    run: Run = request.getfixturevalue(name)
    server = run.oracle.server_times_ms()
    for which in ("from_intended_send", "service_time"):
        lat = run.latency(which)
        assert lat["count"] == len(server)
        for key, q in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0)):
            assert lat[key] >= rank_value(server, q) - CLOCK_SLACK_MS, (which, key, lat, rank_value(server, q))
        assert lat["max"] >= max(server) - CLOCK_SLACK_MS


@pytest.mark.parametrize("name", DELAYED)
def test_latency_percentiles_sit_just_above_the_reply_delay(name: str, request: pytest.FixtureRequest) -> None:
    """With 250 ms replies: p50 ≥ 250 ms and ≤ 250 + 300 ms; p90 ≤ 250 + 600 ms (a busy machine's
    scheduling). Hung requests are 5 % of the hung run: they cannot move its p50 or p90."""
    lat = request.getfixturevalue(name).latency()
    delay_ms = DELAY_S * 1000
    assert delay_ms <= lat["p50"] <= delay_ms + P50_SLACK_MS, lat
    assert lat["p90"] <= delay_ms + P90_SLACK_MS, lat


def test_a_hung_twentieth_request_puts_p99_at_the_request_timeout(hung: Run) -> None:
    """4 of 80 batches (5 %) waited for the 1 s request timeout: p99 from intended send ≥ 1,000 ms."""
    assert hung.latency()["p99"] >= 1000.0


def test_latency_has_one_sample_per_batch_that_fell_due(hung: Run) -> None:
    """Every batch the oracle saw, answered or not, is one latency sample."""
    assert hung.latency()["count"] == len(hung.oracle.snapshot())


def test_hosts_event_latency_is_bounded_by_max_latency_and_the_reply(hosts: Run) -> None:
    """An event waits at most --max-latency-secs (0.5 s) at its host, then its delivery's reply
    (≥ 250 ms): every event ≥ 250 ms, and the worst ≤ 0.5 s + 250 ms + 1 s of scheduling slack."""
    event = hosts.latency("event")
    assert event["count"] == hosts.oracle.events_accepted()
    assert event["p50"] >= DELAY_S * 1000
    assert event["max"] <= (0.5 + DELAY_S) * 1000 + 1000.0, event
    assert max(x.events for x in hosts.oracle.snapshot()) <= 100  # --max-items, default


def test_wsman_envelopes_match_the_oracles(wsman: Run) -> None:
    """Enumerations, Events envelopes and heartbeats as the oracle counted them; every envelope
    within the MaxEnvelopeSize the oracle offered, holding at most --max-items (50) events."""
    w, o = wsman.data["wsman"], wsman.oracle
    records = o.snapshot()
    assert {x.kind for x in records} == {"wsman"}
    assert w["envelopes"] == len(records) and w["retries"] == 0
    # each Enumerate followed by its End: one per host, and any refresh (its first falls anywhere in the first hour)
    assert w["enumerations"] == o.enumerates == o.ends == 10 + w["refreshes"]
    assert w["heartbeats"] == o.heartbeats
    assert max(x.body_bytes for x in records) <= w["max_envelope"]
    assert max(x.events for x in records) <= 50


# --- the server's count ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    *[n for n in ALL if n != "processes"],
    "processes",
])
def test_events_received_is_the_oracles_count(name: str, request: pytest.FixtureRequest) -> None:
    """The server's count (events_received) is every event the oracle accepted, also when the
    oracle counts them 3 s after acknowledging them (fixed: one process; processes: two)."""
    run: Run = request.getfixturevalue(name)
    assert run.results["events_received"] == run.oracle.events_accepted()
