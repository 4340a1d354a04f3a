"""https collectors (WEF's port 5986): the aiohttp sender, certificate checks on and off."""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path

import pytest

from fake_collector import FakeCollector
from helpers import wefperf


@pytest.fixture(scope="module")
def tls_collector(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    c = FakeCollector(ssl_context=ctx).start()
    yield c, cert
    c.stop()


def test_self_signed_collector_with_verification_off(tls_collector, tmp_path: Path) -> None:
    c, _ = tls_collector
    before = c.requests
    results = tmp_path / "r.json"
    done = wefperf("run", "--total-events", "5000", "--no-tls-verify", "--results", str(results),
                   env={"WEF_ENDPOINT": c.url, "PERF_TEST_PROCESSING_WAIT_SECS": "2"})
    assert done.code == 0, done.out + done.err
    data = json.loads(results.read_text())
    assert data["sender"] == "aiohttp"  # auto picks aiohttp for https://
    assert data["results"]["successful_batches"] == 5 == c.requests - before


def test_self_signed_collector_with_verification_on_is_refused_clearly(tls_collector, tmp_path: Path) -> None:
    c, _ = tls_collector
    done = wefperf("run", "--total-events", "5000", "--results", str(tmp_path / "r.json"),
                   env={"WEF_ENDPOINT": c.url, "PERF_TEST_HEALTH_TIMEOUT_SECS": "1"})
    assert done.code == 1
    assert "tls error" in done.err and "Traceback" not in done.err


def test_trusted_ca_through_ssl_cert_file(tls_collector, tmp_path: Path) -> None:
    c, cert = tls_collector
    done = wefperf("run", "--total-events", "2000", "--results", str(tmp_path / "r.json"),
                   env={"WEF_ENDPOINT": c.url, "SSL_CERT_FILE": str(cert), "PERF_TEST_PROCESSING_WAIT_SECS": "2"})
    assert done.code == 0, done.out + done.err
