"""`wefperf verify`: placeholder until the S3 verifier lands (issue 4)."""

from __future__ import annotations

import argparse


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("verify", help="check the parquet files a collector wrote to S3")
    p.set_defaults(handler=lambda args: 2)
