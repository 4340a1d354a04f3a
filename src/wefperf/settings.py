"""One Settings model. The seed suite's environment variable names are the contract.

Precedence, highest first: command-line flag > environment > profile > default.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PROFILE_DIR = Path(__file__).parent / "profiles"
DEFAULT_RESULTS_PATH = "/tmp/performance_test_results.json"


class ConfigError(ValueError):
    """A bad setting: the CLI prints the message as one line and exits 2."""


# Field name -> environment variable, for messages and for `wefperf profiles`.
ENV_NAMES: dict[str, str] = {
    "total_events": "PERF_TEST_TOTAL_EVENTS",
    "duration_secs": "PERF_TEST_DURATION_SECS",
    "batch_size": "PERF_TEST_BATCH_SIZE",
    "target_eps": "PERF_TEST_TARGET_EPS",
    "timeout_secs": "PERF_TEST_TIMEOUT_SECS",
    "event_type": "PERF_TEST_EVENT_TYPE",
    "wef_endpoint": "WEF_ENDPOINT",
    "wef_stats_endpoint": "WEF_STATS_ENDPOINT",
    "verify_s3": "PERF_TEST_VERIFY_S3",
    "s3_endpoint": "S3_ENDPOINT",
    "s3_bucket": "S3_BUCKET",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    # wefperf's own additions, same naming scheme.
    "test_name": "PERF_TEST_NAME",
    "concurrency": "PERF_TEST_CONCURRENCY",
    "sender": "PERF_TEST_SENDER",
    "tls_verify": "PERF_TEST_TLS_VERIFY",
    "request_timeout_secs": "PERF_TEST_REQUEST_TIMEOUT_SECS",
    "health_timeout_secs": "PERF_TEST_HEALTH_TIMEOUT_SECS",
    "stats_interval_secs": "PERF_TEST_STATS_INTERVAL_SECS",
    "processing_wait_secs": "PERF_TEST_PROCESSING_WAIT_SECS",
    "flush_interval_secs": "PERF_TEST_FLUSH_INTERVAL_SECS",
    "max_file_size_mb": "PERF_TEST_MAX_FILE_SIZE_MB",
    "drain_timeout_secs": "PERF_TEST_DRAIN_TIMEOUT_SECS",
    "pass_ratio": "PERF_TEST_PASS_RATIO",
    "payload_variants": "PERF_TEST_PAYLOAD_VARIANTS",
    "results_path": "PERF_TEST_RESULTS",
}


def env_name(field: str) -> str:
    return ENV_NAMES.get(field, field)


class Settings(BaseSettings):
    """Everything a run needs; built by `load_settings`, or directly from Python."""

    model_config = SettingsConfigDict(
        populate_by_name=True, extra="forbid", case_sensitive=False, validate_default=True
    )

    test_name: str = Field("", validation_alias="PERF_TEST_NAME")
    total_events: int = Field(50_000, ge=0, validation_alias="PERF_TEST_TOTAL_EVENTS")
    duration_secs: float = Field(0, ge=0, validation_alias="PERF_TEST_DURATION_SECS")
    batch_size: int = Field(1_000, ge=1, le=100_000, validation_alias="PERF_TEST_BATCH_SIZE")
    target_eps: float = Field(0, ge=0, validation_alias="PERF_TEST_TARGET_EPS")
    timeout_secs: float = Field(300, gt=0, validation_alias="PERF_TEST_TIMEOUT_SECS")
    event_type: str = Field("", validation_alias="PERF_TEST_EVENT_TYPE")

    wef_endpoint: str = Field("http://wef-server:5985", validation_alias="WEF_ENDPOINT")
    wef_stats_endpoint: str = Field(
        "", validation_alias="WEF_STATS_ENDPOINT"
    )

    verify_s3: bool = Field(False, validation_alias="PERF_TEST_VERIFY_S3")
    s3_endpoint: str = Field("http://minio:9000", validation_alias="S3_ENDPOINT")
    s3_bucket: str = Field("wef-events", min_length=3, validation_alias="S3_BUCKET")
    aws_access_key_id: SecretStr = Field(
        SecretStr("miniouser"), validation_alias="AWS_ACCESS_KEY_ID"
    )
    aws_secret_access_key: SecretStr = Field(
        SecretStr("miniopassword"), validation_alias="AWS_SECRET_ACCESS_KEY"
    )

    concurrency: int = Field(64, ge=1, le=4096, validation_alias="PERF_TEST_CONCURRENCY")
    sender: Literal["auto", "fast", "aiohttp"] = Field(
        "auto", validation_alias="PERF_TEST_SENDER"
    )
    tls_verify: bool = Field(True, validation_alias="PERF_TEST_TLS_VERIFY")
    request_timeout_secs: float = Field(
        30, gt=0, validation_alias="PERF_TEST_REQUEST_TIMEOUT_SECS"
    )
    health_timeout_secs: float = Field(
        60, ge=0, validation_alias="PERF_TEST_HEALTH_TIMEOUT_SECS"
    )
    stats_interval_secs: float = Field(
        1, gt=0, validation_alias="PERF_TEST_STATS_INTERVAL_SECS"
    )
    processing_wait_secs: float = Field(
        10, ge=0, validation_alias="PERF_TEST_PROCESSING_WAIT_SECS"
    )
    flush_interval_secs: float = Field(
        5, ge=0, validation_alias="PERF_TEST_FLUSH_INTERVAL_SECS"
    )
    max_file_size_mb: float = Field(
        100, gt=0, validation_alias="PERF_TEST_MAX_FILE_SIZE_MB"
    )
    drain_timeout_secs: float = Field(
        10, ge=0, validation_alias="PERF_TEST_DRAIN_TIMEOUT_SECS"
    )
    pass_ratio: float = Field(0.95, gt=0, le=1, validation_alias="PERF_TEST_PASS_RATIO")
    payload_variants: int = Field(
        8, ge=1, le=256, validation_alias="PERF_TEST_PAYLOAD_VARIANTS"
    )
    results_path: str = Field(DEFAULT_RESULTS_PATH, validation_alias="PERF_TEST_RESULTS")

    def __init__(self, **values: Any) -> None:
        # Field names and environment names both work; translating first lets a keyword
        # argument win over the same setting in the environment.
        super().__init__(**_by_alias(values))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _EnvSource(settings_cls), _ProfileSource(settings_cls))

    @field_validator("test_name", mode="before")
    @classmethod
    def _default_name(cls, v: Any) -> Any:
        return v if v not in (None, "") else "Target Rate Event Ingestion"

    @field_validator("event_type", mode="before")
    @classmethod
    def _event_type(cls, v: Any) -> str:
        text = "" if v is None else str(v).strip()
        if text and not (text.isdigit() and 0 < int(text) <= 65535):
            raise ValueError(f"must be a Windows event ID between 1 and 65535, or empty for a mix (got {text!r})")
        return text

    @field_validator("wef_endpoint", "s3_endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v)

    @field_validator("wef_stats_endpoint")
    @classmethod
    def _stats_url(cls, v: str) -> str:
        return _check_url(v) if v else v

    @model_validator(mode="after")
    def _derived(self) -> "Settings":
        if not self.wef_stats_endpoint:
            self.wef_stats_endpoint = self.server_base + "/stats/throughput"
        if self.sender == "fast" and not self.events_url.startswith("http://"):
            raise ValueError(
                "PERF_TEST_SENDER: the fast sender speaks plain http:// only; use aiohttp (or auto) for https://"
            )
        if self.duration_secs == 0 and self.total_events == 0:
            raise ValueError(
                "PERF_TEST_TOTAL_EVENTS and PERF_TEST_DURATION_SECS are both 0: set one of them"
            )
        return self

    # Derived values the runner uses; kept here so every stage agrees on them.
    @property
    def server_base(self) -> str:
        return base_url(self.wef_endpoint)

    @property
    def events_url(self) -> str:
        """Where batches go: WEF_ENDPOINT's own path, or /wsman/events when it has none."""
        path = urlsplit(self.wef_endpoint).path.rstrip("/")
        return self.server_base + (path or "/wsman/events")

    @property
    def health_url(self) -> str:
        return self.server_base + "/health"

    @property
    def duration_mode(self) -> bool:
        return self.duration_secs > 0

    @property
    def unlimited(self) -> bool:
        return self.target_eps == 0

    def public_dict(self) -> dict[str, Any]:
        """Settings as they may be shown or stored: credentials are never included."""
        data = self.model_dump(mode="json", exclude={"aws_access_key_id", "aws_secret_access_key"})
        return data


