"""`wefperf run --profile NAME` and the other sub-commands.

Exit codes (DESIGN.md): 0 passed, 1 test failed, 2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"wefperf: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wefperf", description="Open-model load tester for WEF collectors.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    from . import run_cmd

    run_cmd.add_parser(sub)

    profiles = sub.add_parser("profiles", help="list the built-in profiles and their settings")
    profiles.set_defaults(handler=_profiles)

    from . import verify_cmd

    verify_cmd.add_parser(sub)

    from .target import cmd as target_cmd

    target_cmd.add_parser(sub)
    return parser


def _profiles(args: argparse.Namespace) -> int:
    from .settings import builtin_profiles, env_name, read_profile

    for name in builtin_profiles():
        prof = read_profile(name)
        print(f"{name}: {prof.get('description', '')}")
        for key, value in prof["settings"].items():
            print(f"    {env_name(key):<34} {value}")
    return EXIT_PASS


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `docker compose run SERVICE -e NAME=VALUE` hands the -e flags to us as the command:
    # with no sub-command they mean `run` with those settings (profile from PERF_TEST_PROFILE).
    if argv and (argv[0] in ("-e", "--env") or argv[0].startswith(("-e", "--env="))):
        argv = ["run", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`wefperf profiles | head`): not an error worth a traceback.
        sys.stderr.close()
        return EXIT_PASS


def entry() -> None:
    raise SystemExit(main())
