"""The results JSON file: the seed's keys, plus run id, latency, errors and timeline."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Protocol

from .files import write_whole


class Results(Protocol):
    """What a results file is written from: a run's result, or a capacity search's."""

    def to_dict(self) -> dict[str, Any]: ...


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise OSError unless `write_results` could write `path`; creates and changes nothing there.

    Checked before the load starts, so a bad path costs seconds, not a whole test. A device or
    FIFO is opened for writing without truncating it (never replaced); otherwise a scratch file
    is made and removed in the nearest existing folder, where `write_results` will create one.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(target))
    if target.exists() and not target.is_file():
        _check_special(target)
        return
    folder = target.parent
    while not folder.exists():  # write_results makes the missing folders
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(folder))
    fd, scratch = tempfile.mkstemp(prefix=".wefperf-check-", suffix=".json", dir=folder)
    os.close(fd)
    os.unlink(scratch)


def _check_special(target: Path) -> None:
    if stat.S_ISFIFO(target.stat().st_mode):
        # Opening a FIFO for writing waits for a reader; permission is what can be known now.
        if not os.access(target, os.W_OK):
            raise PermissionError(13, "Permission denied", str(target))
        return
    os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))


def write_results(result: Results, path: str | os.PathLike[str]) -> Path:
    """Written whole or not at all, so a reader never sees half a file; the umask gives its mode."""
    return write_whole(path, json.dumps(result.to_dict(), indent=2, default=str) + "\n", ".json")
