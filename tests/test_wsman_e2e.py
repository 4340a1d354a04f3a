"""WS-Management end to end on 127.0.0.1: a tiny scripted collector (wrong Ack, heartbeats), the
reference collector in TLS mode refusing a client without a certificate and naming rows by CN,
and an mTLS `wefperf run --protocol wsman --embedded` with exact S3 accounting."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from helpers import wefperf
from test_collector_http import read_rows, wait_for
from wefperf.payload.hosts import build_host_payload
from wefperf.wsman import envelope, ns, parse
from wefperf.wsman.payload import WsmanPayload


@dataclass
class Script:
    """What the tiny collector answers."""

    wrong_ack: bool = False
    heartbeat_s: float = 3600.0
    port: int = 0
    events_messages: int = 0
    heartbeats: int = 0
    ident: str = "11111111-2222-3333-4444-555555555555"
    seen: list[str] = field(default_factory=list)


def _tiny_app(script: Script) -> web.Application:
    async def manager(req: web.Request) -> web.Response:
        msg = parse.request(parse.decode(await req.read()), with_events=False)
        spec = envelope.SubscriptionSpec(
            script.ident, "uuid:V1", f"http://127.0.0.1:{script.port}/wsman/subscriptions/{script.ident}",
            heartbeat_s=script.heartbeat_s, retry_s=0.05)
        return web.Response(body=envelope.encode(envelope.enumerate_response(spec, relates_to=msg.message_id, machine="x")))

    async def subscription(req: web.Request) -> web.Response:
        msg = parse.request(parse.decode(await req.read()), with_events=True)
        script.seen.append(msg.action)
        if msg.action == ns.ACTION_HEARTBEAT:
            script.heartbeats += 1
            return web.Response(body=envelope.encode(envelope.ack(msg.message_id)))
        script.events_messages += 1
        relates = "uuid:00000000-0000-0000-0000-000000000000" if script.wrong_ack else msg.message_id
        return web.Response(body=envelope.encode(envelope.ack(relates)))

    app = web.Application()
    app.router.add_get("/health", _ok)
    app.router.add_get("/stats/throughput", _empty)
    app.router.add_post("/wsman/SubscriptionManager/WEC", manager)
    app.router.add_post("/wsman/subscriptions/{ident}", subscription)
    return app


async def _ok(_req: web.Request) -> web.Response:
    return web.Response(text="OK")


async def _empty(_req: web.Request) -> web.Response:
    return web.json_response([])


@pytest.fixture
def tiny() -> Iterator[Script]:
    script = Script()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(_tiny_app(script))

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        script.port = runner.addresses[0][1]
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield script
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _run(script: Script, tmp_path: Path, *extra: str):
    results = tmp_path / "r.json"
    done = wefperf(
        "run", "--protocol", "wsman", "--hosts", "2", "--no-live", "--results", str(results), "--seed", "11",
        "--processing-wait-secs", "0", "--wef-endpoint", f"http://127.0.0.1:{script.port}/wsman/SubscriptionManager/WEC",
        *extra, timeout=60,
    )
    return done, json.loads(results.read_text())


def test_an_ack_with_a_wrong_relates_to_is_counted_as_an_error(tiny: Script, tmp_path: Path) -> None:
    tiny.wrong_ack = True
    done, data = _run(tiny, tmp_path, "--target-eps", "20", "--duration-secs", "1", "--max-latency-secs", "0.3")
    assert done.code != 0, done.out
    assert data["results"]["failed_batches"] > 0 and data["results"]["successful_batches"] == 0
    assert "wrong_ack" in json.dumps(data["errors"])
    assert "wrong Acks" in done.out and ", 0 wrong Acks" not in done.out
    # each envelope that went out was tried 1 + ConnectionRetry's Total (5) times; then its host's
    # subscription expired, and its later deliveries failed unsent (issue 20 §4)
    errors = data["errors"]
    assert tiny.events_messages == 6 * errors["wrong_ack"]["batches"]
    assert set(errors) <= {"wrong_ack", "no_subscription"}


def test_idle_hosts_send_heartbeats_and_get_them_acknowledged(tiny: Script, tmp_path: Path) -> None:
    tiny.heartbeat_s = 0.3
    done, data = _run(tiny, tmp_path, "--target-eps", "4", "--duration-secs", "1", "--max-latency-secs", "1.5")
    assert done.code == 0, done.out + done.err
    assert tiny.heartbeats >= 2
    assert f"{tiny.heartbeats} heartbeats ({tiny.heartbeats} acknowledged)" in done.out
    assert data["results"]["failed_batches"] == 0
    w = data["wsman"]  # the results JSON carries what the console says
    assert w["heartbeats"] == w["heartbeats_acked"] == tiny.heartbeats and w["enumerations"] == 2 + w["refreshes"]
    assert w["heartbeat_s"] == 0.3 and w["wrong_acks"] == w["retries"] == 0
    # --max-latency-secs given overrides the subscription's MaxTime: a line says so, the results record both
    assert (f"--max-latency-secs 1.5 overrides the subscription's MaxTime ({w['max_time_s']:g} s): Windows would"
            " batch by the subscription") in done.out
    assert "Note: a Windows forwarder would batch by the subscription's MaxElements and MaxTime" in done.out
    assert w["batching"] == [{"max_items": 100, "max_latency_s": 1.5, "items_from": "no MaxElements: --max-items"
                              " (the payload's width)", "latency_from": "--max-latency-secs", "hosts": 2}]


# --- the reference collector in TLS mode -----------------------------------------------------------


def _certs(tmp_path: Path) -> Path:
    for args in (("ca",), ("server", "--name", "127.0.0.1"), ("client", "--name", "WKS-7.corp.example.com")):
        done = wefperf("certs", args[0], "--out" if args[0] == "ca" else "--ca", str(tmp_path), *args[1:])
        assert done.code == 0, done.err
    return tmp_path


def _post(url: str, body: bytes, ctx: ssl.SSLContext) -> tuple[int, bytes]:
    import urllib.request

    req = urllib.request.Request(url, data=body, headers={"Content-Type": ns.CONTENT_TYPE}, method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        return resp.status, resp.read()


def test_collector_refuses_a_client_without_certificate_and_names_rows_by_cn(
    wef_target, s3_client, bucket, tmp_path: Path,
) -> None:
    d = _certs(tmp_path)
    t = wef_target("--wsman", "--flush-interval-secs", "0.5", "--tls-cert", str(d / "server.crt"),
                   "--tls-key", str(d / "server.key"), "--client-ca", str(d / "ca.crt"))
    assert t.base.startswith("https://")
    url = t.base + ns.SUBSCRIPTION_MANAGER_PATH
    enum = envelope.encode(envelope.enumerate_request(to=url, machine="m", mid="uuid:1", session="uuid:2"))
    bare = ssl.create_default_context(cafile=str(d / "ca.crt"))
    with pytest.raises(OSError):  # ssl.SSLError or a reset: the handshake needs a certificate
        _post(url, enum, bare)
    ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
    ctx.load_cert_chain(str(d / "WKS-7.corp.example.com.crt"), str(d / "WKS-7.corp.example.com.key"))
    status, answer = _post(url, enum, ctx)
    assert status == 200
    # as OpenWEC in TLS mode, the Subscribe's Policy asks for a client certificate from the CA it names
    ca_der = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes()).public_bytes(Encoding.DER)
    ca_sha1 = hashlib.sha1(ca_der).hexdigest()
    auth = ET.fromstring(parse.decode(answer)).find(f".//{{{ns.AUTHENTICATION}}}Authentication")
    assert auth is not None and auth.get("Profile") == ns.PROFILE_HTTPS_MUTUAL
    thumb = auth.find(f"{{{ns.AUTHENTICATION}}}ClientCertificate/{{{ns.AUTHENTICATION}}}Thumbprint")
    assert thumb is not None and thumb.get("Role") == "issuer" and thumb.text == ca_sha1.upper()
    sub = parse.subscriptions(answer)[0]
    assert sub.notify_to.startswith(t.base + ns.SUBSCRIPTIONS_PATH)
    hosts = build_host_payload(run_id="c0ffee000001", hosts=1, max_items=10, seed=3, variants=1)
    env = WsmanPayload(hosts).envelopes(0, 10, 0, 100, to=sub.notify_to, machine="liar.example.com",
                                        session="uuid:S", reference=sub.reference, max_envelope=sub.max_envelope)
    status, answer = _post(sub.notify_to, env.data, ctx)
    assert status == 200 and parse.ack_relates_to(answer) == (ns.ACTION_ACK, env.message_ids[0])
    # a wrong Identifier is 404 and an oversize envelope 400 (OpenWEC's codes); OpenWEC takes any Version
    wrong = parse.decode(env.data).replace(sub.identifier, "00000000-0000-0000-0000-000000000000").encode("utf-16-le")
    with pytest.raises(Exception) as info:
        _post(sub.notify_to, ns.BOM + wrong, ctx)
    assert getattr(info.value, "code", None) == 404
    other_version = parse.decode(env.data).replace(sub.version, "uuid:OLD").encode("utf-16-le")
    status, answer = _post(sub.notify_to, ns.BOM + other_version, ctx)
    assert status == 200 and parse.ack_relates_to(answer)[0] == ns.ACTION_ACK
    with pytest.raises(Exception) as info:
        _post(sub.notify_to, env.data + b" \x00" * 300_000, ctx)
    assert getattr(info.value, "code", None) == 400
    stats = requests.Session()
    stats.cert = (str(d / "WKS-7.corp.example.com.crt"), str(d / "WKS-7.corp.example.com.key"))
    wait_for(lambda: stats.get(t.base + "/stats/collector", verify=str(d / "ca.crt"), timeout=5).json()["uploaded_events"] == 20)
    rows = read_rows(s3_client, bucket)
    assert len(rows) == 20 and {r["source_host"] for r in rows} == {"WKS-7.corp.example.com"}


@pytest.mark.slow
def test_mtls_wsman_run_against_the_embedded_stack_accounts_exactly(tmp_path: Path) -> None:
    d = _certs(tmp_path)
    results = tmp_path / "r.json"
    done = wefperf(
        "run", "--embedded", "--protocol", "wsman", "--hosts", "300", "--target-eps", "1500",
        "--duration-secs", "2", "--max-latency-secs", "0.5", "--verify-s3", "--flush-interval-secs", "1",
        "--client-ca-cert", str(d / "ca.crt"), "--client-ca-key", str(d / "ca.key"),
        "--client-cert-cache", str(tmp_path / "cache"), "--no-live", "--results", str(results), timeout=180,
    )
    assert done.code == 0, done.out + done.err
    data = json.loads(results.read_text())
    # every host enumerated once, and again at a refresh if its first (anywhere in the first hour) fell in the run
    enumerations = 300 + data["wsman"]["refreshes"]
    assert "https://127.0.0.1" in done.out and f"{enumerations} enumerations" in done.out
    sent = data["results"]["events_sent"]
    acc = data["s3_verification"]["accounting"]
    assert sent > 0 and data["results"]["events_failed"] == 0
    assert acc["expected"] == acc["found"] == sent and acc["missing"] == 0 and acc["duplicated"] == 0
    counted = data["server_stats"]["final_total"] - data["server_stats"]["baseline_total"]
    assert counted == sent  # sent = acked = counted = parquet rows
    assert len(list((tmp_path / "cache").rglob("*.crt"))) == 301  # one per host + the observer


@pytest.mark.slow
def test_two_processes_of_wsman_hosts_account_exactly_as_one_run(tmp_path: Path) -> None:
    """Each process runs every other host and numbers its deliveries apart, so no marker repeats."""
    results = tmp_path / "r.json"
    done = wefperf(
        "run", "--embedded", "--protocol", "wsman", "--hosts", "120", "--target-eps", "1200",
        "--duration-secs", "2", "--max-latency-secs", "0.5", "--verify-s3", "--flush-interval-secs", "1",
        "--processes", "2", "--no-live", "--results", str(results), "-e", "PERF_TEST_PASS_RATIO=0.5", timeout=180,
    )
    assert done.code == 0, done.out + done.err
    data = json.loads(results.read_text())
    sent = data["results"]["events_sent"]
    acc = data["s3_verification"]["accounting"]
    assert sent > 0 and data["results"]["events_failed"] == 0
    assert acc["expected"] == acc["found"] == sent and acc["missing"] == 0 and acc["duplicated"] == 0
    # the merged result adds up both processes' protocol counters: every host enumerated once
    # (and any refresh: a host's first falls anywhere in the first hour, so now and then in a short run)
    enumerations = 120 + data["wsman"]["refreshes"]
    assert data["wsman"]["enumerations"] == enumerations and f"{enumerations:,} enumerations" in done.out
    assert data["wsman"]["envelopes"] >= data["results"]["successful_batches"]


def test_a_piped_wsman_run_prints_timed_progress_and_its_own_endpoint(tiny: Script, tmp_path: Path) -> None:
    """Issue 21: `make demo-wsman` was silent through its load; its Endpoint line named /wsman/events."""
    done, _ = _run(tiny, tmp_path, "--target-eps", "20", "--duration-secs", "2", "--max-latency-secs", "0.3",
                   "--progress-secs", "0.5")
    assert done.code == 0, done.out + done.err
    progress = [line for line in done.out.splitlines() if line.startswith("  Progress: ")]
    assert progress, done.out  # every 0.5 s over a 2 s load: at least one, however slow the machine
    assert f"Endpoint: http://127.0.0.1:{tiny.port}/wsman/SubscriptionManager/WEC" in done.out
