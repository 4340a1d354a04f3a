"""Children of the collector die with it, even when it is killed with SIGKILL.

A SIGKILLed process runs no cleanup, so a child it started (moto's S3 server,
or the collector that `embedded_stack` starts) must notice on its own that its
parent is gone. These tests start the real processes, find the children in
/proc, kill the parent with SIGKILL and wait for every child to go. Since they
run the real collector, they also check its start-up line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from wefperf.collector.s3server import MotoServer

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds children through /proc (Linux)")

READY = "wefperf collector listening on "


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
    return fields[0], int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pid:
                out.append(int(entry.name))
    return out


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


class Proc:
    """A pid pinned to its start time, so a reused pid does not count as alive."""

    def __init__(self, pid: int) -> None:
        st = _stat(pid)
        assert st is not None, f"process {pid} is already gone"
        self.pid, self.start, self.cmd = pid, st[2], _cmdline(pid)

    def alive(self) -> bool:
        st = _stat(self.pid)
        return st is not None and st[2] == self.start and st[0] not in ("Z", "X")

    def __repr__(self) -> str:
        return f"{self.pid} ({self.cmd.strip()})"


def _wait_gone(procs: list[Proc], timeout: float) -> list[Proc]:
    deadline = time.monotonic() + timeout
    left = [p for p in procs if p.alive()]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if p.alive()]
    return left


def _wait_for_child(pid: int, needle: str, timeout: float = 30) -> Proc:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for kid in _descendants(pid):
            if needle in _cmdline(kid):
                return Proc(kid)
        time.sleep(0.1)
    raise AssertionError(f"no child running {needle!r} under {pid} within {timeout} s")


@pytest.fixture
def reaper() -> Iterator[list[Proc]]:
    """Whatever a test registers here is SIGKILLed afterwards, so a failing test leaves nothing running."""
    procs: list[Proc] = []
    yield procs
    for p in procs:
        if p.alive():
            os.kill(p.pid, signal.SIGKILL)


def _start(argv: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    # Output goes to files, not pipes: a pipe this test holds open would keep
    # the children's stdout alive and is not how a killed parent leaves them.
    out = open(tmp_path / "stdout", "w")
    err = open(tmp_path / "stderr", "w")
    try:
        return subprocess.Popen(argv, stdout=out, stderr=err, text=True, cwd=tmp_path, start_new_session=True)
    finally:
        out.close()
        err.close()


def _wait_ready(proc: subprocess.Popen[str], tmp_path: Path, marker: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (tmp_path / "stdout").read_text()
        for line in text.splitlines():
            if line.startswith(marker):
                return line[len(marker):]
        assert proc.poll() is None, f"exited {proc.returncode}: {(tmp_path / 'stderr').read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout} s: {(tmp_path / 'stderr').read_text()}")


def test_sigkilled_collector_takes_its_moto_child_with_it(tmp_path: Path, reaper: list[Proc]) -> None:
    collector = _start([sys.executable, "-m", "wefperf", "collector", "--port", "0"], tmp_path)
    reaper.append(Proc(collector.pid))
    _wait_ready(collector, tmp_path, READY)
    moto = _wait_for_child(collector.pid, " moto.server ")
    reaper.append(moto)
    assert moto.alive()

    os.kill(collector.pid, signal.SIGKILL)
    collector.wait(timeout=10)
    assert _wait_gone([moto], timeout=5) == [], f"moto outlived its SIGKILLed collector: {moto}"


def test_collector_stopped_normally_still_stops_moto(tmp_path: Path, reaper: list[Proc]) -> None:
    """The ordinary path is unchanged: SIGTERM flushes, stops moto, and the collector exits 0."""
    collector = _start([sys.executable, "-m", "wefperf", "collector", "--port", "0"], tmp_path)
    reaper.append(Proc(collector.pid))
    _wait_ready(collector, tmp_path, READY)
    moto = _wait_for_child(collector.pid, " moto.server ")
    reaper.append(moto)

    collector.send_signal(signal.SIGTERM)
    assert collector.wait(timeout=30) == 0, (tmp_path / "stderr").read_text()
    assert _wait_gone([moto], timeout=5) == []
    # Its start-up line gives the file size limit in MiB (the unit of --max-file-size-mb), not in bytes.
    log = (tmp_path / "stderr").read_text()
    assert "files up to 100 MiB)" in log and "104857600" not in log, log


def test_start_up_line_gives_the_size_limit_as_passed(tmp_path: Path, reaper: list[Proc]) -> None:
    collector = _start(
        [sys.executable, "-m", "wefperf", "collector", "--port", "0", "--max-file-size-mb", "12.5"], tmp_path
    )
    reaper.append(Proc(collector.pid))
    _wait_ready(collector, tmp_path, READY)
    reaper.append(_wait_for_child(collector.pid, " moto.server "))
    deadline = time.monotonic() + 10
    while "files up to" not in (tmp_path / "stderr").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "files up to 12.5 MiB)" in (tmp_path / "stderr").read_text()
    collector.send_signal(signal.SIGTERM)
    collector.wait(timeout=30)


def test_sigkilled_embedded_run_takes_moto_and_the_collector_with_it(tmp_path: Path, reaper: list[Proc]) -> None:
    """`wefperf run --embedded` starts moto and a collector (embedded_stack); a SIGKILL of the run,
    mid-load, must not orphan them."""
    run = _start(
        [sys.executable, "-m", "wefperf", "run", "--profile", "sustained-10k", "--embedded",
         "--duration-secs", "120", "--target-eps", "2000", "--results", str(tmp_path / "results.json")],
        tmp_path,
    )
    reaper.append(Proc(run.pid))
    moto = _wait_for_child(run.pid, " moto.server ", timeout=60)
    collector = _wait_for_child(run.pid, " wefperf collector ", timeout=60)
    reaper += [moto, collector]
    assert moto.pid != collector.pid and moto.alive() and collector.alive()
    _wait_ready_to_send(tmp_path)

    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=10)
    # moto stops at once; the collector gets SIGTERM first (its flush has nowhere to go now) and
    # at most the lifeline's grace period (5 s) before it is made to exit.
    left = _wait_gone([moto, collector], timeout=15)
    assert left == [], f"outlived their SIGKILLed parent: {left}"


def _wait_ready_to_send(tmp_path: Path, timeout: float = 60) -> None:
    """Until the run says it is sending, so the kill lands mid-load."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Sending events" in (tmp_path / "stdout").read_text():
            time.sleep(0.5)
            return
        time.sleep(0.1)
    raise AssertionError(f"the run did not start sending within {timeout} s: {(tmp_path / 'stderr').read_text()}")


