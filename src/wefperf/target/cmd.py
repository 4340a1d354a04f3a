"""`wefperf target`: placeholder until the reference collector lands (issue 3)."""

from __future__ import annotations

import argparse


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("target", help="run the reference WEF collector")
    p.set_defaults(handler=lambda args: 2)
