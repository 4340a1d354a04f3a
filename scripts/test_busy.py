#!/usr/bin/env python3
"""Run the test suite on a busy machine: pytest, several times, with CPU burners beside it.

CI runs on shared machines; a test whose assertion depends on how fast the machine is fails
there. This starts BURNERS processes that each spin one core (`python -c 'while True: pass'`),
runs pytest RUNS times with the arguments given, and stops the burners on any exit (success,
failure, Ctrl-C, SIGTERM). It stops only the processes it started, by their ids.

    python scripts/test_busy.py [--runs 3] [--burners 2] [PYTEST ARGS...]
    make test-busy                       # the whole suite, 3 runs, 2 burners, 2 xdist workers

Exit code: 0 when every run passed, else the first failing run's pytest exit code.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from types import FrameType

BURN = "while True: pass"


def _stop(burners: list[subprocess.Popen[bytes]]) -> None:
    for proc in burners:
        if proc.poll() is None:
            proc.kill()
    for proc in burners:
        proc.wait()


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally below, which stops the burners


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="how many times to run pytest (default 3)")
    parser.add_argument("--burners", type=int, default=2, help="CPU-spinning processes beside it (default 2)")
    ns, pytest_args = parser.parse_known_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    burners: list[subprocess.Popen[bytes]] = []
    first_failure = 0
    try:
        burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(ns.burners)]
        for run in range(1, ns.runs + 1):
            print(f"== test-busy: run {run} of {ns.runs}, {ns.burners} CPU burners beside it", flush=True)
            started = time.monotonic()
            code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args])
            print(f"== test-busy: run {run} exited {code} after {time.monotonic() - started:.0f} s", flush=True)
            if code == 5:  # collected nothing: a mistake, not a pass
                code = 1
            if code and not first_failure:
                first_failure = code
    finally:
        _stop(burners)
    return first_failure


if __name__ == "__main__":
    sys.exit(main())
