"""The results JSON file: the seed's keys, plus run id, latency, errors and timeline."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..result import RunResult


def write_results(result: "RunResult", path: str | os.PathLike[str]) -> Path:
    """Written whole or not at all, so a reader never sees half a file."""
    target = Path(path)
    text = json.dumps(result.to_dict(), indent=2, default=str)
    if target.exists() and not target.is_file():
        # /dev/null, a FIFO, /dev/stdout: write through it, never rename over it.
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".wefperf-", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
