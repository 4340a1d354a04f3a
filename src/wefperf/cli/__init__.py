"""The `wefperf` command: one module per sub-command in this package, wired together here.

Adding a command is one module with `add_parser(sub)` and one line in `COMMANDS`.
Exit codes: `wefperf.model.ExitCode` (0 passed, 1 failed, 2 usage or configuration error, 130 interrupted).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..model import ExitCode

# Sub-command modules, in the order `wefperf --help` lists them.
COMMANDS = ("run", "capacity", "profiles", "verify", "merge", "collector", "report", "compare", "certs")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"wefperf: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(ExitCode.USAGE)

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """An unknown command lists the commands `--help` lists, not the hidden old names (`target`)."""
        if isinstance(action, argparse._SubParsersAction) and action.choices is not None \
                and value not in action.choices:
            listed = ", ".join(repr(a.dest) for a in action._choices_actions)
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from {listed})")
        super()._check_value(action, value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wefperf", description="Open-model load tester for WEF collectors.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


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
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`wefperf profiles | head`): not an error worth a traceback.
        sys.stderr.close()
        return ExitCode.PASSED


def entry() -> None:
    raise SystemExit(main())
