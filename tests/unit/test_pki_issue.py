"""Issuance: SANs, key usages, chains that OpenSSL verifies, PKCS#12 that Java reads."""

import subprocess
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.pki import issue
from agents.pki.model import Desired, split_sans

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca():
    return issue.new_ca("test-cluster-ca-v0", NOW, 1825)


@pytest.fixture(scope="module")
def broker(ca):
    comp = Desired("kairn", "ns1").components()[1]
    dns, ips = comp.pods["kairn-kafka-0"]
    return issue.issue_leaf(ca, comp.cn, dns, ips, NOW, 365)


def ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


def test_ca_extensions(ca):
    bc = ext(ca.cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(ca.cert, x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    ski = ext(ca.cert, x509.SubjectKeyIdentifier).value
    assert ext(ca.cert, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    assert ca.cert.not_valid_after_utc == NOW + timedelta(days=1825)


def test_leaf_usages_and_key_ids(ca, broker):
    cert = broker.cert
    assert not ext(cert, x509.BasicConstraints).value.ca
    ku = ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    assert set(ext(cert, x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    ca_ski = ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert issue.common_name(cert) == "kairn-kafka"
    assert issue.signed_by(cert, ca.cert)


def test_broker_sans_follow_wiring(broker):
    dns, ips = issue.sans(broker.cert)
    assert {
        "kairn-kafka-0.kairn-kafka-brokers.ns1.svc.cluster.local",
        "kairn-kafka-0.kairn-kafka-brokers.ns1.svc",
        "kairn-kafka-0.kairn-kafka-brokers",
        "kairn-kafka-bootstrap",
        "kairn-kafka-bootstrap.ns1",
        "kairn-kafka-bootstrap.ns1.svc",
        "kairn-kafka-bootstrap.ns1.svc.cluster.local",
        "localhost",
    } <= dns
    assert ips == {"127.0.0.1"}


def test_zookeeper_sans_and_extra_sans_only_for_kafka():
    d = Desired("kairn", "ns1", cluster_domain="k8s.example", kafka_extra_sans=("kafka.example",))
    zk, kafka = d.components()
    zdns, _ = zk.pods["kairn-zookeeper-2"]
    assert "kairn-zookeeper-2.kairn-zookeeper-nodes.ns1.svc.k8s.example" in zdns
    assert "kairn-zookeeper-client.ns1.svc" in zdns
    assert "kafka.example" not in zdns
    assert "kafka.example" in kafka.pods["kairn-kafka-0"][0]
    assert zk.cn == "kairn-zookeeper" and zk.secret == "kairn-zookeeper-nodes"


def test_leaf_never_outlives_its_ca():
    short = issue.new_ca("short", NOW, 10)
    leaf = issue.issue_leaf(short, "x", ["x"], [], NOW, 365)
    assert leaf.cert.not_valid_after_utc == short.cert.not_valid_after_utc


def test_openssl_verifies_chain_for_server_and_client(tmp_path, ca, broker):
    (tmp_path / "ca.crt").write_bytes(issue.cert_pem(ca.cert))
    (tmp_path / "leaf.crt").write_bytes(issue.cert_pem(broker.cert))
    for purpose in ("sslserver", "sslclient"):
        out = subprocess.run(
            ["openssl", "verify", "-purpose", purpose, "-attime", str(int(NOW.timestamp()) + 60),
             "-CAfile", tmp_path / "ca.crt", tmp_path / "leaf.crt"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr


def test_openssl_refuses_a_leaf_of_another_ca(tmp_path, broker):
    other = issue.new_ca("other", NOW, 30)
    (tmp_path / "ca.crt").write_bytes(issue.cert_pem(other.cert))
    (tmp_path / "leaf.crt").write_bytes(issue.cert_pem(broker.cert))
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", tmp_path / "ca.crt", tmp_path / "leaf.crt"],
        capture_output=True,
    )
    assert out.returncode != 0


def test_pem_round_trip(broker):
    assert issue.load_certs(issue.cert_pem(broker.cert)) == [broker.cert]
    assert issue.key_matches(broker.cert, issue.load_key(issue.key_pem(broker.key)))
    assert issue.key_pem(broker.key).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_keystore_p12_loads_back_with_its_password(ca, broker):
    pw = issue.new_password()
    data = issue.keystore_p12("kairn-kafka-0", broker, [ca.cert], pw)
    key, certs = issue.load_p12(data, pw)
    assert issue.key_matches(broker.cert, key)
    assert certs == [broker.cert, ca.cert]
    with pytest.raises(ValueError):
        issue.load_p12(data, b"wrong")


def keytool_list(path, password) -> str:
    out = subprocess.run(
        ["keytool", "-list", "-keystore", path, "-storepass", password, "-storetype", "PKCS12"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_java_reads_keystore_and_truststore(tmp_path, ca, broker):
    pw = issue.new_password()
    (tmp_path / "ks.p12").write_bytes(issue.keystore_p12("kairn-kafka-0", broker, [ca.cert], pw))
    other = issue.new_ca("next", NOW, 30)
    (tmp_path / "ts.p12").write_bytes(issue.truststore_p12([ca.cert, other.cert], pw))
    ks = keytool_list(tmp_path / "ks.p12", pw.decode())
    assert "kairn-kafka-0" in ks and "PrivateKeyEntry" in ks
    ts = keytool_list(tmp_path / "ts.p12", pw.decode())
    # trustedCertEntry: without Java's trusted-cert attribute the entries would be ignored.
    assert "contains 2 entries" in ts and ts.count("trustedCertEntry") == 2


def test_renewing_a_ca_keeps_leaves_valid(ca, broker):
    renewed = issue.new_ca(ca.cert.subject, NOW + timedelta(days=1000), 1825, ca.key)
    assert renewed.cert.subject == ca.cert.subject
    assert renewed.cert.not_valid_after_utc > ca.cert.not_valid_after_utc
    assert issue.signed_by(broker.cert, renewed.cert)


label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20)
host = st.builds(".".join, st.lists(label, min_size=1, max_size=4))
ip = st.ip_addresses().map(str)


@settings(max_examples=30, deadline=None)
@given(st.lists(host | ip, max_size=8))
def test_any_san_list_round_trips(names):
    dns, ips = split_sans(names)
    ca = _hypo_ca()
    leaf = issue.issue_leaf(ca, "cn", dns, ips, NOW, 10)
    got_dns, got_ips = issue.sans(leaf.cert)
    assert got_dns == set(dns)
    # IPv6 text forms differ (compressed or not); compare the parsed addresses.
    assert {ip_address(i) for i in got_ips} == {ip_address(i) for i in ips}


_CA = []


def _hypo_ca():
    if not _CA:  # one CA for all examples: key generation is not what is tested here
        _CA.append(issue.new_ca("hypo", NOW, 30))
    return _CA[0]


def test_signing_ca_is_found_in_a_bundle_by_its_key(ca):
    other = issue.new_ca("other", NOW, 30)
    bundle = issue.cert_pem(other.cert, ca.cert)
    assert issue.signing_ca(bundle, issue.key_pem(ca.key)).cert == ca.cert
    with pytest.raises(ValueError, match="matches no certificate"):
        issue.signing_ca(issue.cert_pem(other.cert), issue.key_pem(ca.key))
