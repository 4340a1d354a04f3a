"""The settings of `run`, `verify` and `collector`: each name, default and rule written once.

`S3Settings` (where the parquet lives) serves all three commands; `Settings` (a run) extends
it. A field's validation alias is its environment variable (the seed suite's names are a
contract), its description is its help text, its default the only default.
Precedence, highest first: command-line flag > environment > profile > default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ..judge.thresholds import parse_thresholds
from ..load.shapes import Stage, parse_stages
from ..wsman.options import SubscriptionOptions, parse_options
from .layers import alias_of, environment_sources
from .rules import (
    MAX_PROCESSES,
    METRIC_NAME,
    RUN_ID,
    BucketName,
    HttpUrl,
    OptionalHttpUrl,
    SubscriptionText,
    base_url,
    check_event_id,
    parse_segment,
    stage_from_table,
    usable_cores,
)

# -- the models ---------------------------------------------------------------------------


class S3Settings(BaseSettings):
    """Where the collector writes parquet and the verifier reads it: shared by every command."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="forbid", validate_default=True)

    s3_endpoint: HttpUrl = Field(
        "http://minio:9000", validation_alias="S3_ENDPOINT", description="S3 / MinIO endpoint URL"
    )
    s3_bucket: BucketName = Field(
        "wef-events", validation_alias="S3_BUCKET", description="bucket holding the parquet files"
    )
    aws_access_key_id: SecretStr = Field(
        SecretStr("miniouser"), validation_alias="AWS_ACCESS_KEY_ID",
        description="S3 access key (never printed or stored)",
    )
    aws_secret_access_key: SecretStr = Field(
        SecretStr("miniopassword"), validation_alias="AWS_SECRET_ACCESS_KEY",
        description="S3 secret key (never printed or stored)",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Built directly (`Settings()`), a model reads keyword arguments and the documented
        # environment names only: no .env file, no secrets directory, no bare field names.
        return environment_sources(settings_cls, init_settings)

    @property
    def access_key(self) -> str:
        return self.aws_access_key_id.get_secret_value()

    @property
    def secret_key(self) -> str:
        return self.aws_secret_access_key.get_secret_value()


class Settings(S3Settings):
    """Everything a run needs; built by `load_settings`, or directly from Python."""

    # The profile `load_settings` read (its name or path as given), None without one: kept off the
    # fields, so it is neither a setting nor in the results' configuration, yet a result names it.
    _profile: str | None = PrivateAttr(default=None)

    # The settings a flag or the environment gave (not a profile, not a default); None: built directly,
    # where every keyword argument and variable counts (`model_fields_set`). A wsman host's batching
    # follows its subscription unless --max-items / --max-latency-secs were given this way.
    _given: frozenset[str] | None = PrivateAttr(default=None)

    @property
    def profile(self) -> str | None:
        return self._profile

    @property
    def given(self) -> frozenset[str]:
        """Fields set by a flag or an environment variable."""
        return self._given if self._given is not None else frozenset(self.model_fields_set)

    test_name: str = Field(
        "", validation_alias="PERF_TEST_NAME",
        description="the name in the banner and the results JSON; a profile gives its title;"
                    " empty: named after the rate",
    )
    total_events: int = Field(
        50_000, ge=0, validation_alias="PERF_TEST_TOTAL_EVENTS", description="events to send (0: use the duration)"
    )
    duration_secs: float = Field(
        0, ge=0, validation_alias="PERF_TEST_DURATION_SECS",
        description="test duration in seconds (0: send the total events)",
    )
    batch_size: int = Field(
        1_000, ge=1, le=100_000, validation_alias="PERF_TEST_BATCH_SIZE", description="events per batch (request)"
    )
    target_eps: float = Field(
        0, ge=0, validation_alias="PERF_TEST_TARGET_EPS", description="target events per second (0: unlimited)"
    )
    timeout_secs: float = Field(
        300, gt=0, validation_alias="PERF_TEST_TIMEOUT_SECS",
        description="longest a count-mode run may take, in seconds",
    )
    event_type: str = Field(
        "", validation_alias="PERF_TEST_EVENT_TYPE",
        description="one Windows event ID to send; empty sends a weighted mix of 4624, 4634, 4672, 4688, 4625",
    )
    wef_endpoint: HttpUrl = Field(
        "http://wef-server:5985", validation_alias="WEF_ENDPOINT",
        description="collector URL; batches go to its path, or /wsman/events when it has none",
    )
    wef_stats_endpoint: OptionalHttpUrl = Field(
        "", validation_alias="WEF_STATS_ENDPOINT",
        description="throughput stats URL; empty means WEF_ENDPOINT's host + /stats/throughput",
    )
    verify_s3: bool = Field(
        False, validation_alias="PERF_TEST_VERIFY_S3", description="verify the parquet files in S3 after the run"
    )
    concurrency: int = Field(
        64, ge=1, le=4096, validation_alias="PERF_TEST_CONCURRENCY", description="requests in flight at most (senders)"
    )
    sender: Literal["auto", "fast", "aiohttp"] = Field(
        "auto", validation_alias="PERF_TEST_SENDER",
        description="fast (raw HTTP/1.1, http:// only), aiohttp (TLS, proxies) or auto (fast for http://)",
    )
    tls_verify: bool = Field(
        True, validation_alias="PERF_TEST_TLS_VERIFY",
        description="check the collector's certificate on https:// (false accepts a self-signed one)",
    )
    request_timeout_secs: float = Field(
        30, gt=0, validation_alias="PERF_TEST_REQUEST_TIMEOUT_SECS", description="per-request timeout in seconds"
    )
    health_timeout_secs: float = Field(
        60, ge=0, validation_alias="PERF_TEST_HEALTH_TIMEOUT_SECS",
        description="how long to wait for the collector's /health before giving up, in seconds",
    )
    stats_interval_secs: float = Field(
        1, gt=0, validation_alias="PERF_TEST_STATS_INTERVAL_SECS",
        description="how often to read the collector's stats during the load, in seconds",
    )
    processing_wait_secs: float = Field(
        10, ge=0, validation_alias="PERF_TEST_PROCESSING_WAIT_SECS",
        description="after the load, longest wait for the collector's count to catch up, in seconds",
    )
    flush_interval_secs: float = Field(
        5, ge=0, validation_alias="PERF_TEST_FLUSH_INTERVAL_SECS",
        description="the collector's flush interval; the S3 check waits up to twice this + 15 s, in seconds",
    )
    max_file_size_mb: float = Field(
        100, gt=0, validation_alias="PERF_TEST_MAX_FILE_SIZE_MB",
        description="largest parquet file the S3 check accepts, in MiB",
    )
    drain_timeout_secs: float = Field(
        10, ge=0, validation_alias="PERF_TEST_DRAIN_TIMEOUT_SECS",
        description="on Ctrl-C, how long requests in flight may finish, in seconds",
    )
    pass_ratio: float = Field(
        0.95, gt=0, le=1, validation_alias="PERF_TEST_PASS_RATIO",
        description="share of the target that must be held to pass",
    )
    payload_variants: int = Field(
        8, ge=1, le=256, validation_alias="PERF_TEST_PAYLOAD_VARIANTS",
        description="distinct pre-built batch bodies in a mixed run",
    )
    hosts: int = Field(
        0, ge=0, le=1_000_000, validation_alias="PERF_TEST_HOSTS",
        description="simulated Windows hosts, each with its own name, EventRecordID sequence and keep-alive"
                    " connection, the rate spread over them as Poisson arrivals; 0: batches from the senders"
                    " (PERF_TEST_BATCH_SIZE, PERF_TEST_CONCURRENCY) instead",
    )
    max_items: int = Field(
        100, ge=1, le=10_000, validation_alias="PERF_TEST_MAX_ITEMS",
        description="with hosts: a host delivers as soon as it holds this many events (Windows' MaxItems;"
                    " Microsoft's Minimize Latency mode sets none, Normal sets 5)",
    )
    max_latency_secs: float = Field(
        30, gt=0, le=86_400, validation_alias="PERF_TEST_MAX_LATENCY_SECS",
        description="with hosts: a host delivers once its oldest held event is this old, in seconds"
                    " (Windows' MaxLatencyTime: Minimize Latency 30, Normal 900, Minimize Bandwidth 21600)",
    )
    seed: int = Field(
        0, ge=0, lt=2**32, validation_alias="PERF_TEST_SEED",
        description="seed of the payload and the simulated hosts' arrivals, so a run can be repeated"
                    " (the results JSON records each run's under payload.seed); 0 picks one at random",
    )
    results_path: str = Field(
        "/tmp/performance_test_results.json", min_length=1, validation_alias="PERF_TEST_RESULTS",
        description="where the results JSON is written",
    )
    results_dir: str = Field(
        "", validation_alias="PERF_TEST_RESULTS_DIR",
        description="write the results JSON into this folder under a timestamped name instead (keeps every run)",
    )
    report_path: str = Field(
        "", validation_alias="PERF_TEST_REPORT",
        description="also write a self-contained HTML report to this path; auto: beside the results JSON"
                    " (same name, .html); empty: none",
    )
    no_live: bool = Field(
        False, validation_alias="PERF_TEST_NO_LIVE",
        description="print plain progress lines even on a terminal (no live view)",
    )
    progress_secs: float = Field(
        5, gt=0, validation_alias="PERF_TEST_PROGRESS_SECS",
        description="without the live view (not a terminal, --no-live): a progress line every this many seconds"
                    " of load",
    )
    stages: list[Stage] = Field(
        default_factory=list, validation_alias="PERF_TEST_STAGES",
        description="load shape SECS:EPS,SECS:EPS,...: each stage ramps from the previous rate (0 at first)"
                    " to its own; replaces the target rate and duration",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict, validation_alias="PERF_TEST_THRESHOLDS",
        description="SLO thresholds NAME=VALUE,...: latency_p50_ms, latency_p99_ms, latency_p999_ms,"
                    " schedule_lag_p99_ms, error_ratio, achieved_ratio (lower bound), server_missing_events,"
                    " s3_missing_events, s3_duplicated_events",
    )
    abort_on_fail: bool = Field(
        False, validation_alias="PERF_TEST_ABORT_ON_FAIL",
        description="stop the run early when the latency or error thresholds break over a sliding window",
    )
    threshold_window_secs: float = Field(
        10, gt=0, validation_alias="PERF_TEST_THRESHOLD_WINDOW_SECS",
        description="the sliding window --abort-on-fail judges, in seconds",
    )
    # -- scale-out (issue 11): segments of one plan, several processes, shard results ---------
    segment: str = Field(
        "", validation_alias="PERF_TEST_SEGMENT",
        description="run segment i/N of the plan (0-based i): the batches, or simulated hosts, whose number is i"
                    " modulo N; empty: the whole plan (or JOB_COMPLETION_INDEX/PERF_TEST_SEGMENTS when both are set)",
    )
    segments: int = Field(
        0, ge=0, le=100_000, validation_alias="PERF_TEST_SEGMENTS",
        description="segment count N for a Kubernetes Indexed Job: with JOB_COMPLETION_INDEX set and no"
                    " PERF_TEST_SEGMENT, the segment is JOB_COMPLETION_INDEX/N; 0: not used",
    )
    run_id: str = Field(
        "", validation_alias="PERF_TEST_RUN_ID",
        description="the run id in every event's marker, shared by all segments of one run (lowercase letters"
                    " and digits); empty: a new random one",
    )
    start_at: float = Field(
        0, ge=0, validation_alias="PERF_TEST_START_AT",
        description="the plan's start as Unix epoch seconds, shared by all segments; each waits for it after its"
                    " health check, and a late start shows as schedule lag; 0: start when ready",
    )
    shard_results: str = Field(
        "", validation_alias="PERF_TEST_SHARD_RESULTS",
        description="also store this segment's results JSON as results/<run_id>/segment-<i>-of-<N>.json under"
                    " s3://bucket/prefix (the S3 settings' endpoint and credentials) or a local folder",
    )
    processes: str = Field(
        "1", validation_alias="PERF_TEST_PROCESSES",
        description="run the plan as N segment processes on this machine, merged into one result; auto: one per"
                    " usable core (with PERF_TEST_SEGMENT i/S, child j runs segment i+S*j of S*N)",
    )

    # -- server-side counting from Prometheus (issue 13: stats) --------------------------------
    stats_format: Literal["json", "prometheus"] = Field(
        "json", validation_alias="PERF_TEST_STATS_FORMAT",
        description="how the server counts: json reads /stats/throughput (per event type); prometheus reads"
                    " one counter from the metrics text at WEF_STATS_ENDPOINT (a total only)",
    )
    stats_metric: str = Field(
        "openwec_input_events_total", validation_alias="PERF_TEST_STATS_METRIC",
        description="with PERF_TEST_STATS_FORMAT=prometheus: the counter of received events, summed over its"
                    " labels (OpenWEC: openwec_input_events_total; wefperf collector:"
                    " wefperf_collector_events_received_total)",
    )
    health_endpoint: OptionalHttpUrl = Field(
        "", validation_alias="PERF_TEST_HEALTH_URL",
        description="URL that answers 200 when the collector is up; empty means WEF_ENDPOINT's host + /health,"
                    " or WEF_STATS_ENDPOINT with PERF_TEST_STATS_FORMAT=prometheus (OpenWEC has no /health)",
    )

    # --- WS-Management push mode and client certificates (issue 13, docs/wsman.md) ---
    protocol: Literal["batch", "wsman"] = Field(
        "batch", validation_alias="PERF_TEST_PROTOCOL",
        description="batch: the simplified events batch (docs/contract.md); wsman: WEF push mode, each host"
                    " Enumerates at WEF_ENDPOINT (the subscription manager URL) and delivers Events envelopes"
                    " in UTF-16 to its NotifyTo, waiting for each Ack",
    )
    client_cert: str = Field(
        "", validation_alias="PERF_TEST_CLIENT_CERT",
        description="wsman over https: PEM client certificate every host presents (with PERF_TEST_CLIENT_KEY)",
    )
    client_key: str = Field("", validation_alias="PERF_TEST_CLIENT_KEY", description="PEM key of PERF_TEST_CLIENT_CERT")
    shared_client_cert: bool = Field(
        False, validation_alias="PERF_TEST_SHARED_CLIENT_CERT",
        description="let every host present the one PERF_TEST_CLIENT_CERT: a collector that names clients by"
                    " their certificate's CN (OpenWEC) then sees a single machine, one bookmark and heartbeat"
                    " record for the whole fleet (refused without this when PERF_TEST_HOSTS > 1)",
    )
    client_ca_cert: str = Field(
        "", validation_alias="PERF_TEST_CLIENT_CA_CERT",
        description="wsman over https: PEM CA that mints one client certificate per host (CN = its FQDN) before"
                    " the clock starts, cached on disk (with PERF_TEST_CLIENT_CA_KEY, an EC key)",
    )
    client_ca_key: str = Field("", validation_alias="PERF_TEST_CLIENT_CA_KEY",
                               description="PEM key of PERF_TEST_CLIENT_CA_CERT")
    client_cert_cache: str = Field(
        "", validation_alias="PERF_TEST_CLIENT_CERT_CACHE",
        description="folder of the minted client certificates; empty: ~/.cache/wefperf/client-certs",
    )
    refresh_secs: float = Field(
        3600, ge=0, le=86_400 * 7, validation_alias="PERF_TEST_REFRESH_SECS",
        description="wsman: each host enumerates again every this many seconds (the GPO's Refresh=N; OpenWEC"
                    " recommends 3600 once stable), on a new connection with End after the answer, its first"
                    " refresh at a random point of the first interval and each later one 10 % early or late"
                    " at most; 0: never",
    )
    tls_ca: str = Field(
        "", validation_alias="PERF_TEST_TLS_CA",
        description="PEM CA bundle that signed the collector's certificate; empty: the system store"
                    " (which honours SSL_CERT_FILE)",
    )
    embedded_subscription: SubscriptionText = Field(
        "", validation_alias="PERF_TEST_EMBEDDED_SUBSCRIPTION",
        description="wsman with --embedded: what the embedded collector's subscription offers, as"
                    " MaxElements=N,MaxTime=SECS,ContentFormat=Raw|RenderedText,ConnectionRetry=COUNTxSECS,"
                    "Heartbeats=SECS (any of them); empty: OpenWEC's defaults (no MaxElements, MaxTime 30,"
                    " Raw, 5x60, 3600)",
    )

    @field_validator("test_name", mode="before")
    @classmethod
    def _blank_name(cls, v: Any) -> Any:
        return "" if v is None else v

    @field_validator("stages", mode="before")
    @classmethod
    def _stages(cls, v: Any) -> Any:
        if isinstance(v, str):
            return parse_stages(v) if v.strip() else []
        if isinstance(v, list):
            return [stage_from_table(item) for item in v]
        return v

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds(cls, v: Any) -> Any:
        if v is None or v == "":
            return {}
        if isinstance(v, (str, Mapping)):
            return parse_thresholds(v)
        return v

    @field_validator("event_type", mode="before")
    @classmethod
    def _event_type(cls, v: Any) -> str:
        text = "" if v is None else str(v).strip()
        return check_event_id(text) if text else ""

    @field_validator("segment", mode="before")
    @classmethod
    def _segment(cls, v: Any) -> Any:
        text = "" if v is None else str(v).strip()
        if text:
            index, count = parse_segment(text)
            return f"{index}/{count}"
        return text

    @field_validator("run_id", mode="before")
    @classmethod
    def _run_id(cls, v: Any) -> Any:
        text = "" if v is None else str(v).strip()
        if text and not RUN_ID.fullmatch(text):
            raise ValueError(f"must be 1 to 64 lowercase letters and digits, as the event marker allows (got {text!r})")
        return text

    @field_validator("processes", mode="before")
    @classmethod
    def _processes(cls, v: Any) -> Any:
        text = str(v).strip().lower() if v is not None else "1"
        if text == "auto":
            return text
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_PROCESSES):
            raise ValueError(f"must be a whole number from 1 to {MAX_PROCESSES}, or auto (got {v!r})")
        return str(int(text))

    @field_validator("stats_metric", mode="after")
    @classmethod
    def _metric_name(cls, v: str) -> str:
        text = v.strip()
        if not METRIC_NAME.fullmatch(text):
            raise ValueError(f"not a Prometheus metric name (letters, digits, _ and :; got {v!r})")
        return text

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        if self.stats_format == "prometheus" and not self.wef_stats_endpoint:
            raise ValueError(
                "PERF_TEST_STATS_FORMAT=prometheus needs WEF_STATS_ENDPOINT, the collector's metrics URL"
                " (e.g. http://openwec:9090/metrics)"
            )
        if not self.wef_stats_endpoint:
            self.wef_stats_endpoint = self.server_base + "/stats/throughput"
        if self.sender == "fast" and not self.events_url.startswith("http://"):
            raise ValueError(
                "PERF_TEST_SENDER: the fast sender speaks plain http:// only; use aiohttp (or auto) for https://"
            )
        if not self.test_name:
            self.test_name = "Target Rate Event Ingestion" if self.rate_limited else "Event Ingestion at Unlimited Rate"
        if self.stages:
            # The shape's own length is the run's duration; the banner says the stages replace the rate.
            self.duration_secs = sum(stage.duration_s for stage in self.stages)
        if self.duration_secs == 0 and self.total_events == 0:
            raise ValueError("PERF_TEST_TOTAL_EVENTS and PERF_TEST_DURATION_SECS are both 0: set one of them")
        self._check_wsman()
        if self.hosts:
            if not self.rate_limited:
                raise ValueError(
                    "PERF_TEST_HOSTS: simulated hosts need a rate to spread over them"
                    " (PERF_TEST_TARGET_EPS or PERF_TEST_STAGES); unlimited has none"
                )
            if not self.events_url.startswith("http://") and self.protocol != "wsman":
                raise ValueError("PERF_TEST_HOSTS: simulated hosts speak plain http:// only with"
                                 " PERF_TEST_PROTOCOL=batch; wsman speaks https:// too")
        if self.shard_results and not self.segment and self.process_count == 1:
            raise ValueError("PERF_TEST_SHARD_RESULTS: only a segment (PERF_TEST_SEGMENT) stores a shard result")
        if self.shard_results.startswith("s3://") and not urlsplit(self.shard_results).netloc:
            raise ValueError(f"PERF_TEST_SHARD_RESULTS: expected s3://bucket/prefix (got {self.shard_results!r})")
        for name in ("s3_missing_events", "s3_duplicated_events"):
            if name in self.thresholds and not self.verify_s3:
                raise ValueError(f"PERF_TEST_THRESHOLDS: {name} needs the S3 check (PERF_TEST_VERIFY_S3=true)")
        return self

    def _check_wsman(self) -> None:
        """WS-Management's rules; one host per concurrent sender when PERF_TEST_HOSTS is not set."""
        for a, b in (("client_cert", "client_key"), ("client_ca_cert", "client_ca_key")):
            if bool(getattr(self, a)) != bool(getattr(self, b)):
                raise ValueError(f"{env_name(a)} and {env_name(b)} go together")
        if self.client_cert and self.client_ca_cert:
            raise ValueError("PERF_TEST_CLIENT_CERT and PERF_TEST_CLIENT_CA_CERT: give one of them")
        for name in ("client_cert", "client_key", "client_ca_cert", "client_ca_key", "tls_ca"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{env_name(name)}: no such file {path!r}")
        if self.protocol != "wsman":
            if self.client_cert or self.client_ca_cert:
                raise ValueError("client certificates are for PERF_TEST_PROTOCOL=wsman")
            if self.embedded_subscription:
                raise ValueError("PERF_TEST_EMBEDDED_SUBSCRIPTION is for PERF_TEST_PROTOCOL=wsman")
            return
        if not self.rate_limited:
            raise ValueError("PERF_TEST_PROTOCOL=wsman: its hosts need a rate (PERF_TEST_TARGET_EPS or PERF_TEST_STAGES)")
        if not self.hosts:
            self.hosts = self.concurrency
        if self.client_cert and self.hosts > 1 and not self.shared_client_cert:
            raise ValueError(
                f"PERF_TEST_CLIENT_CERT: all {self.hosts:,} hosts would present one certificate, so a collector"
                " that names clients by its CN (OpenWEC) sees one machine; use PERF_TEST_CLIENT_CA_CERT for one"
                " per host, or PERF_TEST_SHARED_CLIENT_CERT=true (--shared-client-cert) if that is what you mean"
            )

    @property
    def embedded_options(self) -> SubscriptionOptions:
        """What the embedded collector's subscription offers (PERF_TEST_EMBEDDED_SUBSCRIPTION)."""
        return parse_options(self.embedded_subscription)

    @property
    def rate_limited(self) -> bool:
        """A target rate or a load shape: there is a plan to hold, and a share of it to judge."""
        return self.target_eps > 0 or bool(self.stages)

    @property
    def segment_of(self) -> tuple[int, int]:
        """(index, count) of this process's segment; (0, 1) for the whole plan."""
        return parse_segment(self.segment) if self.segment else (0, 1)

    @property
    def process_count(self) -> int:
        """PERF_TEST_PROCESSES as a number: `auto` is the cores this process may use."""
        return usable_cores() if self.processes == "auto" else int(self.processes)

    def effective_thresholds(self) -> dict[str, float]:
        """The seed's rule as defaults (95 % of the plan, no failed batch), then the user's thresholds."""
        defaults: dict[str, float] = {"error_ratio": 0.0}
        if self.rate_limited:
            defaults["achieved_ratio"] = self.pass_ratio
        return {**defaults, **self.thresholds}

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
    def subscription_manager_url(self) -> str:
        """wsman: WEF_ENDPOINT's own path, or Windows' /wsman/SubscriptionManager/WEC when it has none."""
        path = urlsplit(self.wef_endpoint).path.rstrip("/")
        return self.server_base + (path if path and path != "/wsman/events" else "/wsman/SubscriptionManager/WEC")

    @property
    def health_url(self) -> str:
        """PERF_TEST_HEALTH_URL, else the metrics URL in prometheus mode, else WEF_ENDPOINT's /health."""
        if self.health_endpoint:
            return self.health_endpoint
        if self.stats_format == "prometheus":
            return self.wef_stats_endpoint
        return self.server_base + "/health"

    @property
    def health_setting(self) -> str:
        """The setting a user should check when the health URL does not answer."""
        if self.health_endpoint:
            return "PERF_TEST_HEALTH_URL"
        return "WEF_STATS_ENDPOINT" if self.stats_format == "prometheus" else "WEF_ENDPOINT"

    @property
    def duration_mode(self) -> bool:
        return self.duration_secs > 0

    @property
    def unlimited(self) -> bool:
        return self.target_eps == 0

    def public_dict(self) -> dict[str, Any]:
        """Settings as they may be shown or stored: credentials are never included."""
        return self.model_dump(mode="json", exclude=set(SECRET_FIELDS))


# Every default alone, from the fields (no environment read), for code that must agree with
# them without loading settings: the embedded stack's keys, the collector's flag defaults.
DEFAULTS = Settings.model_construct()

# -- names, derived from the models --------------------------------------------------------

# Field name -> environment variable, from the aliases: for messages, -e and `wefperf profiles`.
ENV_NAMES: dict[str, str] = {name: alias_of(name, field) for name, field in Settings.model_fields.items()}
SECRET_FIELDS = frozenset(name for name, field in Settings.model_fields.items() if field.annotation is SecretStr)


def env_name(field: str) -> str:
    return ENV_NAMES.get(field, field)
