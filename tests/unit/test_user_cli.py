"""kairn-user-agent's command line: help, settings from flags and the environment, a one-line
reason on a fatal error."""

from __future__ import annotations

import pytest

from agents.common.settings import Settings
from agents.user_agent import main as cli

CHART_ENV = {
    "KAIRN_CLUSTER": "rel",
    "KAIRN_FULLNAME": "rel-kairn",
    "KAIRN_NAMESPACE": "kafka",
    "KAIRN_BOOTSTRAP": "rel-kairn-kafka-bootstrap.kafka.svc.cluster.local:9093",
    "KAIRN_TLS_CA_FILE": "/etc/kairn/tls/ca.crt",
    "KAIRN_TLS_CERT_FILE": "/etc/kairn/tls/user.crt",
    "KAIRN_TLS_KEY_FILE": "/etc/kairn/tls/user.key",
    "KAIRN_TLS_CHECK_HOSTNAME": "true",
    "KAIRN_LOG_LEVEL": "INFO",
    "KAIRN_HTTP_PORT": "8081",
    "KAIRN_RESYNC_SECONDS": "300",
    "KAIRN_CLIENTS_CA_CERT_SECRET": "rel-kairn-clients-ca-cert",
    "KAIRN_CLIENTS_CA_SECRET": "rel-kairn-clients-ca",
    "KAIRN_CERT_VALIDITY_DAYS": "90",
}


@pytest.fixture
def clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.startswith("KAIRN_") or k == "KUBECONFIG":
            monkeypatch.delenv(k)
    return monkeypatch


def test_help_names_every_variable_the_chart_sets(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out.replace("\n", " ")
    for name in CHART_ENV:
        assert f"[{name}]" in out, name


def test_the_charts_environment_becomes_settings(clean_env):
    for k, v in CHART_ENV.items():
        clean_env.setenv(k, v)
    s = Settings.from_args(cli.parser().parse_args([]))
    assert (s.cluster, s.fullname, s.namespace, s.http_port) == ("rel", "rel-kairn", "kafka", 8081)
    assert s.extra["clients_ca_cert_secret"] == "rel-kairn-clients-ca-cert"
    assert s.extra["clients_ca_secret"] == "rel-kairn-clients-ca"
    assert s.extra["cert_validity_days"] == 90 and s.extra["cert_renewal_days"] == 30
    assert s.extra["kafka_lanes"] == 4 and s.extra["batch_size"] == 500


def test_missing_settings_exit_2_with_one_line(clean_env, capsys):
    assert cli.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("kairn-user-agent: missing settings:") and "KAIRN_CLUSTER" in err


def test_renewal_window_must_fit_in_the_validity(clean_env, capsys):
    for k, v in CHART_ENV.items():
        clean_env.setenv(k, v)
    assert cli.main(["--cert-validity-days", "20", "--cert-renewal-days", "30"]) == 2
    assert "larger than --cert-renewal-days" in capsys.readouterr().err
