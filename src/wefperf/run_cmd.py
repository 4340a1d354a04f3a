"""`wefperf run`: placeholder, being written (issue 2)."""

from __future__ import annotations

import argparse


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("run", help="run a load test")
    p.add_argument("--profile")
    p.set_defaults(handler=lambda args: 2)
