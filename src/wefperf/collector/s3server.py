"""moto's S3 server mode in a child process (the embedded S3 for the demo and the tests), and the
lifeline that makes such children die with the process that started them.

A parent killed with SIGKILL runs no cleanup, so its children must find out by themselves. The
lifeline is a pipe: the parent keeps the write end, the child gets only the read end, and a thread
in the child blocks reading it. Whenever the parent dies, however it dies, the kernel closes the
write end, the read returns end-of-file, and the child stops itself: SIGTERM first (moto and the
collector both stop cleanly on it), then a hard exit if that has not worked within a grace period.

Why not PR_SET_PDEATHSIG through prctl in a preexec_fn: it is Linux-only; it fires when the
*thread* that forked the child ends, not the process, and these children are started from
asyncio.to_thread workers that come and go; and preexec_fn is documented as unsafe in a process
with threads. The pipe needs none of that and works on every POSIX system.

The child side runs as `python -m wefperf.collector.s3server --lifeline-fd N MODULE ARGS...`: it
starts the watcher thread, then runs MODULE as __main__ with ARGS, in the same process.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# Seconds a child whose parent died gets between the SIGTERM it sends itself and a hard exit.
LIFELINE_GRACE_SECS = 5.0
# This module, run with -m: the child side of the lifeline.
LIFELINE_MODULE = "wefperf.collector.s3server"


class Lifeline:
    """One child's tie to this process; see the module docstring.

    Use: `argv = lifeline.argv(module, *args)`, start the child with `pass_fds=lifeline.pass_fds`,
    call `lifeline.started()` right after, and `lifeline.close()` once the child has exited (closing
    it earlier tells a running child to stop, with only the grace period to finish).
    On a system without fd passing (Windows) it is inert: the child runs the module directly.
    """

    supported = os.name == "posix"

    def __init__(self, grace_secs: float = LIFELINE_GRACE_SECS) -> None:
        self.grace_secs = grace_secs
        self._read: int | None = None
        self._write: int | None = None
        if self.supported:
            # Both ends are non-inheritable: no other child of this process gets a copy of the
            # write end (which would keep the pipe open after this process died).
            self._read, self._write = os.pipe()

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self._read,) if self._read is not None else ()

    def argv(self, module: str, *args: str) -> list[str]:
        if self._read is None:
            return [sys.executable, "-m", module, *args]
        return [
            sys.executable, "-m", LIFELINE_MODULE,
            "--lifeline-fd", str(self._read), "--grace-secs", f"{self.grace_secs:g}", module, *args,
        ]

    def started(self) -> None:
        """The child holds its own copy of the read end now; this process must not keep one."""
        if self._read is not None:
            os.close(self._read)
            self._read = None

    def close(self) -> None:
        self.started()
        if self._write is not None:
            os.close(self._write)
            self._write = None


def _watch_parent(fd: int, grace_secs: float) -> None:
    """Block until the parent's end of the pipe closes, then stop this process."""
    try:
        while os.read(fd, 4096):
            pass  # nobody writes; data would only mean a confused caller
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_secs)
    os._exit(1)


def _lifeline_main(argv: list[str] | None = None) -> None:
    """The child side: watch the lifeline in a daemon thread, then run the module as __main__."""
    parser = argparse.ArgumentParser(prog=f"python -m {LIFELINE_MODULE}")
    parser.add_argument("--lifeline-fd", type=int, required=True)
    parser.add_argument("--grace-secs", type=float, default=LIFELINE_GRACE_SECS)
    parser.add_argument("module")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    threading.Thread(
        target=_watch_parent, args=(ns.lifeline_fd, ns.grace_secs), name="lifeline", daemon=True
    ).start()
    sys.argv = [ns.module, *ns.args]
    runpy.run_module(ns.module, run_name="__main__", alter_sys=True)


@dataclass
class MotoServer:
    """A running `moto.server` process on 127.0.0.1; any access key and secret are accepted."""

    host: str = "127.0.0.1"
    port: int = 0
    # Extra environment for the moto process, e.g. {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} to enforce credentials.
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _lifeline: Lifeline | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "MotoServer":
        try:
            import moto.server  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "the embedded S3 needs moto's server mode: pip install 'wefperf[collector]'"
            ) from None
        if not self.port:
            self.port = free_port(self.host)
        # moto stops at once on SIGTERM, so a short grace suffices.
        self._lifeline = Lifeline(grace_secs=2.0)
        try:
            self.process = subprocess.Popen(
                self._lifeline.argv("moto.server", "-H", self.host, "-p", str(self.port)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **self.env} if self.env else None,
                pass_fds=self._lifeline.pass_fds,
            )
        except BaseException:
            self._lifeline.close()
            self._lifeline = None
            raise
        self._lifeline.started()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()  # closes the lifeline too
                raise RuntimeError(f"embedded S3 (moto) exited with code {code} on port {self.port}")
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).close()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"embedded S3 (moto) did not answer on {self.endpoint} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    _lifeline_main()
