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


def collector_context(*, verify: bool, ca_file: str) -> ssl.SSLContext | bool:
    """The batch protocol's TLS: --tls-ca's CA when given, else the system store (True) or no check (False)."""
    return client_context(verify=verify, ca_file=ca_file) if ca_file else verify


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


def host_contexts(
    *, url: str, names: list[str], verify: bool, ca_file: str, client_cert: str, client_key: str,
    client_ca_cert: str, client_ca_key: str, cache: str,
) -> tuple[list[ssl.SSLContext | bool], ssl.SSLContext | bool]:
    """Every host's SSL context (its own certificate when a CA mints them) and the observer's, made
    before the clock starts. Over http:// there is nothing to make. With the system store each
    context takes ~20 ms (the store is parsed each time); `ca_file` (--tls-ca) takes under 1 ms."""
    from .certs import client_pairs, default_cache, load_issuer

    if not url.startswith("https://"):
        return [True] * len(names), True
    if client_ca_cert:
        ca = load_issuer(Path(client_ca_cert), Path(client_ca_key))
        pairs = client_pairs(ca, [*names, "wefperf-observer"], Path(cache) if cache else default_cache())
        contexts: list[ssl.SSLContext | bool] = [
            client_context(verify=verify, ca_file=ca_file, pair=p) for p in pairs
        ]
        return contexts[:-1], contexts[-1]
    pair = Pair(Path(client_cert), Path(client_key)) if client_cert else None
    shared = client_context(verify=verify, ca_file=ca_file, pair=pair)
    return [shared] * len(names), shared
