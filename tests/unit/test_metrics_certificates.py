"""kairn_certificate_expiry_timestamp_seconds: the agents' TLS files, read at every scrape."""

from __future__ import annotations

import datetime as dt

from prometheus_client.parser import text_string_to_metric_families

from agents.common.metrics import Metrics
from agents.pki import issue

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def expiry(m: Metrics) -> dict[str, float]:
    for family in text_string_to_metric_families(m.render().decode()):
        if family.name == "kairn_certificate_expiry_timestamp_seconds":
            return {s.labels["certificate"]: s.value for s in family.samples}
    return {}


def test_expiry_of_the_leaf_and_the_latest_ca_of_a_bundle(tmp_path):
    old = issue.new_ca("old-ca", NOW, 10)
    new = issue.new_ca("new-ca", NOW, 400)
    leaf = issue.issue_leaf(new, "kairn-agents", [], [], NOW, 90)
    (tmp_path / "user.crt").write_bytes(issue.cert_pem(leaf.cert))
    (tmp_path / "ca.crt").write_bytes(issue.cert_pem(old.cert, new.cert))
    m = Metrics("topic")
    m.watch_certificates(
        {"agents": str(tmp_path / "user.crt"), "cluster-ca": str(tmp_path / "ca.crt")}
    )
    got = expiry(m)
    assert got["agents"] == (NOW + dt.timedelta(days=90)).timestamp()
    assert got["cluster-ca"] == new.cert.not_valid_after_utc.timestamp()


def test_a_renewed_file_is_read_again_and_a_missing_one_left_out(tmp_path):
    ca = issue.new_ca("ca", NOW, 400)
    crt = tmp_path / "user.crt"
    crt.write_bytes(issue.cert_pem(issue.issue_leaf(ca, "a", [], [], NOW, 30).cert))
    m = Metrics("user")
    m.watch_certificates({"agents": str(crt), "cluster-ca": str(tmp_path / "missing.crt")})
    assert set(expiry(m)) == {"agents"}
    crt.write_bytes(issue.cert_pem(issue.issue_leaf(ca, "a", [], [], NOW, 60).cert))
    assert expiry(m)["agents"] == (NOW + dt.timedelta(days=60)).timestamp()


def test_no_tls_files_no_samples():
    m = Metrics("topic")
    m.watch_certificates({"agents": None, "cluster-ca": None})
    assert expiry(m) == {}


def test_metadata_phase_is_one_series_when_the_chart_names_it():
    shown, hidden = Metrics("topic"), Metrics("user")
    shown.metadata_phase("kraft-brokers")
    hidden.metadata_phase("")
    series = [
        (s.name, s.labels, s.value)
        for f in text_string_to_metric_families(shown.render().decode())
        for s in f.samples
        if s.name == "kairn_metadata_phase"
    ]
    assert series == [("kairn_metadata_phase", {"agent": "topic", "phase": "kraft-brokers"}, 1.0)]
    assert b"kairn_metadata_phase{" not in hidden.render()
