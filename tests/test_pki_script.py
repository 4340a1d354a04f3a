"""scripts/make-pki.sh, the throwaway PKI compose's wsman services share: real openssl, a real mTLS handshake."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make-pki.sh"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _make(out: Path, *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), str(out), *names], capture_output=True, text=True, timeout=60)


def _handshake(pki: Path, client_cert: Path, client_key: Path, server_name: str) -> str:
    """An mTLS server on 127.0.0.1 that demands a client certificate from the CA; returns the client's CN."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    server_ctx.load_verify_locations(pki / "ca.crt")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                subject = dict(x[0] for x in tls.getpeercert()["subject"])
                seen.append(subject["commonName"])
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    client_ctx.load_cert_chain(client_cert, client_key)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                tls.recv(2)
    finally:
        thread.join(5)
        listener.close()
    return seen[0] if seen else ""


def test_the_pki_carries_a_server_and_a_client_certificate_from_one_ca(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    done = _make(pki, "openwec", "localhost")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in pki.iterdir()) == [
        "ca.crt", "ca.key", "client.crt", "client.key", "server.crt", "server.key"]
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(pki / "ca.crt"), str(pki / "server.crt"),
                             str(pki / "client.crt")], capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(pki / "server.crt"), "-noout", "-text"],
                          capture_output=True, text=True, timeout=30).stdout
    assert "Subject: CN = openwec" in text and "TLS Web Server Authentication" in text
    assert "DNS:openwec, DNS:localhost" in text and "prime256v1" in text
    # The client certificate passes the server's check, and the server's passes the client's (by name).
    assert _handshake(pki, pki / "client.crt", pki / "client.key", "localhost") == "wefperf-client"


def test_a_client_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    assert _make(tmp_path / "pki").returncode == 0
    assert _make(tmp_path / "other").returncode == 0
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        _handshake(tmp_path / "pki", tmp_path / "other" / "client.crt", tmp_path / "other" / "client.key", "openwec")


def test_an_existing_pki_is_kept(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert _make(pki).returncode == 0
    before = (pki / "ca.crt").read_bytes()
    again = _make(pki)
    assert again.returncode == 0 and "keeping the PKI" in again.stdout
    assert (pki / "ca.crt").read_bytes() == before
