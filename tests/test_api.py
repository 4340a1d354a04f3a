"""The Python API as docs/api.md documents it (issue 21 §4): the profile a result came from,
attribute names that match the results JSON's keys, every type a caller receives exported,
and the page's own examples run against a real collector and S3."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import wefperf
from fake_collector import FakeCollector
from wefperf.model import RunResult
from wefperf.verify.model import VerifyResult

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"


async def test_a_result_names_the_profile_its_settings_came_from(collector: FakeCollector) -> None:
    settings = wefperf.load_settings("baseline", {"wef_endpoint": collector.url, "total_events": 500})
    assert settings.profile == "baseline"
    assert settings.model_copy(update={"total_events": 400}).profile == "baseline"
    result = await wefperf.run(settings)
    assert result.profile == "baseline" and result.to_dict()["profile"] == "baseline"
    plain = await wefperf.run(wefperf.load_settings(None, {"wef_endpoint": collector.url, "total_events": 100}))
    assert plain.profile is None
    named = await wefperf.run(settings, profile="mine")  # an explicit name still wins
    assert named.profile == "mine"


def _verify_result() -> VerifyResult:
    return VerifyResult(passed=True, files=2, total_bytes=2048, rows=10, sample_keys=["a.parquet"], problems=["p"],
                        reasons=["1 file too large"])


def test_verify_result_answers_to_its_json_keys() -> None:
    v = _verify_result()
    d = v.to_dict()
    for key in ("success", "files_found", "total_size_mb", "sample_files", "total_size_bytes", "rows", "reason",
                "error", "problem_count", "bucket", "event_types", "run_id"):
        assert getattr(v, key) == d[key], key
    assert v.success is v.passed  # the old name keeps working


def test_run_result_and_load_summary_answer_to_their_json_keys() -> None:
    result = RunResult.from_dict(_SAMPLE)
    assert result.server_stats is result.server and result.s3_verification is result.s3
    load, block = result.load, _SAMPLE["results"]
    for key in ("total_time_seconds", "successful_batches", "failed_batches", "events_acknowledged",
                "events_failed_unsent", "events_per_second_overall", "events_per_second_attempted",
                "load_window_seconds", "drain_seconds", "events_due_in_window", "events_failed", "events_sent",
                "late_batches", "due_not_sent", "timed_out", "interrupted", "cut_short", "aborted"):
        assert getattr(load, key) == pytest.approx(block[key], abs=0.01), key  # the JSON rounds


_LOCALS = {"VerifyResult": VerifyResult, "HdrHistogram": object, "array": list}  # array[int] at run time


def _sample() -> dict[str, typing.Any]:
    from wefperf.measure.recorder import Recorder

    load = dataclasses.replace(Recorder(0.0).summary(2.0), events_sent=10, events_ok=9, batches_ok=3,
                               batches_failed=1, events_failed=1, window_s=1.5, due_events=10)
    result = RunResult(run_id="r1", test_name="t", timestamp="2026-01-01T00:00:00+00:00", profile="baseline",
                       configuration={}, load=load, server=wefperf.ServerStats(),
                       verdict=wefperf.Verdict(True, wefperf.ExitCode.PASSED))
    return result.to_dict()


_SAMPLE = _sample()


def _reachable(cls: type, seen: set[type]) -> None:
    """Every wefperf class a caller can reach through the fields and properties of `cls`."""
    if cls in seen or not cls.__module__.startswith("wefperf"):
        return
    seen.add(cls)
    hints = typing.get_type_hints(cls, localns=_LOCALS)
    props = [p.fget for p in vars(cls).values() if isinstance(p, property) and p.fget is not None]
    for hint in [*hints.values(), *(typing.get_type_hints(f, localns=_LOCALS).get("return") for f in props)]:
        for arg in _flatten(hint):
            if isinstance(arg, type):
                _reachable(arg, seen)


def _flatten(hint: typing.Any) -> list[typing.Any]:
    args = typing.get_args(hint)
    return [hint] if not args else [hint, *(a for x in args for a in _flatten(x))]


def test_every_type_a_caller_receives_is_exported() -> None:
    seen: set[type] = set()
    for root in (RunResult, wefperf.CapacityResult):
        _reachable(root, seen)
    names = {c.__name__ for c in seen}
    assert "VerifyResult" in names and "Accounting" in names
    missing = sorted(n for n in names if n not in wefperf.__all__)
    assert missing == []
    for name in wefperf.__all__:
        assert getattr(wefperf, name) is not None


def test_docs_api_names_every_export() -> None:
    text = API_MD.read_text()
    missing = [n for n in wefperf.__all__ if not re.search(rf"`{n}[`(]", text)]
    assert missing == []


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", API_MD.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_examples_in_docs_api_run(wef_target, moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    """Each python block of docs/api.md, run as written against `wefperf collector` and moto S3."""
    target = wef_target("--flush-interval-secs", "0.5")
    blocks = _examples()
    assert len(blocks) >= 3
    for i, code in enumerate(blocks):
        code = (code.replace("http://127.0.0.1:5985", target.base).replace("http://127.0.0.1:9000", moto_endpoint)
                .replace('"wef-events"', f'"{bucket}"'))
        script = tmp_path / f"example_{i}.py"
        script.write_text(code)
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PATH": "/usr/bin:/bin",
               **{k: v for k, v in __import__("os").environ.items() if k in ("PYTHONPATH", "HOME", "TMPDIR")}}
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=180,
                              cwd=tmp_path)
        assert done.returncode == 0, f"example {i}:\n{code}\n{done.stdout}\n{done.stderr}"
