"""`wefperf profiles`: the built-in profiles and what each one sets."""

from __future__ import annotations

import argparse
from typing import Any

from ..model import ExitCode


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("profiles", help="list the built-in profiles and their settings")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..config.profiles import builtin_profiles, read_profile
    from ..config.settings import env_name

    for name in builtin_profiles():
        prof = read_profile(name)
        print(f"{name}: {prof.get('description', '')}")
        for key, value in prof["settings"].items():
            print(f"    {env_name(key):<34} {value}")
        if prof.get("stages"):
            shape = ",".join(f"{st['duration_secs']:g}:{st['target_eps']:g}" for st in prof["stages"])
            print(f"    {env_name('stages'):<34} {shape}")
        if prof.get("thresholds"):
            limits = ",".join(f"{k}={v:g}" for k, v in prof["thresholds"].items())
            print(f"    {env_name('thresholds'):<34} {limits}")
    return ExitCode.PASSED
