"""The process exit codes: the seed suite's contract, defined once for every command."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """An `int`, so `sys.exit(ExitCode.FAILED)` and `code == 1` both work."""

    PASSED = 0
    FAILED = 1  # the test ran and did not pass (or a collector dropped events)
    USAGE = 2  # bad flag, setting, profile or path: one line says which
    INTERRUPTED = 130  # Ctrl-C / SIGTERM, as a shell reports SIGINT (128 + 2)
