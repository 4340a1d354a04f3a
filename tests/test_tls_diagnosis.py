"""TLS failures named with their reason and the flag that fixes it (issue 21): real TLS servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from fake_collector import FakeCollector
from helpers import Done, wefperf
from wefperf.observe.stats import ServerUnavailable, wait_for_health
from wefperf.observe.tlsdiag import TlsSetup
from wefperf.wsman.tls import server_context

# A certificate check that fails is reported at once, not after the health timeout (60 s here);
# 30 s leaves room for a busy machine's process start.
AT_ONCE_S = 30.0


@dataclass
class Pki:
    ca: Path
    signed: FakeCollector  # a certificate for 127.0.0.1, signed by `ca`
    wants_client_cert: FakeCollector  # the same, and it requires a client certificate from `ca`
    wrong_name: FakeCollector  # a certificate for collector.example only, signed by `ca`


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    d = tmp_path_factory.mktemp("pki")
    for args in (("ca", "--out", str(d)), ("server", "--ca", str(d), "--name", "127.0.0.1"),
                 ("server", "--ca", str(d), "--name", "collector.example", "--out", str(d / "other"))):
        done = wefperf("certs", *args)
        assert done.code == 0, done.err
    ca = d / "ca.crt"
    servers = [
        FakeCollector(ssl_context=server_context(d / "server.crt", d / "server.key", None)).start(),
        FakeCollector(ssl_context=server_context(d / "server.crt", d / "server.key", ca)).start(),
        FakeCollector(ssl_context=server_context(d / "other" / "server.crt", d / "other" / "server.key", None)).start(),
    ]
    yield Pki(ca, *servers)
    for s in servers:
        s.stop()


def _run(c: FakeCollector, tmp_path: Path, *flags: str, health_s: float = 60) -> tuple[Done, float]:
    started = time.monotonic()
    done = wefperf("run", "--total-events", "2000", "--results", str(tmp_path / "r.json"), *flags,
                   env={"WEF_ENDPOINT": c.url, "PERF_TEST_HEALTH_TIMEOUT_SECS": str(health_s),
                        "PERF_TEST_PROCESSING_WAIT_SECS": "1"})
    return done, time.monotonic() - started


def _health_line(done: Done) -> str:
    assert done.code == 1, done.out + done.err
    lines = [line for line in done.err.splitlines() if "did not become healthy" in line]
    assert len(lines) == 1 and "Traceback" not in done.err, done.err
    return lines[0]


def test_no_ca_given_names_an_unknown_ca_and_tls_ca_at_once(pki: Pki, tmp_path: Path) -> None:
    done, took = _run(pki.signed, tmp_path)
    line = _health_line(done)
    assert "unknown CA" in line and "--tls-ca" in line and "--no-tls-verify" in line, line
    assert took < AT_ONCE_S, took
    assert pki.signed.requests == 0


def test_tls_ca_then_trusts_the_collector_in_the_batch_protocol(pki: Pki, tmp_path: Path) -> None:
    before = pki.signed.requests
    done, _ = _run(pki.signed, tmp_path, "--tls-ca", str(pki.ca))
    assert done.code == 0, done.out + done.err
    assert json.loads((tmp_path / "r.json").read_text())["results"]["successful_batches"] == 2
    assert pki.signed.requests - before == 2


def test_a_server_that_requires_a_client_certificate_is_named_with_the_client_flags(pki: Pki, tmp_path: Path) -> None:
    # It drops the connection without an alert (TLS 1.3 on asyncio): only a hedged reason is possible,
    # so the health check waits its timeout as for any reset.
    done, _ = _run(pki.wants_client_cert, tmp_path, "--tls-ca", str(pki.ca), health_s=2)
    line = _health_line(done)
    assert "connection reset" in line and "requires a client certificate" in line, line
    assert "--client-cert/--client-key" in line and "--client-ca-cert/--client-ca-key" in line, line
    assert "check that the collector is running" not in line


def test_hostname_mismatch_is_named_with_no_tls_verify(pki: Pki, tmp_path: Path) -> None:
    done, took = _run(pki.wrong_name, tmp_path, "--tls-ca", str(pki.ca))
    line = _health_line(done)
    assert "hostname mismatch" in line and "127.0.0.1" in line and "--no-tls-verify" in line, line
    assert took < AT_ONCE_S, took


def test_no_tls_verify_gets_past_the_name(pki: Pki, tmp_path: Path) -> None:
    done, _ = _run(pki.wrong_name, tmp_path, "--no-tls-verify")
    assert done.code == 0, done.out + done.err


def _tls12_server(cert: Path, key: Path, client_ca: Path) -> tuple[socket.socket, int]:
    """A blocking TLS 1.2 server that requires a client certificate: it sends the alert (as OpenSSL
    servers such as OpenWEC's do), which the asyncio collector above never does."""
    ctx = server_context(cert, key, client_ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with contextlib.suppress(OSError), conn, ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)

    threading.Thread(target=serve, daemon=True).start()
    return listener, int(listener.getsockname()[1])


def test_a_certificate_required_alert_is_named_at_once(pki: Pki) -> None:
    listener, port = _tls12_server(pki.ca.parent / "server.crt", pki.ca.parent / "server.key", pki.ca)
    url = f"https://127.0.0.1:{port}/health"

    async def check() -> str:
        context = ssl.create_default_context(cafile=str(pki.ca))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            with pytest.raises(ServerUnavailable) as failed:
                await wait_for_health(session, url, 60, tls=TlsSetup(client_cert=False, wsman=True))
        return str(failed.value)

    try:
        started = time.monotonic()
        message = asyncio.run(check())
        took = time.monotonic() - started
    finally:
        listener.close()
    assert "certificate required" in message and "--client-cert/--client-key" in message, message
    assert "--protocol wsman" not in message  # already WS-Management
    assert took < AT_ONCE_S, took
