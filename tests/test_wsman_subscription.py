"""Issue 20 §3: with --protocol wsman the subscription decides how a host batches (MaxElements,
MaxTime), as it does for Windows; --max-items / --max-latency-secs given by the user override it
with one line saying so, and the results record what was asked and what was obeyed.

End to end against a receiver on 127.0.0.1 that reads every delivery with a real XML parser."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import Done, wefperf
from wefperf.config.loading import GIVEN_ENV, load_settings
from wefperf.wsman import envelope, parse
from wefperf.wsman.parse import EnvelopeError
from wsman_receiver import Receiver, receiving


def _run(rx: Receiver, tmp_path: Path, *extra: str) -> tuple[Done, dict[str, Any]]:
    results = tmp_path / "r.json"
    done = wefperf(
        "run", "--protocol", "wsman", "--hosts", "2", "--no-live", "--results", str(results), "--seed", "7",
        "--processing-wait-secs", "0", "--wef-endpoint", rx.url, "--refresh-secs", "0", *extra, timeout=90,
    )
    return done, json.loads(results.read_text())


def test_a_receiver_offering_max_elements_20_never_gets_more_than_20_events_per_delivery(tmp_path: Path) -> None:
    """2 hosts at 300 events/s hold ~75 events per MaxTime (0.5 s): only MaxElements keeps a delivery at 20.
    (Before: every host delivered up to --max-items' default 100 events, whatever the Subscribe said.)"""
    with receiving(Receiver(max_elements=20, max_time_s=0.5)) as rx:
        done, data = _run(rx, tmp_path, "--target-eps", "300", "--duration-secs", "2",
                          "--report", str(tmp_path / "r.html"))
    assert done.code == 0, done.out + done.err
    assert rx.deliveries and max(rx.deliveries) <= 20, rx.deliveries
    assert rx.deliveries.count(20) >= len(rx.deliveries) // 2  # mostly full: MaxElements, not MaxTime, cut them
    assert sum(rx.deliveries) == data["results"]["events_sent"] == sum(rx.events.values())
    w = data["wsman"]
    assert w["subscriptions"] == [{"max_elements": 20, "max_time_s": 0.5, "max_envelope": 512000,
                                   "heartbeat_s": 3600.0, "hosts": 2}]
    assert w["batching"] == [{"max_items": 20, "max_latency_s": 0.5, "items_from": "MaxElements",
                              "latency_from": "MaxTime", "hosts": 2}]
    assert "Batching (2 hosts): at most 20 events (MaxElements), after 0.5 s (MaxTime)" in done.out
    assert " overrides the subscription" not in done.out
    html = (tmp_path / "r.html").read_text()
    assert "batching of 2 hosts" in html and "at most 20 events (MaxElements), after 0.5 s (MaxTime)" in html


def test_max_time_decides_when_a_host_delivers(tmp_path: Path) -> None:
    """A receiver offering no MaxElements and MaxTime 0.3 s: deliveries hold what 0.3 s brought (a few
    events), not --max-latency-secs' default 30 s worth (which would hold the run's events to its end)."""
    with receiving(Receiver(max_time_s=0.3)) as rx:
        done, data = _run(rx, tmp_path, "--target-eps", "40", "--duration-secs", "2")
    assert done.code == 0, done.out + done.err
    assert len(rx.deliveries) >= 6, rx.deliveries  # 2 hosts × ~2 s / 0.3 s; one each at 30 s
    assert data["hosts"]["max_latency_s"] == 0.3
    assert data["wsman"]["batching"][0]["latency_from"] == "MaxTime"
    assert data["wsman"]["batching"][0]["items_from"] == "no MaxElements: --max-items (the payload's width)"


def test_max_items_given_overrides_max_elements_with_one_line(tmp_path: Path) -> None:
    with receiving(Receiver(max_elements=20, max_time_s=0.5)) as rx:
        done, data = _run(rx, tmp_path, "--target-eps", "300", "--duration-secs", "2", "--max-items", "60")
    assert done.code == 0, done.out + done.err
    assert max(rx.deliveries) > 20, rx.deliveries  # the flag, not the subscription, decided
    assert max(rx.deliveries) <= 60
    said = [line for line in done.out.splitlines() if " overrides the subscription" in line]
    assert said == ["--max-items 60 overrides the subscription's MaxElements (20): Windows would batch by the"
                    " subscription"]
    assert data["wsman"]["batching"][0]["items_from"] == "--max-items"
    assert data["wsman"]["batching"][0]["latency_from"] == "MaxTime"


def test_a_max_elements_above_the_payload_width_is_capped_and_said(tmp_path: Path) -> None:
    with receiving(Receiver(max_elements=500, max_time_s=0.5)) as rx:
        done, data = _run(rx, tmp_path, "--target-eps", "300", "--duration-secs", "1")
    assert done.code == 0, done.out + done.err
    assert max(rx.deliveries) <= 100
    assert data["wsman"]["batching"][0]["items_from"] == "MaxElements 500 capped at --max-items"


# --- what counts as given ---------------------------------------------------------------------------


def test_only_a_flag_or_the_environment_counts_as_given_not_a_profile() -> None:
    """wec-3k's profile sets max_items = 100: that is its default, not the user's choice."""
    by_profile = load_settings("wec-3k", {}, {})
    assert by_profile.max_items == 100 and "max_items" not in by_profile.given
    assert "max_items" in by_profile.model_fields_set  # why model_fields_set alone would not do
    assert "max_items" in load_settings("wec-3k", {"max_items": 5}, {}).given
    assert "max_latency_secs" in load_settings("wec-3k", {}, {"PERF_TEST_MAX_LATENCY_SECS": "2"}).given
    assert load_settings(None, {}, {}).given == frozenset()
    # a --processes child reads every setting from the environment; the parent says which were given
    child = load_settings(None, {}, {"PERF_TEST_MAX_ITEMS": "100", "PERF_TEST_BATCH_SIZE": "4", GIVEN_ENV: "batch_size"})
    assert child.given == frozenset({"batch_size"})


def test_a_processes_parent_passes_what_was_given_to_its_children() -> None:
    from wefperf.scaleout.processes import settings_env

    parent = load_settings("wec-3k", {"max_latency_secs": 2.0}, {})
    env = settings_env(parent)
    assert env[GIVEN_ENV] == "max_latency_secs"
    assert load_settings(None, {}, env).given == frozenset({"max_latency_secs"})


# --- reading the Subscribe ----------------------------------------------------------------------------


def _response(max_elements: str | None) -> bytes:
    spec = envelope.SubscriptionSpec("ID", "uuid:V", "http://c/wsman/subscriptions/ID", max_time_s=12.5)
    text = envelope.enumerate_response(spec, relates_to="uuid:R", machine="m")
    if max_elements is not None:
        text = text.replace("<w:MaxTime>", f"<w:MaxElements>{max_elements}</w:MaxElements><w:MaxTime>", 1)
    return envelope.encode(text)


def test_the_subscribe_s_max_elements_and_max_time_are_read() -> None:
    sub = parse.subscriptions(_response("20"))[0]
    assert (sub.max_elements, sub.max_time_s) == (20, 12.5)
    assert parse.subscriptions(_response(None))[0].max_elements is None
    with pytest.raises(EnvelopeError, match="MaxElements"):
        parse.subscriptions(_response("0"))


def test_segments_add_up_their_hosts_per_option_set_and_results_read_back() -> None:
    from wefperf.model import BatchingObeyed, SubscriptionAsked, WsmanFigures
    from wefperf.scaleout.merge import merge_wsman

    def one(hosts: int, refreshes: int) -> WsmanFigures:
        return WsmanFigures(hosts, 0, 0, 0, 0, 0, refreshes=refreshes,
                            subscriptions=(SubscriptionAsked(20, 0.5, 512000, 3600.0, hosts),),
                            batching=(BatchingObeyed(20, 0.5, "MaxElements", "MaxTime", hosts),))

    merged = merge_wsman([one(3, 4), one(2, 1)])
    assert merged.refreshes == 5 and merged.enumerations == 5
    assert merged.subscriptions == (SubscriptionAsked(20, 0.5, 512000, 3600.0, 5),)
    assert merged.batching == (BatchingObeyed(20, 0.5, "MaxElements", "MaxTime", 5),)
    assert WsmanFigures.from_dict(json.loads(json.dumps(merged.to_dict()))) == merged
    # results written before refresh and subscription batching still read
    old = {k: v for k, v in merged.to_dict().items()
           if k not in ("refreshes", "refresh_failures", "bookmarks_behind", "subscriptions", "batching")}
    assert WsmanFigures.from_dict(old).subscriptions == ()
