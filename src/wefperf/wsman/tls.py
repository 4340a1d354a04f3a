"""SSL contexts: the client's (collector CA, optional client certificate) and the collector's."""

from __future__ import annotations

import ssl
from pathlib import Path

from .certs import CertError, Pair


def client_context(*, verify: bool, ca_file: str = "", pair: Pair | None = None) -> ssl.SSLContext:
    """`ca_file` empty: the system store (which honours SSL_CERT_FILE); `verify` False accepts any."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if pair is not None:
        try:
            ctx.load_cert_chain(str(pair.cert), str(pair.key))
        except (OSError, ssl.SSLError) as exc:
            raise CertError(f"cannot use client certificate {pair.cert} with key {pair.key}: {exc}") from None
    return ctx


def server_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """With `client_ca`, a client must present a certificate that CA signed (WEF's TLS mode)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            ctx.load_verify_locations(cafile=str(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise CertError(f"cannot use the TLS certificate, key or client CA: {exc}") from None
    return ctx