def base_url(url: str) -> str:
    """scheme://host:port of a URL: where /health and /stats/throughput live."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _check_url(v: str) -> str:
    parts = urlsplit(v.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host (got {v!r})")
    try:
        parts.port
    except ValueError:
        raise ValueError(f"has an invalid port (got {v!r})") from None
    return v.strip()


# The profile layer sits between the environment and the defaults.
_profile_layer: ContextVar[dict[str, Any]] = ContextVar("wefperf_profile_layer", default={})
# A harness may hand its own environment instead of os.environ.
_environ_layer: ContextVar[dict[str, str] | None] = ContextVar("wefperf_environ_layer", default=None)


_ENV_KEYS = {name.lower() for name in ENV_NAMES.values()}


class _EnvSource(EnvSettingsSource):
    """Reads only the documented variable names, never a bare field name such as SENDER."""

    def _load_env_vars(self) -> Any:
        given = _environ_layer.get()
        source = os.environ if given is None else given
        return {k.lower(): v for k, v in source.items() if k.lower() in _ENV_KEYS}


class _ProfileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        layer = _profile_layer.get()
        return layer.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return _by_alias(_profile_layer.get())


def _by_alias(values: dict[str, Any]) -> dict[str, Any]:
    """Key by environment name, so that layers merge by name and a higher layer wins."""
    return {ENV_NAMES.get(k, k): v for k, v in values.items()}


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def read_profile(name_or_path: str) -> dict[str, Any]:
    """A profile's TOML as a dict: `name`, `description` and a `settings` table."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or "/" in name_or_path):
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError(
                f"--profile: unknown profile {name_or_path!r} (built in: {', '.join(builtin_profiles())};"
                " or give a path to a .toml file)"
            )
    if not path.is_file():
        raise ConfigError(f"--profile: no such file {str(path)!r}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--profile: {path} is not valid TOML: {exc}") from None
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ConfigError(f"--profile: {path}: [settings] must be a table")
    unknown = sorted(set(settings) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"--profile: {path}: unknown setting(s) {', '.join(unknown)}")
    data.setdefault("name", path.stem)
    data["settings"] = settings
    return data


def load_settings(
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build Settings from flags, environment, profile and defaults, or raise ConfigError.

    `environ` replaces os.environ when given (for tests and embedding harnesses).
    """
    layer: dict[str, Any] = {}
    if profile:
        prof = read_profile(profile)
        layer = dict(prof["settings"])
        layer.setdefault("test_name", prof.get("title") or prof["name"])
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    token = _profile_layer.set(layer)
    env_token = _environ_layer.set(environ)
    try:
        return Settings(**_by_alias(flags))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    finally:
        _profile_layer.reset(token)
        _environ_layer.reset(env_token)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the setting by its environment variable."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "__root__"]
        field = loc[0] if loc else ""
        name = env_name(field) if field in ENV_NAMES else (field.upper() if field else "settings")
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        given = err.get("input")
        if err.get("type") == "extra_forbidden":
            lines.append(f"{field}: unknown setting")
            continue
        if field and not isinstance(given, (dict, SecretStr)) and "got" not in msg and field not in (
            "aws_access_key_id",
            "aws_secret_access_key",
        ):
            msg = f"{msg} (got {given!r})"
        lines.append(f"{name}: {msg}" if field else msg)
    return "; ".join(lines)