def test_moto_server_from_a_worker_thread_survives_that_thread(reaper: list[Proc]) -> None:
    """Starting moto from a thread that then ends (asyncio.to_thread does this) must not stop it:
    the child is tied to the process, not to the thread that forked it."""
    import threading

    box: list[MotoServer] = []
    worker = threading.Thread(target=lambda: box.append(MotoServer().start()))
    worker.start()
    worker.join()
    (server,) = box
    try:
        assert server.process is not None
        reaper.append(Proc(server.process.pid))
        time.sleep(1.0)
        assert server.process.poll() is None
        import urllib.request

        urllib.request.urlopen(server.endpoint + "/moto-api/", timeout=5).close()
    finally:
        server.stop()


LEAKY_DRIVER = textwrap.dedent(
    """
    import subprocess, time
    from wefperf.collector.s3server import MotoServer

    moto = MotoServer().start()
    # Another child started afterwards, keeping every inheritable descriptor: it must not get a
    # copy of moto's lifeline, or moto would live as long as this child does.
    other = subprocess.Popen(["sleep", "120"], close_fds=False)
    print("READY", moto.process.pid, other.pid, flush=True)
    time.sleep(3600)
    """
)


def test_a_sibling_child_does_not_keep_moto_alive(tmp_path: Path, reaper: list[Proc]) -> None:
    driver = _start([sys.executable, "-c", LEAKY_DRIVER], tmp_path)
    reaper.append(Proc(driver.pid))
    moto_pid, other_pid = map(int, _wait_ready(driver, tmp_path, "READY ").split())
    moto, other = Proc(moto_pid), Proc(other_pid)
    reaper += [moto, other]

    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=10)
    assert _wait_gone([moto], timeout=5) == [], f"moto outlived its SIGKILLed parent: {moto}"
    assert other.alive(), "the sibling (no lifeline) is not ours to stop"
