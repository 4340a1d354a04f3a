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


def _client_pair(tmp_path: Path, cn: str = "WKS-SHARED.corp.example.com") -> tuple[str, str]:
    from wefperf.wsman.certs import issue, make_ca, write_pair

    cert, key = issue(make_ca(), cn)
    pair = write_pair(cert, key, tmp_path / "c.crt", tmp_path / "c.key")
    return str(pair.cert), str(pair.key)


def test_one_client_certificate_for_many_hosts_is_refused_unless_meant(tmp_path: Path) -> None:
    """Issue 20 §6: OpenWEC names a client by its certificate's CN; one certificate makes one machine."""
    cert, key = _client_pair(tmp_path)
    wsman = {"protocol": "wsman", "wef_endpoint": "https://wec.example:5986", "client_cert": cert, "client_key": key}
    with pytest.raises(ValueError, match="PERF_TEST_SHARED_CLIENT_CERT"):
        _load(hosts=3, **wsman)
    assert _load(hosts=1, **wsman).hosts == 1  # one host, one machine: nothing to refuse
    done = wefperf("run", "--protocol", "wsman", "--target-eps", "10", "--hosts", "3", "--client-cert", cert,
                   "--client-key", key, "--wef-endpoint", "https://wec.example:5986")
    assert done.code == 2 and len(done.err.strip().splitlines()) == 1, done.err
    assert "sees one machine" in done.err and "--shared-client-cert" in done.err
    # said on purpose: by flag, environment or profile
    assert _load(hosts=3, shared_client_cert=True, **wsman).shared_client_cert
    from wefperf.config.loading import load_settings as load

    assert load(None, {"target_eps": 1, "hosts": 3, **wsman}, {"PERF_TEST_SHARED_CLIENT_CERT": "true"}).shared_client_cert
    profile = tmp_path / "p.toml"
    profile.write_text('[settings]\nshared_client_cert = true\n')
    assert load(str(profile), {"target_eps": 1, "hosts": 3, **wsman}, {}).shared_client_cert


def test_a_shared_client_certificate_says_what_the_collector_will_see(tmp_path: Path) -> None:
    from wefperf.report.console import banner_lines

    cert, key = _client_pair(tmp_path)
    s = _load(protocol="wsman", hosts=40, wef_endpoint="https://wec.example:5986", client_cert=cert, client_key=key,
              shared_client_cert=True)
    said = [line for line in banner_lines(s, "r1") if line.startswith("Client certificate:")]
    assert said == ["Client certificate: all 40 hosts present CN=WKS-SHARED.corp.example.com; a collector that names"
                    " clients by their certificate (OpenWEC) sees one machine WKS-SHARED.corp.example.com, with one"
                    " bookmark and one heartbeat record, sending the whole fleet's events"]
    one = _load(protocol="wsman", hosts=1, wef_endpoint="https://wec.example:5986", client_cert=cert, client_key=key)
    assert not [line for line in banner_lines(one, "r1") if line.startswith("Client certificate:")]
