"""Running the real CLI as a child process, the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Done:
    code: int
    out: str
    err: str


def wefperf(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Done:
    """`python -m wefperf ARGS` with a clean slate of wefperf variables plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERF_TEST_", "WEF_", "S3_", "AWS_"))}
    base.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "wefperf", *args], capture_output=True, text=True, env=base, timeout=timeout
    )
    return Done(proc.returncode, proc.stdout, proc.stderr)
