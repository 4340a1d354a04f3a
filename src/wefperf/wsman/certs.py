"""Certificates for WEF's TLS mode: a CA, server certificates, and one client certificate per host.

EC P-256 keys: a key takes well under a millisecond (RSA-2048 takes ~50 ms, so 10,000 hosts would
spend minutes). Minted client certificates are cached on disk under the CA's fingerprint and the
host name, so a second run with the same CA reads them back instead of signing again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAYS = 825


@dataclass(frozen=True)
class Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class Pair:
    """PEM files of one certificate and its key."""

    cert: Path
    key: Path


class CertError(ValueError):
    """A certificate or key that cannot be read or used (one line for the user)."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=_DAYS))
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_ca(cn: str = "wefperf test CA") -> Issuer:
    key = new_key()
    cert = (
        _builder(cn, _name(cn), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issuer(cert, key)


def issue(ca: Issuer, cn: str, *, server_names: tuple[str, ...] = ()) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf: a client certificate (CN = the host's FQDN), or a server one for `server_names`."""
    key = new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
    b = _builder(cn, ca.cert.subject, key.public_key()).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    ).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server_names:
        alt: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return b.sign(ca.key, hashes.SHA256()), key


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_pair(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path) -> Pair:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert_pem(cert))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem(key))
    return Pair(cert_path, key_path)


def load_issuer(cert_path: Path, key_path: Path) -> Issuer:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertError(f"cannot read the CA certificate or key ({cert_path}, {key_path}): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError(f"{key_path}: the CA key must be an EC key (wefperf certs ca makes one)")
    return Issuer(cert, key)


def thumbprint(cert_path: Path) -> str:
    """The SHA-1 thumbprint (upper-case hex, as Windows shows it) of the first certificate of a PEM
    file: what a Subscribe's Policy names as the issuer of the clients' certificates."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertError(f"cannot read the certificate {cert_path}: {exc}") from None
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # Windows names certificates by their SHA-1


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wefperf" / "client-certs"


def client_pairs(ca: Issuer, names: list[str], cache: Path) -> list[Pair]:
    """One client certificate per name, read from the cache or minted (and cached)."""
    folder = cache / ca.fingerprint[:32]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        stem = hashlib.sha256(name.encode()).hexdigest()[:24]
        pair = Pair(folder / f"{stem}.crt", folder / f"{stem}.key")
        if not (pair.cert.exists() and pair.key.exists()):
            cert, key = issue(ca, name)
            write_pair(cert, key, pair.cert, pair.key)
        out.append(pair)
    return out


def common_name(peer: Any) -> str:
    """The subject CN of a peer certificate as `ssl.SSLObject.getpeercert()` returns it."""
    if not peer:
        return ""
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def file_common_name(path: Path) -> str:
    """The subject CN of a PEM certificate file; empty when it has none or cannot be read."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return ""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def shared_cert_line(cert_path: str, hosts: int) -> str:
    """What a collector sees when every host presents the same certificate (--shared-client-cert)."""
    cn = file_common_name(Path(cert_path))
    who = f"CN={cn}" if cn else cert_path
    return (f"Client certificate: all {hosts:,} hosts present {who}; a collector that names clients by their"
            f" certificate (OpenWEC) sees one machine{f' {cn}' if cn else ''}, with one bookmark and one"
            " heartbeat record, sending the whole fleet's events")
