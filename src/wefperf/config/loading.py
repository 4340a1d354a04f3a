"""Loading settings: flags over environment over profile over defaults, and errors that name the setting."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import SecretStr, ValidationError

from .layers import build_layered
from .mode import ModeConflict, choose_mode
from .profiles import profile_path, read_profile
from .rules import ConfigError, parse_segment
from .settings import ENV_NAMES, SECRET_FIELDS, S3Settings, Settings, env_name

# How a --processes parent tells its children which settings its user gave (Settings.given): the
# children read every setting from the environment.
GIVEN_ENV = "WEFPERF_GIVEN_SETTINGS"

M = TypeVar("M", bound=S3Settings)
_FIELD_BY_ENV = {env: name for name, env in ENV_NAMES.items()}


def load_settings(
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings from flags, environment, profile and defaults, or raise ConfigError.

    `overrides` are field names (None means "not given"); `environ` replaces os.environ when
    given (for tests and embedding harnesses).
    """
    env = os.environ if environ is None else environ
    overrides = indexed_job_segment(overrides, env)
    layer: dict[str, Any] = {}
    keys: dict[str, str] = {}  # field -> where the profile gave it, for messages
    if profile:
        prof = read_profile(profile)
        path = profile_path(profile)
        layer = dict(prof["settings"])
        keys = {name: f"{path}: [settings] {name}" for name in layer}
        layer.setdefault("test_name", prof.get("title") or prof["name"])
        for table, shown in (("stages", "[[stages]]"), ("thresholds", "[thresholds]")):
            if table in prof:  # [[stages]] and [thresholds] sit beside [settings]
                layer[table] = prof[table]
                keys[table] = f"{path}: {shown}"
    try:
        overrides = choose_mode(overrides, env, layer, ENV_NAMES)
    except ModeConflict as exc:
        raise ConfigError(str(exc)) from None
    flagged = {name for name, value in overrides.items() if value is not None}
    upper = {key.upper() for key in env}

    def from_profile(field: str) -> str | None:
        """The profile's file and key when the profile gave the value (no flag or variable over it)."""
        if field in flagged or env_name(field).upper() in upper:
            return None
        return keys.get(field)

    settings = _load(Settings, overrides, environ, layer, source=from_profile)
    settings._profile = profile or None
    inherited = env.get(GIVEN_ENV)
    if inherited is not None:  # a --processes child: what the parent's user gave
        settings._given = frozenset(n for n in inherited.split(",") if n in Settings.model_fields)
    else:
        settings._given = frozenset(f for f in Settings.model_fields if f in flagged or env_name(f).upper() in upper)
    return settings


def indexed_job_segment(overrides: Mapping[str, Any] | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """A Kubernetes Indexed Job pod: JOB_COMPLETION_INDEX/PERF_TEST_SEGMENTS when no segment is given."""
    flags = dict(overrides or {})
    index = environ.get("JOB_COMPLETION_INDEX", "").strip()
    count = str(flags.get("segments") or environ.get("PERF_TEST_SEGMENTS", "")).strip()
    if flags.get("segment") or environ.get("PERF_TEST_SEGMENT", "").strip() or not index or not count or count == "0":
        return flags
    if not index.isdigit():
        raise ConfigError(f"JOB_COMPLETION_INDEX: expected a whole number (got {index!r})")
    if not count.isdigit():
        raise ConfigError(f"PERF_TEST_SEGMENTS: expected a whole number (got {count!r})")
    try:
        parse_segment(f"{index}/{count}")
    except ValueError as exc:
        raise ConfigError(f"JOB_COMPLETION_INDEX / PERF_TEST_SEGMENTS: {exc}") from None
    flags["segment"] = f"{int(index)}/{int(count)}"
    return flags


def load_s3_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> S3Settings:
    """S3Settings for `verify` and `collector`: flags, then S3_* / AWS_* variables, then defaults.

    `flag_names` (field -> flag) lets a message name the flag beside the variable.
    """
    return _load(S3Settings, overrides, environ, {}, flag_names)


def _load(
    model: type[M],
    overrides: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None,
    profile: Mapping[str, Any],
    flag_names: Mapping[str, str] | None = None,
    source: Callable[[str], str | None] | None = None,
) -> M:
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return build_layered(model, flags, environ, profile)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, flag_names, source)) from None


def describe_validation_error(
    exc: ValidationError, flag_names: Mapping[str, str] | None = None,
    source: Callable[[str], str | None] | None = None,
) -> str:
    """One clause per problem, each naming the setting by its environment variable, or by the
    profile's file and key (`source`) when the profile gave the value."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "__root__"]
        key = loc[0] if loc else ""
        field = _FIELD_BY_ENV.get(key, key)
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            lines.append(f"{key}: unknown setting")
            continue
        if not field:
            lines.append(msg)
            continue
        name = env_name(field)
        if flag_names and field in flag_names:
            name = f"{flag_names[field]} / {name}"
        name = (source(field) if source is not None else None) or name
        given = err.get("input")
        if field not in SECRET_FIELDS and not isinstance(given, (dict, SecretStr)) and "got" not in msg:
            msg = f"{msg} (got {given!r})"
        lines.append(f"{name}: {msg}")
    return "; ".join(lines)
