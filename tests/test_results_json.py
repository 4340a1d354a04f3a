"""The results writer: whole files, and never a rename over a device or a pipe."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

from wefperf.config.loading import load_settings
from wefperf.judge.verdict import judge
from wefperf.measure.recorder import Recorder
from wefperf.model import RunResult, ServerStats
from wefperf.report.results_json import write_results


def _result() -> RunResult:
    settings = load_settings(environ={"AWS_SECRET_ACCESS_KEY": "hidden-value"})
    load = Recorder(0.0).summary(1.0)
    return RunResult("rid", "t", "2026-01-01T00:00:00+00:00", None, settings.public_dict(), load,
                     ServerStats(), judge(settings, load, None))


def test_writes_a_whole_json_file(tmp_path: Path) -> None:
    path = write_results(_result(), tmp_path / "sub" / "r.json")
    data = json.loads(path.read_text())
    assert data["run_id"] == "rid" and "hidden-value" not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temp file left behind


def test_a_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_results(_result(), fifo)
    reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert json.loads(got[0])["run_id"] == "rid"
