"""Settings: the seed's names, precedence, and one clear line with exit 2 for every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wefperf

from wefperf.settings import ConfigError, load_settings

SEED_DEFAULTS = {
    "total_events": 50_000,
    "duration_secs": 0,
    "batch_size": 1_000,
    "target_eps": 0,
    "event_type": "",
    "wef_endpoint": "http://wef-server:5985",
    "wef_stats_endpoint": "http://wef-server:5985/stats/throughput",
    "verify_s3": False,
    "s3_endpoint": "http://minio:9000",
    "s3_bucket": "wef-events",
}


def test_defaults_are_the_seeds() -> None:
    s = load_settings(environ={})
    for field, value in SEED_DEFAULTS.items():
        assert getattr(s, field) == value, field
    assert s.aws_access_key_id.get_secret_value() == "miniouser"
    assert s.aws_secret_access_key.get_secret_value() == "miniopassword"
    assert s.results_path == "/tmp/performance_test_results.json"


def test_every_seed_variable_is_read() -> None:
    env = {
        "PERF_TEST_TOTAL_EVENTS": "123", "PERF_TEST_DURATION_SECS": "7", "PERF_TEST_BATCH_SIZE": "50",
        "PERF_TEST_TARGET_EPS": "2500", "PERF_TEST_TIMEOUT_SECS": "99", "PERF_TEST_EVENT_TYPE": "4625",
        "WEF_ENDPOINT": "http://127.0.0.1:1234", "WEF_STATS_ENDPOINT": "http://127.0.0.1:1234/s",
        "PERF_TEST_VERIFY_S3": "true", "S3_ENDPOINT": "http://127.0.0.1:9", "S3_BUCKET": "bkt-x",
        "AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk",
    }
    s = load_settings(environ=env)
    assert (s.total_events, s.duration_secs, s.batch_size, s.target_eps, s.timeout_secs) == (123, 7, 50, 2500, 99)
    assert s.event_type == "4625" and s.verify_s3 is True
    assert s.wef_endpoint == "http://127.0.0.1:1234" and s.wef_stats_endpoint == "http://127.0.0.1:1234/s"
    assert (s.s3_endpoint, s.s3_bucket) == ("http://127.0.0.1:9", "bkt-x")
    assert s.aws_access_key_id.get_secret_value() == "ak" and s.aws_secret_access_key.get_secret_value() == "sk"


def test_precedence_flag_over_env_over_profile_over_default() -> None:
    # profile sustained-10k says 10,000/s and 60 s
    assert load_settings("sustained-10k", environ={}).target_eps == 10_000
    assert load_settings("sustained-10k", environ={"PERF_TEST_TARGET_EPS": "5000"}).target_eps == 5_000
    s = load_settings("sustained-10k", {"target_eps": 2000}, environ={"PERF_TEST_TARGET_EPS": "5000"})
    assert s.target_eps == 2_000
    assert s.duration_secs == 60  # from the profile
    assert s.concurrency == 64  # the default


def test_bare_field_names_in_the_environment_are_ignored() -> None:
    assert load_settings(environ={"BATCH_SIZE": "0", "SENDER": "nope"}).batch_size == 1000


def test_endpoint_without_path_posts_to_wsman_events() -> None:
    assert load_settings(environ={"WEF_ENDPOINT": "http://h:5985"}).events_url == "http://h:5985/wsman/events"
    assert load_settings(environ={"WEF_ENDPOINT": "http://h:5985/wsman"}).events_url == "http://h:5985/wsman"
    assert load_settings(environ={"WEF_ENDPOINT": "http://h:5985/"}).health_url == "http://h:5985/health"


def test_custom_profile_file(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('name = "mine"\n[settings]\ntarget_eps = 1234\nduration_secs = 3\n')
    s = load_settings(str(f), environ={})
    assert (s.target_eps, s.duration_secs, s.test_name) == (1234, 3, "mine")


def test_profile_with_unknown_setting_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[settings]\nrate = 5\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(str(f), environ={})


def test_profile_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[settings\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(str(f), environ={})


def _one_line_exit_2(done, *needles: str) -> None:
    assert done.code == 2, (done.code, done.out, done.err)
    lines = [line for line in done.err.splitlines() if line.strip()]
    assert len(lines) == 1, done.err
    assert "Traceback" not in done.err + done.out
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_rate_that_is_not_a_number() -> None:
    _one_line_exit_2(wefperf("run", env={"PERF_TEST_TARGET_EPS": "fast"}), "PERF_TEST_TARGET_EPS", "number", "'fast'")


def test_rate_flag_that_is_not_a_number() -> None:
    _one_line_exit_2(wefperf("run", "--target-eps", "lots"), "PERF_TEST_TARGET_EPS", "number")


def test_negative_duration() -> None:
    _one_line_exit_2(wefperf("run", env={"PERF_TEST_DURATION_SECS": "-5"}), "PERF_TEST_DURATION_SECS", "greater than or equal to 0")


def test_batch_size_zero() -> None:
    _one_line_exit_2(wefperf("run", "--batch-size", "0"), "PERF_TEST_BATCH_SIZE", "greater than or equal to 1")


def test_unknown_profile() -> None:
    _one_line_exit_2(wefperf("run", "--profile", "sustained-1m"), "--profile", "unknown profile", "sustained-10k")


def test_missing_profile_file() -> None:
    _one_line_exit_2(wefperf("run", "--profile", "/nonexistent/p.toml"), "no such file")


def test_malformed_url() -> None:
    _one_line_exit_2(wefperf("run", env={"WEF_ENDPOINT": "wef-server:5985"}), "WEF_ENDPOINT", "http://")


def test_malformed_s3_url() -> None:
    _one_line_exit_2(wefperf("run", env={"S3_ENDPOINT": "ftp://minio"}), "S3_ENDPOINT")


def test_bad_boolean() -> None:
    _one_line_exit_2(wefperf("run", env={"PERF_TEST_VERIFY_S3": "perhaps"}), "PERF_TEST_VERIFY_S3", "boolean")


def test_bad_event_type() -> None:
    _one_line_exit_2(wefperf("run", env={"PERF_TEST_EVENT_TYPE": "logon"}), "PERF_TEST_EVENT_TYPE", "event ID")


def test_both_modes_zero() -> None:
    _one_line_exit_2(wefperf("run", "--total-events", "0", "--duration-secs", "0"), "PERF_TEST_TOTAL_EVENTS")


def test_dash_e_with_unknown_name() -> None:
    _one_line_exit_2(wefperf("-e", "PERF_TEST_RATE=5"), "PERF_TEST_RATE", "not a setting")


def test_dash_e_without_value() -> None:
    _one_line_exit_2(wefperf("-e", "PERF_TEST_TARGET_EPS"), "NAME=VALUE")


def test_unknown_flag_is_a_usage_error() -> None:
    _one_line_exit_2(wefperf("run", "--rate", "5"), "unrecognized arguments")


def test_profiles_command_lists_all_six() -> None:
    done = wefperf("profiles")
    assert done.code == 0
    for name in ("baseline", "target-100k", "target-200k", "target-500k", "sustained-10k", "max-throughput"):
        assert f"{name}:" in done.out
    assert "PERF_TEST_TARGET_EPS" in done.out and "500000" in done.out


@pytest.mark.parametrize(
    "name,expected",
    [
        ("baseline", dict(total_events=50_000, batch_size=1_000, target_eps=0, duration_secs=0)),
        ("target-100k", dict(total_events=1_000_000, target_eps=100_000, timeout_secs=300)),
        ("target-200k", dict(total_events=2_000_000, target_eps=200_000, timeout_secs=300)),
        ("target-500k", dict(total_events=5_000_000, target_eps=500_000, timeout_secs=600)),
        ("sustained-10k", dict(duration_secs=60, target_eps=10_000, event_type="4624", verify_s3=True,
                               flush_interval_secs=5, max_file_size_mb=100)),
        ("max-throughput", dict(duration_secs=60, target_eps=0, event_type="4624", verify_s3=True)),
    ],
)
def test_builtin_profiles(name: str, expected: dict) -> None:
    s = load_settings(name, environ={})
    for field, value in expected.items():
        assert getattr(s, field) == value, (name, field)
