"""Why an https connection failed, in words, and the flag that fixes it.

aiohttp reports every TLS failure as a "tls error" (or, when the collector drops the connection after
the handshake, as a reset); the reason sits in the exception chain: a certificate check's verify
code, or the alert the server sent. A collector that requires a client certificate and runs on
asyncio sends no alert at all under TLS 1.3: the client sees a closed connection, so an https reset
is named as what it most likely is, with that hedge.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h): which verify failures mean which mistake.
_UNKNOWN_CA = {2, 18, 19, 20, 21}  # issuer not found, self-signed, local issuer unknown, leaf unverifiable
_NAME_MISMATCH = {62, 64}  # hostname, IP address
_EXPIRED = {9, 10}  # not yet valid, expired
# Alerts a server sends about the client's certificate (OpenSSL's reason names).
_CERT_REQUIRED = {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE"}
_CERT_REFUSED = {"TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                 "TLSV1_ALERT_DECRYPT_ERROR", "TLSV1_ALERT_ACCESS_DENIED", "SSLV3_ALERT_CERTIFICATE_EXPIRED"}
_CLIENT_FLAGS = "--client-cert/--client-key or --client-ca-cert/--client-ca-key"
_SKIP = "or skip the check with --no-tls-verify"


@dataclass(frozen=True)
class TlsSetup:
    """What the client presented: the hints differ with and without a client certificate."""

    client_cert: bool = False
    wsman: bool = False  # client certificates are a WS-Management feature (--protocol wsman)


@dataclass(frozen=True)
class TlsDiagnosis:
    """`reason`: what failed; `fix`: what to change; `definite`: waiting for the collector cannot help."""

    reason: str
    fix: str
    definite: bool


def diagnose(exc: BaseException, url: str, setup: TlsSetup, setting: str = "WEF_ENDPOINT") -> TlsDiagnosis | None:
    """The TLS reason behind `exc` on `url`, or None when it is not a TLS failure."""
    if urlsplit(url).scheme != "https":
        return None
    found = _ssl_error(exc)
    if isinstance(found, ssl.SSLCertVerificationError):
        return _verify_failed(found, url, setting)
    if isinstance(found, ssl.SSLError):
        return _alert(found, setup, setting)
    if _dropped(exc):
        return _closed(setup)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps (aiohttp's os_error, then causes and contexts), each once."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        inner = getattr(item, "os_error", None)
        todo.extend([inner if isinstance(inner, BaseException) else None, item.__cause__, item.__context__])
    return seen


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ssl module's own error (aiohttp's certificate error subclasses it without its fields)."""
    import aiohttp

    return next((e for e in _chain(exc) if isinstance(e, ssl.SSLError) and not isinstance(e, aiohttp.ClientError)),
                None)


def _dropped(exc: BaseException) -> bool:
    """The connection was closed or reset by the server (after the handshake, under TLS 1.3)."""
    import aiohttp

    return any(isinstance(e, (aiohttp.ServerDisconnectedError, ConnectionResetError, ConnectionAbortedError))
               for e in _chain(exc))


def _verify_failed(err: ssl.SSLCertVerificationError, url: str, setting: str) -> TlsDiagnosis:
    code = err.verify_code
    detail = str(err.verify_message or err.reason or err)
    if code in _NAME_MISMATCH:
        host = urlsplit(url).hostname
        return TlsDiagnosis(f"hostname mismatch: the collector's certificate is not valid for {host} ({detail})",
                            f"point {setting} at a name the certificate holds, {_SKIP}", True)
    if code in _UNKNOWN_CA:
        return TlsDiagnosis(f"unknown CA: certificate verify failed ({detail})",
                            f"give the CA that signed the collector's certificate with --tls-ca (PERF_TEST_TLS_CA), {_SKIP}",
                            True)
    if code in _EXPIRED:
        return TlsDiagnosis(f"certificate verify failed ({detail})",
                            f"renew the collector's certificate (or check this machine's clock), {_SKIP}", True)
    return TlsDiagnosis(f"certificate verify failed ({detail})",
                        f"check --tls-ca (PERF_TEST_TLS_CA), {_SKIP}", True)


def _alert(err: ssl.SSLError, setup: TlsSetup, setting: str) -> TlsDiagnosis | None:
    reason = str(err.reason or "")
    if reason in _CERT_REQUIRED or (reason == "SSLV3_ALERT_HANDSHAKE_FAILURE" and not setup.client_cert):
        return TlsDiagnosis(f"certificate required: the collector asks for a client certificate ({reason})",
                            _give_cert(setup), True)
    if reason in _CERT_REFUSED or reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
        return TlsDiagnosis(f"the collector refused the client certificate ({reason})",
                            f"present one signed by a CA the collector trusts ({_CLIENT_FLAGS})", True)
    if reason == "WRONG_VERSION_NUMBER":
        return TlsDiagnosis("the server does not speak TLS on that port",
                            f"use http:// in {setting}, or the collector's https port", True)
    return None


def _closed(setup: TlsSetup) -> TlsDiagnosis:
    if setup.client_cert:
        return TlsDiagnosis("the collector closes every TLS connection without an answer, as one that refuses"
                            " the client certificate does",
                            f"check that a CA the collector trusts signed it ({_CLIENT_FLAGS})", False)
    return TlsDiagnosis("the collector closes every TLS connection without an answer, as one that requires"
                        " a client certificate does", _give_cert(setup), False)


def _give_cert(setup: TlsSetup) -> str:
    where = "" if setup.wsman else " (client certificates need --protocol wsman)"
    return f"give one with {_CLIENT_FLAGS}{where}"
