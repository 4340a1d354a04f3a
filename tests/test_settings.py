"""Settings: the seed's names, precedence, and one clear line with exit 2 for every bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import wefperf
from wefperf.config.loading import load_settings
from wefperf.config.rules import ConfigError

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


# -- issue 14 §3: one configuration source ---------------------------------------------------


def test_every_setting_has_its_environment_name_as_alias_and_a_description() -> None:
    # ENV_NAMES and env_name() are read off the aliases, so a name is written once.
    from wefperf.config.settings import ENV_NAMES, S3Settings, Settings, env_name

    assert issubclass(Settings, S3Settings)  # the S3 part is the one verify and collector use
    for name, field in Settings.model_fields.items():
        assert isinstance(field.validation_alias, str), name
        assert ENV_NAMES[name] == field.validation_alias == env_name(name)
        assert field.description, f"{name} has no description for --help"
    assert set(ENV_NAMES) == set(Settings.model_fields)
    assert {ENV_NAMES[f] for f in S3Settings.model_fields} == {
        "S3_ENDPOINT", "S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_no_private_pydantic_settings_method_is_overridden_and_no_context_state() -> None:
    import contextvars
    import importlib
    import inspect

    import wefperf

    src = Path(wefperf.__file__).parent
    names = sorted(
        "wefperf." + ".".join(p.relative_to(src).with_suffix("").parts)
        for p in src.rglob("*.py")
        if "pydantic_settings" in p.read_text() and p.name != "__main__.py"
    )
    assert "wefperf.config.settings" in names
    for module in map(importlib.import_module, names):
        assert not [v for v in vars(module).values() if isinstance(v, contextvars.ContextVar)], module.__name__
        for cls in [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__]:
            assert "_load_env_vars" not in vars(cls), cls
            library = [b for b in cls.__mro__ if b.__module__.startswith("pydantic_settings")]
            for attr, value in vars(cls).items():
                method = inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod, property))
                if method and attr.startswith("_") and not attr.startswith("__"):
                    overridden = [b.__name__ for b in library if attr in vars(b)]
                    assert not overridden, f"{cls.__name__}.{attr} overrides private {overridden}"


def test_environ_mappings_do_not_leak_between_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def load(n: int) -> int:
        return load_settings(environ={"PERF_TEST_BATCH_SIZE": str(n)}).batch_size

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(load, range(1, 201))) == list(range(1, 201))


def test_direct_construction_reads_keywords_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from wefperf.config.settings import Settings

    monkeypatch.setenv("PERF_TEST_BATCH_SIZE", "7")
    monkeypatch.setenv("BATCH_SIZE", "9")
    assert Settings().batch_size == 7
    assert Settings(batch_size=5).batch_size == 5


def test_s3_settings_know_whether_an_endpoint_was_given() -> None:
    from wefperf.config.loading import load_s3_settings

    assert "s3_endpoint" not in load_s3_settings(environ={}).model_fields_set  # the collector starts moto
    # set to the default value is still "given": the collector must not start moto then
    assert "s3_endpoint" in load_s3_settings(environ={"S3_ENDPOINT": "http://minio:9000"}).model_fields_set
    given = load_s3_settings({"s3_endpoint": "http://127.0.0.1:9"}, environ={"S3_ENDPOINT": "http://x:1"})
    assert given.s3_endpoint == "http://127.0.0.1:9"
    assert (given.access_key, given.secret_key) == ("miniouser", "miniopassword")


# One rule each, the same verdict from all three commands (exit 2, one line).
_RUN_FAST = ["--wef-endpoint", "http://127.0.0.1:9", "--health-timeout-secs", "0", "--total-events", "10",
             "--batch-size", "10"]
_COMMANDS = {
    "run": ["run", *_RUN_FAST],
    "verify": ["verify", "--event-type", "4624"],
    "collector": ["collector", "--port", "0"],
}


@pytest.mark.parametrize("command", sorted(_COMMANDS))
@pytest.mark.parametrize("bucket", ["ab", "b" * 64])
def test_one_bucket_rule_for_every_command(command: str, bucket: str, tmp_path: Path) -> None:
    done = wefperf(*_COMMANDS[command], env={"S3_BUCKET": bucket, "PERF_TEST_RESULTS": str(tmp_path / "r.json")})
    _one_line_exit_2(done, "S3_BUCKET", "3 to 63 characters", repr(bucket))


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_one_url_rule_for_every_command(command: str, tmp_path: Path) -> None:
    done = wefperf(*_COMMANDS[command],
                   env={"S3_ENDPOINT": "http://minio:99999", "PERF_TEST_RESULTS": str(tmp_path / "r.json")})
    _one_line_exit_2(done, "S3_ENDPOINT", "invalid port")


def test_one_event_id_rule_for_run_and_verify() -> None:
    from wefperf.config.rules import check_event_id

    ran = wefperf("run", "--event-type", "0")
    verified = wefperf("verify", "--event-type", "0")
    _one_line_exit_2(ran, "PERF_TEST_EVENT_TYPE")
    _one_line_exit_2(verified, "--event-type")
    with pytest.raises(ValueError) as rule:
        check_event_id("0")
    assert str(rule.value) in ran.err and str(rule.value) in verified.err
    assert load_settings(environ={"PERF_TEST_EVENT_TYPE": " 4625 "}).event_type == "4625"
    with pytest.raises(ConfigError):
        load_settings(environ={"PERF_TEST_EVENT_TYPE": "٤٦٢٤"})  # digits, but not ASCII ones


def test_exit_codes_are_one_enum_and_no_command_returns_a_bare_number() -> None:
    import re

    import wefperf
    from wefperf.model import ExitCode

    assert [(c.name, int(c)) for c in ExitCode] == [("PASSED", 0), ("FAILED", 1), ("USAGE", 2), ("INTERRUPTED", 130)]
    src = Path(wefperf.__file__).parent
    bare = re.compile(r"\bEXIT_[A-Z]+\b|return (?:1|2|130)(?![\w.])|SystemExit\((?:0|1|2|130)\)|exit_code == \d")
    found = [f"{p.relative_to(src)}:{n}: {line.strip()}"
             for p in [*src.glob("cli/*.py"), src / "judge" / "verdict.py", src / "collector" / "service.py",
                       src / "report" / "console.py"]
             for n, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert not found, found


# -- issue 15 item 3: a profile is a [settings] table and nothing else --------------------------


def test_profile_without_a_settings_table_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "flat.toml"
    f.write_text("target_eps = 10000\ntotal_events = 1000\n")
    with pytest.raises(ConfigError, match=r"flat\.toml.*target_eps"):
        load_settings(str(f), environ={})
    g = tmp_path / "empty.toml"
    g.write_text('name = "empty"\n')
    with pytest.raises(ConfigError, match=r"empty\.toml: no \[settings\] table"):
        load_settings(str(g), environ={})
    _one_line_exit_2(wefperf("run", "--profile", str(f)), str(f), "[settings]")


def test_profile_with_an_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "odd.toml"
    f.write_text('name = "odd"\nowner = "me"\n[settings]\ntarget_eps = 5\n')
    with pytest.raises(ConfigError, match=r"odd\.toml: unknown top-level key\(s\) owner; allowed: name, title"):
        load_settings(str(f), environ={})
    _one_line_exit_2(wefperf("run", "--profile", str(f)), str(f), "owner")


def test_profile_keys_the_builtin_profiles_use_are_the_allowed_ones() -> None:
    import tomllib

    from wefperf.config.profiles import PROFILE_DIR, PROFILE_KEYS

    for path in PROFILE_DIR.glob("*.toml"):
        keys = set(tomllib.loads(path.read_text()))
        assert {"name", "title", "description", "settings"} <= keys <= set(PROFILE_KEYS), path.name


# -- issue 15 item 5: the results path is checked before the load --------------------------------


def test_unwritable_results_path_is_refused_before_any_load(tmp_path: Path) -> None:
    from fake_collector import FakeCollector

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "results.json"  # its parent is a regular file
    collector = FakeCollector().start()
    try:
        done = wefperf("run", "--total-events", "1000", "--batch-size", "100", "--results", str(target),
                       env={"WEF_ENDPOINT": collector.url, "PERF_TEST_PROCESSING_WAIT_SECS": "0"})
    finally:
        collector.stop()
    _one_line_exit_2(done, "PERF_TEST_RESULTS", str(target))
    assert "PERFORMANCE TEST RESULTS" not in done.out
    assert collector.requests == 0
    assert blocker.read_text() == ""


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_results_path_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        done = wefperf("run", "--wef-endpoint", "http://127.0.0.1:9", "--results", str(locked / "r.json"))
    finally:
        locked.chmod(0o755)
    _one_line_exit_2(done, "PERF_TEST_RESULTS", "ermission denied")


def test_results_check_changes_nothing(tmp_path: Path) -> None:
    from wefperf.report.results_json import check_writable

    check_writable(tmp_path / "new" / "deeper" / "r.json")
    assert list(tmp_path.iterdir()) == []  # no folder made, no scratch file left
    existing = tmp_path / "r.json"
    existing.write_text("old")
    check_writable(existing)
    assert existing.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path)


def test_a_run_whose_results_cannot_be_written_does_not_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wefperf.cli.run import finish
    from wefperf.judge.verdict import Verdict
    from wefperf.measure.recorder import Recorder
    from wefperf.model import ExitCode, RunResult, ServerStats

    settings = load_settings(environ={})
    passed = RunResult("rid", "t", "2026-01-01T00:00:00+00:00", None, settings.public_dict(),
                       Recorder(0.0).summary(1.0), ServerStats(), Verdict(True, ExitCode.PASSED))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert finish(passed, str(blocker / "r.json")) == ExitCode.USAGE
    assert "could not write results" in capsys.readouterr().err
    assert finish(passed, str(blocker / "r.json"), interrupted=True) == ExitCode.INTERRUPTED
    assert finish(passed, str(tmp_path / "r.json")) == ExitCode.PASSED


# -- issue 15 item 11: --version, and help that says what each flag means -----------------------


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib import metadata

    import wefperf as package

    done = wefperf("--version")
    assert done.code == 0, done.err
    assert done.out.strip() == f"wefperf {metadata.version('wefperf')}"
    assert package.__version__ == metadata.version("wefperf")


def test_run_help_gives_each_flag_its_meaning_variable_and_default() -> None:
    import re

    from wefperf.config.settings import ENV_NAMES, SECRET_FIELDS

    done = wefperf("run", "--help")
    assert done.code == 0, done.err
    text = re.sub(r"\s+", " ", done.out)
    assert "--batch-size N events per batch (request) (env PERF_TEST_BATCH_SIZE, default 1,000)" in text
    assert "(env PERF_TEST_RESULTS, default /tmp/performance_test_results.json)" in text
    for field, env in ENV_NAMES.items():
        if field not in SECRET_FIELDS:
            assert re.search(rf"\(env {env}, default [^)]+\)", text), field
    for secret in ("miniouser", "miniopassword", "AWS_SECRET_ACCESS_KEY"):
        assert secret not in text


@pytest.mark.parametrize("command", ["verify", "collector"])
def test_s3_flag_help_comes_from_the_model_and_hides_secrets(command: str) -> None:
    import re

    done = wefperf(command, "--help")
    assert done.code == 0, done.err
    text = re.sub(r"\s+", " ", done.out)
    assert "--bucket NAME bucket holding the parquet files (env S3_BUCKET, default wef-events)" in text
    assert "(env S3_ENDPOINT," in text
    assert "miniopassword" not in text and "miniouser" not in text
