"""The oracle collector's own accounting (tests/oracle_collector.py): it is the ground truth of
test_oracle.py, so what it records is checked here with hand-made requests over real sockets."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hdrh.histogram import HdrHistogram

from oracle_collector import HUNG, OracleCollector, rank_value
from wefperf.wsman import envelope, ns, parse

_EVENT = ('<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
          '<Provider Name="P" Guid="{0}"/><EventID>{id}</EventID></System></Event>')


def _batch(ids: list[int]) -> bytes:
    """A contract batch body (docs/contract.md) written by hand, not by wefperf's payload code."""
    events = "\n".join(_EVENT.replace("{id}", str(i)) for i in ids)
    return f'<?xml version="1.0" encoding="utf-8"?>\n<Envelope><Body><Events>\n{events}\n</Events></Body></Envelope>\n'.encode()


@pytest.fixture
def make() -> Iterator[Callable[..., OracleCollector]]:
    """Factory: `make(**options)` starts an oracle; each is stopped at teardown."""
    started: list[OracleCollector] = []

    def factory(**options: Any) -> OracleCollector:
        o = OracleCollector(**options).start()
        started.append(o)
        return o

    yield factory
    for o in started:
        o.stop()


def _stats_total(o: OracleCollector) -> int:
    rows = requests.get(o.url + "/stats/throughput", timeout=5).json()
    return sum(int(r["total_events"]) for r in rows)


def test_a_batch_is_recorded_with_its_events_bytes_times_and_status(make: Callable[..., OracleCollector]) -> None:
    """Events counted as the contract says; the reply comes at least the reply delay after arrival."""
    o = make(reply_delay_s=0.1)
    body = _batch([4624, 4624, 4634])
    before = time.monotonic()
    resp = requests.post(o.url + "/wsman/events", data=body, timeout=5)
    after = time.monotonic()
    assert resp.status_code == 200 and resp.text == "OK"
    (rec,) = o.snapshot()
    assert (rec.seq, rec.kind, rec.events, rec.body_bytes, rec.status) == (1, "batch", 3, len(body), 200)
    assert before <= rec.headers_s <= rec.arrival_s <= rec.reply_s <= after
    assert rec.server_time_s >= 0.1
    assert dict(rec.labels) == {"EventID 4624": 2, "EventID 4634": 1}
    assert o.events_accepted() == 3 and o.events_refused() == 0
    assert requests.get(o.url + "/health", timeout=5).text == "OK"
    assert _stats_total(o) == 3


def test_every_nth_request_fails_with_500_and_is_not_counted(make: Callable[..., OracleCollector]) -> None:
    o = make(fail_every=2)
    codes = [requests.post(o.url + "/wsman/events", data=_batch([4624] * n), timeout=5).status_code for n in (1, 2, 3, 4)]
    assert codes == [200, 500, 200, 500]
    assert [r.status for r in o.snapshot()] == [200, 500, 200, 500]
    assert o.events_accepted() == 4 and o.events_refused() == 6
    assert _stats_total(o) == 4


def test_a_hung_request_is_recorded_when_the_client_gives_up(make: Callable[..., OracleCollector]) -> None:
    """No reply at all: the client's 0.3 s timeout closes the connection, and the oracle records
    when it saw that (0.3 s after arrival, give or take a busy machine: under 3 s)."""
    o = make(fail_every=1, fail_mode="hang")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(o.url + "/wsman/events", data=_batch([4624]), timeout=0.3)
    deadline = time.monotonic() + 5
    while not o.snapshot() and time.monotonic() < deadline:
        time.sleep(0.05)
    (rec,) = o.snapshot()
    assert rec.status == HUNG and not rec.accepted and rec.events == 1
    assert 0.25 <= rec.server_time_s < 3.0
    assert o.server_times_ms() == [] and o.events_refused() == 1


def test_the_count_trails_the_acknowledgement_by_the_lag(make: Callable[..., OracleCollector]) -> None:
    o = make(count_lag_s=2.0)  # the first read comes well within it, even on a busy machine
    requests.post(o.url + "/wsman/events", data=_batch([4624, 4625]), timeout=5)
    assert _stats_total(o) == 0 and o.counted() == 0
    time.sleep(2.1)
    assert _stats_total(o) == 2 == o.counted()


def test_wsman_enumerate_events_and_heartbeat(make: Callable[..., OracleCollector]) -> None:
    """A host's Enumerate gets a subscription on this oracle; its Events envelope (UTF-16, events in
    CDATA) is counted per envelope and acknowledged; a heartbeat is counted apart."""
    o = make(reply_delay_s=0.05)
    manager = o.url + ns.SUBSCRIPTION_MANAGER_PATH
    mid = envelope.message_id()
    enum = envelope.enumerate_request(to=manager, machine="wks-1", mid=mid, session=envelope.message_id())
    resp = requests.post(manager, data=envelope.encode(enum), timeout=5)
    (sub,) = parse.subscriptions(resp.content)
    assert sub.notify_to == f"{o.url}{ns.SUBSCRIPTIONS_PATH}{o.identifier}"
    reference = envelope.reference_parameters(envelope.SubscriptionSpec(sub.identifier, sub.version, sub.notify_to))

    def header(action: str, msg: str) -> str:
        return envelope.delivery_header(to=sub.notify_to, action=action, machine="wks-1", mid=msg,
                                        session="uuid:S", reference=reference, bookmark="")

    events_mid = envelope.message_id()
    body = envelope.encode(envelope.events(header(ns.ACTION_EVENTS, events_mid),
                                           [_EVENT.replace("{id}", str(i)) for i in (4624, 4688)]))
    ack = requests.post(sub.notify_to, data=body, timeout=5)
    assert ack.status_code == 200 and parse.ack_relates_to(ack.content) == (ns.ACTION_ACK, events_mid)
    beat = envelope.heartbeat(to=sub.notify_to, machine="wks-1", mid=envelope.message_id(), session="uuid:S",
                              reference=reference)
    assert requests.post(sub.notify_to, data=envelope.encode(beat), timeout=5).status_code == 200
    (rec,) = o.snapshot()
    assert (rec.kind, rec.events, rec.body_bytes, rec.status) == ("wsman", 2, len(body), 200)
    assert rec.server_time_s >= 0.05
    assert o.enumerates == 1 and o.heartbeats == 1 and _stats_total(o) == 2


@pytest.mark.parametrize("values", [[7], [3, 1, 2], list(range(1, 101)), [5] * 3 + [900] * 2 + list(range(10, 40))])
def test_rank_value_is_the_order_statistic_hdrhistogram_reports(values: list[int]) -> None:
    """The oracle's quantile and wefperf's (HdrHistogram, 3 digits) name the same sample, so
    "each latency ≥ its request's reply time" carries over to every percentile."""
    h = HdrHistogram(1, 3_600_000_000, 3)
    for v in values:
        h.record_value(v)
    for q in (50.0, 90.0, 99.0, 99.9):
        assert rank_value(values, q) == h.get_value_at_percentile(q)
