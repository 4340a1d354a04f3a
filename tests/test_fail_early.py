"""Fail before the load, not after it (issue 21, section 1): S3 checked before anything is sent,
conflicting mode flags refused, a profile's bad value named by its file and key."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_collector import FakeCollector
from helpers import Done, wefperf
from wefperf.config.loading import load_settings
from wefperf.config.rules import ConfigError

# Before the fix these runs went through the load (4 s) and the S3 wait (2 x flush + 15 s) before failing.
# A refusal before the load takes a process start and one S3 request; 20 s is generous on a busy machine.
BEFORE_THE_LOAD_S = 20.0
S3_CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    c = FakeCollector().start()
    yield c
    c.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(*args: str, env: dict[str, str]) -> tuple[Done, float]:
    started = time.monotonic()
    done = wefperf(*args, env=env, timeout=120)
    return done, time.monotonic() - started


def _one_error_line(done: Done) -> str:
    lines = [line for line in done.err.splitlines() if line.strip()]
    assert len(lines) == 1, done.err
    assert "Traceback" not in done.err + done.out
    return lines[0]


def _env(c: FakeCollector, **extra: str) -> dict[str, str]:
    return {"WEF_ENDPOINT": c.url, "PERF_TEST_PROCESSING_WAIT_SECS": "1", "PERF_TEST_FLUSH_INTERVAL_SECS": "1",
            **S3_CREDS, **extra}


# -- 1. S3 before the load -------------------------------------------------------------------


def test_unreachable_s3_endpoint_is_refused_before_anything_is_sent(collector: FakeCollector, tmp_path: Path) -> None:
    port = _closed_port()
    done, took = _timed("run", "--target-eps", "2000", "--duration-secs", "4", "--verify-s3",
                        "--s3-endpoint", f"http://127.0.0.1:{port}", "--results", str(tmp_path / "r.json"),
                        env=_env(collector))
    assert done.code == 2, done.out + done.err
    line = _one_error_line(done)
    assert f"http://127.0.0.1:{port}" in line and "'wef-events'" in line and "cannot reach" in line, line
    assert collector.requests == 0 and "Sending events" not in done.out
    assert took < BEFORE_THE_LOAD_S, took


def test_a_bucket_that_does_not_exist_is_refused_before_the_load(collector: FakeCollector, moto_endpoint: str,
                                                                 tmp_path: Path) -> None:
    done, took = _timed("run", "--target-eps", "2000", "--duration-secs", "4", "--verify-s3",
                        "--s3-endpoint", moto_endpoint, "--s3-bucket", "no-such-bucket-i21",
                        "--results", str(tmp_path / "r.json"), env=_env(collector))
    assert done.code == 2, done.out + done.err
    line = _one_error_line(done)
    assert "'no-such-bucket-i21'" in line and "does not exist" in line and moto_endpoint in line, line
    assert collector.requests == 0
    assert took < BEFORE_THE_LOAD_S, took


def test_a_readable_bucket_passes_the_check_and_the_run_goes_on(collector: FakeCollector, moto_endpoint: str,
                                                                bucket: str, tmp_path: Path) -> None:
    done = wefperf("run", "--total-events", "2000", "--s3-endpoint", moto_endpoint, "--s3-bucket", bucket,
                   "--segment", "0/1", "--shard-results", f"s3://{bucket}/shards",
                   "--results", str(tmp_path / "r.json"), env=_env(collector))
    assert done.code == 0, done.out + done.err
    assert f"S3 bucket '{bucket}' at {moto_endpoint} is readable" in done.out
    assert collector.requests == 2


def test_shard_results_in_a_missing_bucket_is_refused_before_the_load(collector: FakeCollector, moto_endpoint: str,
                                                                      tmp_path: Path) -> None:
    done = wefperf("run", "--total-events", "2000", "--s3-endpoint", moto_endpoint, "--segment", "0/2",
                   "--shard-results", "s3://no-such-shards-i21/p", "--results", str(tmp_path / "r.json"),
                   env=_env(collector))
    assert done.code == 2, done.out + done.err
    line = _one_error_line(done)
    assert "--shard-results" in line and "'no-such-shards-i21'" in line and "does not exist" in line, line
    assert "S3_BUCKET" not in line  # the bucket comes from the s3:// URL, not from S3_BUCKET
    assert collector.requests == 0


def test_processes_parent_checks_s3_before_starting_its_children(collector: FakeCollector, moto_endpoint: str,
                                                                 tmp_path: Path) -> None:
    done, took = _timed("run", "--processes", "2", "--target-eps", "2000", "--duration-secs", "4", "--verify-s3",
                        "--s3-endpoint", moto_endpoint, "--s3-bucket", "no-such-bucket-i21",
                        "--results", str(tmp_path / "r.json"), env=_env(collector))
    assert done.code == 2, done.out + done.err
    line = _one_error_line(done)
    assert "'no-such-bucket-i21'" in line and "does not exist" in line, line
    assert collector.requests == 0 and "[segment" not in done.err
    assert took < BEFORE_THE_LOAD_S, took


# -- 3. duration and total events ------------------------------------------------------------


def test_duration_and_total_events_both_given_as_flags_are_refused(tmp_path: Path) -> None:
    done = wefperf("run", "--duration-secs", "5", "--total-events", "100", "--results", str(tmp_path / "r.json"),
                   env={"WEF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "PERF_TEST_HEALTH_TIMEOUT_SECS": "1"})
    assert done.code == 2, done.out + done.err
    line = _one_error_line(done)
    assert "--duration-secs" in line and "--total-events" in line, line
    with pytest.raises(ConfigError, match="--duration-secs"):
        load_settings(None, {"duration_secs": 5, "total_events": 100}, environ={})


def test_stages_with_a_duration_flag_are_refused() -> None:
    with pytest.raises(ConfigError, match="--stages"):
        load_settings(None, {"stages": "2:100", "duration_secs": 5}, environ={})


def test_zero_turns_the_other_mode_off_without_a_conflict() -> None:
    s = load_settings(None, {"duration_secs": 0, "total_events": 100}, environ={})
    assert (s.duration_secs, s.total_events) == (0, 100)


def test_total_events_over_a_profiles_duration_makes_a_counted_run() -> None:
    s = load_settings("sustained-10k", {"total_events": 3000}, environ={})
    assert (s.total_events, s.duration_secs, s.duration_mode) == (3000, 0, False)
    env = load_settings("soak-1h", environ={"PERF_TEST_TOTAL_EVENTS": "5000"})
    assert (env.total_events, env.duration_secs) == (5000, 0)


def test_duration_over_a_profiles_total_events_makes_a_timed_run() -> None:
    s = load_settings("baseline", {"duration_secs": 5}, environ={})
    assert s.duration_mode and s.duration_secs == 5


def test_both_in_the_environment_keep_the_seeds_rule_duration_wins() -> None:
    s = load_settings(environ={"PERF_TEST_TOTAL_EVENTS": "100", "PERF_TEST_DURATION_SECS": "5"})
    assert s.duration_mode and s.duration_secs == 5


# -- 4. a profile's bad value names the file and the key -------------------------------------


def test_a_bad_value_in_a_profile_names_the_file_and_the_key(tmp_path: Path) -> None:
    profile = tmp_path / "bad3.toml"
    profile.write_text('[settings]\ntarget_eps = "fast"\n')
    done = wefperf("run", "--profile", str(profile))
    assert done.code == 2, done.out + done.err
    line = _one_error_line(done)
    assert line.startswith(f"wefperf: configuration error: {profile}: [settings] target_eps: "), line
    assert line.endswith("(got 'fast')") and "PERF_TEST_TARGET_EPS" not in line, line


def test_the_same_value_from_the_environment_still_names_the_variable(tmp_path: Path) -> None:
    profile = tmp_path / "good.toml"
    profile.write_text("[settings]\ntarget_eps = 10\n")
    with pytest.raises(ConfigError, match=r"^PERF_TEST_TARGET_EPS: .*\(got 'fast'\)"):
        load_settings(str(profile), environ={"PERF_TEST_TARGET_EPS": "fast"})


def test_a_bad_stages_table_names_the_file_and_the_table(tmp_path: Path) -> None:
    profile = tmp_path / "bad4.toml"
    profile.write_text("[settings]\ntarget_eps = 10\n\n[[stages]]\nduration_secs = 5\n")
    with pytest.raises(ConfigError, match=rf"^{profile}: \[\[stages\]\]: "):
        load_settings(str(profile), environ={})
