"""`wefperf certs`: certificates for WEF's TLS mode without openssl (EC P-256, PEM).

    wefperf certs ca --out DIR                           DIR/ca.crt, DIR/ca.key
    wefperf certs server --ca DIR --name HOST [...]      DIR/server.crt, DIR/server.key (SANs: the names)
    wefperf certs client --ca DIR --name FQDN [...]      DIR/<FQDN>.crt, DIR/<FQDN>.key (CN: the FQDN)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..model import ExitCode


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("certs", help="make a CA, a server certificate or client certificates (TLS mode)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=("ca", "server", "client"))
    p.add_argument("--out", default="", help="folder to write to (default: --ca's folder, or the current one)")
    p.add_argument("--ca", default="", metavar="DIR", help="folder holding ca.crt and ca.key (server, client)")
    p.add_argument("--name", action="append", default=[],
                   help="server: a DNS name or IP address (repeatable); client: the host's FQDN (repeatable)")
    p.add_argument("--cn", default="wefperf test CA", help="ca: the CA's common name")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..wsman import certs

    out = Path(args.out or args.ca or ".")
    try:
        if args.kind == "ca":
            ca = certs.make_ca(args.cn)
            pair = certs.write_pair(ca.cert, ca.key, out / "ca.crt", out / "ca.key")
            print(f"wrote {pair.cert} and {pair.key}")
            return ExitCode.PASSED
        if not args.ca:
            return _fail(f"{args.kind} needs --ca DIR (a folder with ca.crt and ca.key)")
        if not args.name:
            return _fail(f"{args.kind} needs at least one --name")
        ca = certs.load_issuer(Path(args.ca) / "ca.crt", Path(args.ca) / "ca.key")
        if args.kind == "server":
            cert, key = certs.issue(ca, args.name[0], server_names=tuple(args.name))
            pair = certs.write_pair(cert, key, out / "server.crt", out / "server.key")
            print(f"wrote {pair.cert} and {pair.key}")
            return ExitCode.PASSED
        for name in args.name:
            cert, key = certs.issue(ca, name)
            pair = certs.write_pair(cert, key, out / f"{name}.crt", out / f"{name}.key")
            print(f"wrote {pair.cert} and {pair.key}")
        return ExitCode.PASSED
    except (certs.CertError, OSError) as exc:
        return _fail(str(exc))


def _fail(message: str) -> int:
    sys.stderr.write(f"wefperf certs: error: {message}\n")
    return ExitCode.USAGE
