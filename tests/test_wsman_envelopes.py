"""WS-Man deliveries cut into several envelopes are counted per envelope, and the S3 check stays exact.

A proxy in front of the reference collector (`wefperf collector --wsman`, writing to moto's S3)
offers a small MaxEnvelopeSize, so a delivery of 10 events goes as envelopes of about 3, and
refuses (500) every envelope but a delivery's first. Each delivery then has its first envelope
Acked and stored, its second failed (after its retries) and the rest never sent; the second's
failure expires its host's subscription, so the host's later deliveries are never sent either.
The Acked events count acknowledged and are expected in S3; the others count failed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import wefperf
from helpers import wefperf as run_cli
from threaded_app import ThreadedApp
from wefperf.payload import find_markers
from wefperf.runner.phases import run_test
from wefperf.verify import VerifyOptions, verify_s3
from wefperf.verify.from_results import options_from_results
from wefperf.wsman import envelope, ns, parse

# Room for the header bound (8,192) and about three of the payload's events (~3 kB each in UTF-16).
MAX_ENVELOPE = 8_192 + 9_000


@dataclass
class FailLaterEnvelopes(ThreadedApp):
    """Forwards to the collector at `upstream`; refuses every Events envelope whose first event
    is not its delivery's first (marker index > 0)."""

    upstream: str = ""
    port: int = 0
    refused: int = 0
    forwarded_events: int = 0

    def __post_init__(self) -> None:
        self._init_server()
        self._session: aiohttp.ClientSession | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._forward)
        app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def _forward(self, req: web.Request) -> web.Response:
        body = await req.read()
        if req.path.startswith(ns.SUBSCRIPTIONS_PATH):
            markers = find_markers(parse.decode(body))
            if markers and markers[0].index > 0:
                self.refused += 1
                return web.Response(status=500, text="refused: not a delivery's first envelope")
            self.forwarded_events += len(markers)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {k: v for k, v in req.headers.items() if k.lower() in ("content-type",)}
        async with self._session.request(req.method, self.upstream + req.path_qs, data=body or None,
                                         headers=headers) as resp:
            answer, status = await resp.read(), resp.status
            content_type = resp.headers.get("Content-Type", "")
        if req.path.startswith("/wsman/SubscriptionManager") and status == 200:
            text = parse.decode(answer).replace(self.upstream, self.base)
            text = re.sub(r"(<w:MaxEnvelopeSize[^>]*>)\d+", rf"\g<1>{MAX_ENVELOPE}", text)
            text = re.sub(r"(<w:ConnectionRetry[^>]*>)PT[0-9.]+S", r"\g<1>PT0.0S", text)  # retry at once
            answer = envelope.encode(text)
        return web.Response(status=status, body=answer, headers={"Content-Type": content_type} if content_type else None)


@pytest.fixture
def proxied(wef_target) -> Any:
    target = wef_target("--wsman", "--flush-interval-secs", "1")
    proxy = FailLaterEnvelopes(upstream=target.base).start()
    yield proxy
    proxy.stop()


def _manager(proxy: FailLaterEnvelopes) -> str:
    return f"{proxy.base}/wsman/SubscriptionManager/WEC"


@pytest.mark.slow
async def test_a_split_delivery_counts_its_acked_envelopes_acknowledged_and_s3_expects_them(
        proxied: FailLaterEnvelopes, moto_endpoint: str, bucket: str) -> None:
    settings = wefperf.load_settings(None, {
        "wef_endpoint": _manager(proxied), "protocol": "wsman", "hosts": 10, "target_eps": 400,
        "duration_secs": 2, "max_items": 10, "max_latency_secs": 0.5, "verify_s3": True,
        "s3_endpoint": moto_endpoint, "s3_bucket": bucket, "flush_interval_secs": 1, "processing_wait_secs": 5,
    }, environ={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    result = await run_test(settings, seed=21)
    load, acct = result.load, result.s3.accounting  # type: ignore[union-attr]
    assert acct is not None and load.hosts is not None
    assert proxied.refused > 0 and proxied.forwarded_events > 0
    # every delivery was split: each first envelope Acked, each delivery's second one refused after its
    # ConnectionRetry retries; its host's subscription then expired, and the host's later deliveries
    # failed unsent (issue 20 §4), until no host held one and the run stopped
    assert set(load.errors) <= {"http_500", "no_subscription"}
    assert load.errors["http_500"].batches == 10  # one per host
    assert load.events_ok == proxied.forwarded_events == result.server.events_received
    assert (load.events_ok + load.events_failed == load.events_sent + load.events_unsent
            == load.hosts.events_due - load.hosts.events_held)
    assert load.events_unsent > 0  # the envelopes after a refused one never went out
    # per envelope: an Acked envelope is a successful batch, a delivery's refused one a failed batch
    assert load.batches_failed == sum(e.batches for e in load.errors.values()) and load.batches_ok > 0
    # the Acked events are expected in S3 and found there, none missing, nothing unexpected
    assert acct.expected == acct.found == load.events_ok
    assert acct.missing == 0 and acct.duplicated == 0 and acct.unexpected == 0
    assert result.s3.passed  # type: ignore[union-attr]

    # kept in the results, the partial Acks let `verify --results` expect the same events again
    opts = options_from_results(json.loads(json.dumps(result.to_dict())), VerifyOptions(
        endpoint=moto_endpoint, bucket=bucket, access_key="testing", secret_key="testing", event_types=[],
        wait_secs=30), None, settle_secs=0)
    again = await verify_s3(opts)
    assert again.accounting is not None and again.passed, again.to_dict()
    assert again.accounting.expected == again.accounting.found == load.events_ok


@pytest.mark.slow
def test_two_processes_merge_the_partly_acked_deliveries_exactly(
        proxied: FailLaterEnvelopes, moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    env = {"S3_ENDPOINT": moto_endpoint, "S3_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "PERF_TEST_PROCESSING_WAIT_SECS": "5",
           "PERF_TEST_FLUSH_INTERVAL_SECS": "1"}
    results = tmp_path / "r.json"
    run_cli("run", "--protocol", "wsman", "--wef-endpoint", _manager(proxied), "--processes", "2",
            "--hosts", "10", "--max-items", "10", "--max-latency-secs", "0.5", "--target-eps", "400",
            "--duration-secs", "2", "--verify-s3", "--seed", "21", "--no-live", "--results", str(results), env=env)
    data = json.loads(results.read_text())
    r, acct = data["results"], data["s3_verification"]["accounting"]
    assert proxied.refused > 0 and r["events_acknowledged"] == proxied.forwarded_events > 0
    assert r["events_failed_unsent"] > 0
    assert acct["expected"] == acct["found"] == r["events_acknowledged"]
    assert acct["missing"] == acct["duplicated"] == acct["unexpected"] == 0
