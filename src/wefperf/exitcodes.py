"""The process exit codes: the seed suite's contract, defined once for every command (in model.py)."""

from __future__ import annotations

from .model import ExitCode as ExitCode
