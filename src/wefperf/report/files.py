"""Writing a report file whole or not at all, with the mode the user's umask gives.

`tempfile.mkstemp` creates its file `-rw-------` whatever the umask, and a rename keeps that
mode, so results written that way could not be read by the user's group or a web server. The
scratch file is created here with `os.open(..., 0o666)` instead: the kernel applies the umask.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_whole(path: str | os.PathLike[str], text: str, suffix: str) -> Path:
    """Write `text` to `path` via a scratch file in the same folder and a rename.

    A device or FIFO (/dev/null, /dev/stdout, a named pipe) is written through, never renamed over.
    """
    target = Path(path)
    if target.exists() and not target.is_file():
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _scratch(target.parent, suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _scratch(folder: Path, suffix: str) -> tuple[int, Path]:
    """A new file no one else has: O_EXCL with a random name, mode 0o666 less the umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = folder / f".wefperf-{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
