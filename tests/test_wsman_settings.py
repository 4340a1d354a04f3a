"""`--protocol wsman` and the certificate flags: bad input is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import wefperf
from wefperf.config.loading import load_settings
from wefperf.config.rules import ConfigError


def _load(**flags: object):
    return load_settings(None, {"target_eps": 100, "duration_secs": 1, **flags}, {})


def test_wsman_without_hosts_gives_one_host_per_concurrent_sender() -> None:
    s = _load(protocol="wsman", concurrency=7, wef_endpoint="https://wec.example:5986")
    assert s.hosts == 7
    assert s.subscription_manager_url == "https://wec.example:5986/wsman/SubscriptionManager/WEC"
    assert _load(protocol="wsman", wef_endpoint="https://w:5986/custom/Path").subscription_manager_url == "https://w:5986/custom/Path"


@pytest.mark.parametrize(("flags", "says"), [
    ({"protocol": "wsman", "target_eps": 0}, "need a rate"),
    ({"protocol": "wsman", "client_cert": "x.crt"}, "PERF_TEST_CLIENT_CERT and PERF_TEST_CLIENT_KEY go together"),
    ({"protocol": "wsman", "client_ca_cert": "/nonexistent/ca.crt", "client_ca_key": "/nonexistent/ca.key"}, "no such file"),
    ({"client_cert": __file__, "client_key": __file__}, "for PERF_TEST_PROTOCOL=wsman"),
    ({"protocol": "smtp"}, "PERF_TEST_PROTOCOL"),
])
def test_bad_wsman_settings_are_refused_with_a_reason(flags: dict[str, object], says: str) -> None:
    with pytest.raises((ConfigError, ValueError)) as info:
        _load(**flags)
    assert says in str(info.value)


def test_cli_refusals_are_one_line_and_exit_code_2(tmp_path: Path) -> None:
    done = wefperf("run", "--protocol", "wsman", "--target-eps", "10", "--client-ca-cert", str(tmp_path / "no.crt"),
                   "--client-ca-key", str(tmp_path / "no.key"))
    assert done.code == 2 and "no such file" in done.err and len(done.err.strip().splitlines()) == 1
    done = wefperf("collector", "--wsman", "--client-ca", "ca.crt")
    assert done.code == 2 and "--client-ca needs --tls-cert" in done.err
    done = wefperf("certs", "client", "--name", "x")
    assert done.code == 2 and "needs --ca" in done.err
