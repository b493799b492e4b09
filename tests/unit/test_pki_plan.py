"""The planner and a whole run against the in-memory store, with an injected clock."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.pki import issue, pods_needing_restart, renewed_at
from agents.pki.model import FORCE_REPLACE, GENERATION, NEXT_KEY, Desired, Secret
from agents.pki.plan import CAAction, IssueLeaf, plan
from agents.pki.run import PlanError, run
from agents.pki.store import MemorySecretStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
D = Desired("kairn", "ns1")
PODS = [f"kairn-zookeeper-{i}" for i in range(3)] + [f"kairn-kafka-{i}" for i in range(3)]


@pytest.fixture(scope="module")
def installed():
    store = MemorySecretStore()
    run(store, D, NOW)
    return store.secrets


@pytest.fixture
def store(installed):
    return MemorySecretStore(installed)


def leaves(p):
    return {a.prefix: a.reason for a in p.actions if isinstance(a, IssueLeaf)}


def versions(store):
    return {n: s.resource_version for n, s in store.secrets.items()}


def ca_certs(store, kind="cluster"):
    return issue.load_certs(store.get(f"kairn-{kind}-ca-cert").data["ca.crt"])


def leaf(store, secret, prefix):
    return issue.load_certs(store.get(secret).data[f"{prefix}.crt"])[0]


def test_first_run_creates_the_secrets_of_the_wiring(installed):
    keys = {n: set(s.data) for n, s in installed.items()}
    ca_keys = {"ca.crt", "ca.p12", "ca.password"}
    per_pod = lambda pods: {f"{p}.{k}" for p in pods for k in ("crt", "key", "p12", "password")}  # noqa: E731
    assert keys == {
        "kairn-cluster-ca-cert": ca_keys,
        "kairn-cluster-ca": {"ca.key"},
        "kairn-clients-ca-cert": ca_keys,
        "kairn-clients-ca": {"ca.key"},
        "kairn-zookeeper-nodes": per_pod(PODS[:3]),
        "kairn-kafka-brokers": per_pod(PODS[3:]),
        "kairn-agents-cert": {"user.crt", "user.key", "user.p12", "user.password", "ca.crt"},
    }
    assert (
        installed["kairn-agents-cert"].data["ca.crt"]
        == installed["kairn-cluster-ca-cert"].data["ca.crt"]
    )
    assert issue.common_name(
        issue.load_certs(installed["kairn-agents-cert"].data["user.crt"])[0]
    ) == ("kairn-agents")


def test_second_run_writes_nothing(store):
    before = versions(store)
    p, written = run(store, D, NOW + timedelta(days=1))
    assert p.actions == () and written == {} and store.writes == 0
    assert versions(store) == before


def test_renewal_inside_the_window_only(store):
    before = versions(store)
    assert leaves(plan(D, store.secrets, NOW + timedelta(days=365 - 31))) == {}
    later = NOW + timedelta(days=365 - 29)
    p, _written = run(store, D, later)
    assert set(leaves(p)) == {*PODS, "user"}
    assert all(r.startswith("expires in") for r in leaves(p).values())
    # The CAs are untouched; the leaves are new and valid for a year from now.
    assert {n for n, v in versions(store).items() if v != before[n]} == {
        "kairn-zookeeper-nodes", "kairn-kafka-brokers", "kairn-agents-cert",
    }  # fmt: skip
    crt = leaf(store, "kairn-kafka-brokers", "kairn-kafka-0")
    assert crt.not_valid_after_utc == later + timedelta(days=365)
    assert issue.signed_by(crt, ca_certs(store)[0])
    assert run(store, D, later)[1] == {}


def test_scale_up_adds_only_the_new_pods(store, installed):
    bigger = Desired("kairn", "ns1", kafka_replicas=4)
    p, written = run(store, bigger, NOW)
    assert leaves(p) == {"kairn-kafka-3": "missing"}
    assert set(written) == {"kairn-kafka-brokers"}
    old, new = installed["kairn-kafka-brokers"].data, store.get("kairn-kafka-brokers").data
    assert {k: v for k, v in new.items() if not k.startswith("kairn-kafka-3")} == dict(old)
    assert pods_needing_restart(store.secrets, dict.fromkeys(PODS, NOW)) == []


def test_changed_sans_reissue_only_the_brokers(store):
    d = Desired("kairn", "ns1", kafka_extra_sans=("kafka.example.com", "10.0.0.7"))
    p = plan(d, store.secrets, NOW)
    assert leaves(p) == dict.fromkeys(PODS[3:], "SANs changed")
    run(store, d, NOW)
    dns, ips = issue.sans(leaf(store, "kairn-kafka-brokers", "kairn-kafka-2"))
    assert "kafka.example.com" in dns and ips == {"127.0.0.1", "10.0.0.7"}


def test_restart_marks(store):
    later = NOW + timedelta(days=300)
    run(store, Desired("kairn", "ns1", kafka_replicas=4), later)  # adds kafka-3 only
    assert renewed_at(store.secrets)["kairn-kafka-3"] == later
    started = dict.fromkeys([*PODS, "kairn-agents"], NOW + timedelta(hours=1))
    assert pods_needing_restart(store.secrets, started) == []
    run(store, D, later + timedelta(days=40))  # inside the renewal window: everything renews
    assert pods_needing_restart(store.secrets, started) == sorted(started)
    started["kairn-kafka-1"] = later + timedelta(days=41)  # restarted after the renewal
    assert "kairn-kafka-1" not in pods_needing_restart(store.secrets, started)


def test_ca_replacement_in_three_steps(store, tmp_path):
    old = ca_certs(store)[0]
    old_leaf = leaf(store, "kairn-kafka-brokers", "kairn-kafka-0")
    started = dict.fromkeys([*PODS, "kairn-agents"], NOW)

    # 1: the new CA is trusted next to the old one; the old one still signs.
    t1 = NOW + timedelta(days=1)
    p, _ = run(store, D, t1, {"cluster": "replace"})
    assert leaves(p) == {}
    bundle = ca_certs(store)
    assert len(bundle) == 2 and bundle[0] == old
    assert NEXT_KEY in store.get("kairn-cluster-ca").data
    assert leaf(store, "kairn-kafka-brokers", "kairn-kafka-0") == old_leaf
    key, p12 = issue.load_p12(store.get("kairn-cluster-ca-cert").data["ca.p12"],
                              store.get("kairn-cluster-ca-cert").data["ca.password"])  # fmt: skip
    assert key is None and set(p12) == set(bundle)
    assert pods_needing_restart(store.secrets, started) == sorted(started)
    assert store.get("kairn-agents-cert").data["ca.crt"] == issue.cert_pem(*bundle)
    assert run(store, D, t1, {"cluster": "replace"})[1] == {}  # asking again changes nothing

    # 2: the new CA signs, every leaf is re-issued, the old CA is still trusted.
    p, _ = run(store, D, t1, {"cluster": "promote"})
    assert set(leaves(p)) == {*PODS, "user"}
    new = ca_certs(store)[0]
    assert new == bundle[1] and ca_certs(store)[1] == old
    assert store.get("kairn-cluster-ca-cert").annotations[GENERATION] == "1"
    assert NEXT_KEY not in store.get("kairn-cluster-ca").data
    assert issue.signed_by(leaf(store, "kairn-zookeeper-nodes", "kairn-zookeeper-1"), new)
    for cert in (old_leaf, leaf(store, "kairn-kafka-brokers", "kairn-kafka-0")):
        (tmp_path / "ca.crt").write_bytes(store.get("kairn-cluster-ca-cert").data["ca.crt"])
        assert any(issue.signed_by(cert, ca) for ca in ca_certs(store))

    # 3: the old CA is no longer trusted.
    run(store, D, t1, {"cluster": "drop"})
    assert ca_certs(store) == [new]
    assert plan(D, store.secrets, t1).actions == ()


def test_drop_before_promote_is_refused(store):
    run(store, D, NOW, {"cluster": "replace"})
    before = versions(store)
    with pytest.raises(PlanError, match="kairn-cluster-ca-cert: cannot drop the old cluster CA"):
        run(store, D, NOW, {"cluster": "drop"})
    assert versions(store) == before


def test_steps_out_of_order_only_warn(store):
    p = plan(D, store.secrets, NOW, {"cluster": "promote", "clients": "drop"})
    assert p.actions == () and len(p.warnings) == 2


def test_force_replace_annotation_starts_a_replacement_once(store):
    ks = store.get("kairn-clients-ca")
    store.replace("kairn-clients-ca", Secret(ks.data, {FORCE_REPLACE: "true"}, ks.labels, "1"))
    p, _ = run(store, D, NOW + timedelta(days=1))
    assert [a.what for a in p.actions if isinstance(a, CAAction)] == ["replace"]
    assert FORCE_REPLACE not in store.get("kairn-clients-ca").annotations
    assert len(ca_certs(store, "clients")) == 2
    # Only the brokers trust the clients CA: they, and nobody else, need a restart.
    started = dict.fromkeys([*PODS, "kairn-agents"], NOW + timedelta(hours=1))
    assert pods_needing_restart(store.secrets, started) == PODS[3:]


def test_ca_about_to_expire_is_an_error_until_renewed(store):
    late = NOW + timedelta(days=1825 - 20)
    before = versions(store)
    with pytest.raises(PlanError, match=r"Secret kairn-cluster-ca-cert: the cluster CA expires"):
        run(store, D, late)
    assert versions(store) == before and store.writes == 0
    old = ca_certs(store)[0]
    run(store, D, late, {"cluster": "renew", "clients": "renew"})
    renewed = ca_certs(store)[0]
    assert renewed.subject == old.subject and renewed.public_key() == old.public_key()
    assert renewed.not_valid_after_utc == late + timedelta(days=1825)
    assert issue.signed_by(leaf(store, "kairn-kafka-brokers", "kairn-kafka-0"), renewed)
    assert run(store, D, late)[1] == {}


def test_a_ca_shorter_than_a_leaf_warns(store):
    p = plan(D, store.secrets, NOW + timedelta(days=1825 - 200))
    assert any("cluster CA expires" in w for w in p.warnings)


def test_user_provided_ca_is_used_and_completed():
    ca = issue.new_ca("my-corp-ca", NOW, 1000)
    store = MemorySecretStore({
        "kairn-cluster-ca-cert": Secret({"ca.crt": issue.cert_pem(ca.cert)}),
        "kairn-cluster-ca": Secret({"ca.key": issue.key_pem(ca.key)}),
    })  # fmt: skip
    p, _written = run(store, D, NOW)
    assert CAAction("cluster", "repack", "ca.p12 missing (user-provided CA)") in p.actions
    assert ca_certs(store) == [ca.cert] and "ca.p12" in store.get("kairn-cluster-ca-cert").data
    assert issue.signed_by(leaf(store, "kairn-kafka-brokers", "kairn-kafka-1"), ca.cert)
    assert run(store, D, NOW)[1] == {}


def test_lost_ca_certificate_is_rebuilt_from_its_key(store):
    key = store.get("kairn-cluster-ca").data["ca.key"]
    del store.secrets["kairn-cluster-ca-cert"]
    run(store, D, NOW)
    assert issue.key_matches(ca_certs(store)[0], issue.load_key(key))


def break_secret(store, name, key, value=None):
    s = store.get(name)
    data = dict(s.data)
    if value is None:
        del data[key]
    else:
        data[key] = value
    store.replace(name, Secret(data, s.annotations, s.labels, s.resource_version))


@pytest.mark.parametrize(
    ("name", "key", "value", "message"),
    [
        ("kairn-kafka-brokers", "kairn-kafka-1.crt", b"garbage",
         "Secret kairn-kafka-brokers: key kairn-kafka-1.crt is not a PEM certificate"),
        ("kairn-kafka-brokers", "kairn-kafka-1.key", None,
         "Secret kairn-kafka-brokers: key kairn-kafka-1.key is missing"),
        ("kairn-zookeeper-nodes", "kairn-zookeeper-0.key", b"-----BEGIN PRIVATE KEY-----\nxx\n",
         "Secret kairn-zookeeper-nodes: key kairn-zookeeper-0.key is not a PEM private key"),
        ("kairn-zookeeper-nodes", "kairn-zookeeper-0.password", b"not-it",
         "Secret kairn-zookeeper-nodes: key kairn-zookeeper-0.p12 does not open"),
        ("kairn-agents-cert", "user.key", issue.key_pem(issue.new_key()),
         "Secret kairn-agents-cert: key user.key does not match user.crt"),
        ("kairn-cluster-ca", "ca.key", issue.key_pem(issue.new_key()),
         "Secret kairn-cluster-ca: ca.key does not match any certificate in ca.crt"),
        ("kairn-clients-ca-cert", "ca.crt", None,
         "Secret kairn-clients-ca-cert: key ca.crt is missing"),
        ("kairn-clients-ca-cert", "ca.password", b"x",
         "Secret kairn-clients-ca-cert: ca.p12 does not open with ca.password"),
    ],
)  # fmt: skip
def test_malformed_secrets_are_named_and_nothing_is_written(store, name, key, value, message):
    break_secret(store, name, key, value)
    before, writes = versions(store), store.writes
    with pytest.raises(PlanError) as err:
        run(store, D, NOW + timedelta(days=400), {"cluster": "renew"})  # plenty would be due
    assert message in str(err.value)
    assert versions(store) == before and store.writes == writes


def test_ca_cert_without_its_key_secret_is_an_error(store):
    del store.secrets["kairn-cluster-ca"]
    with pytest.raises(
        PlanError, match="Secret kairn-cluster-ca is missing but kairn-cluster-ca-cert"
    ):
        run(store, D, NOW)


@settings(max_examples=8, deadline=None)
@given(
    zk=st.integers(1, 4),
    kafka=st.integers(1, 5),
    days=st.lists(st.integers(0, 400), min_size=1, max_size=3),
)
def test_any_history_converges(installed, zk, kafka, days):
    """Whatever the scaling and the time, a run leaves every leaf valid, matching its pod and
    signed by the cluster CA, and the run right after writes nothing."""
    store = MemorySecretStore(installed)
    d = Desired("kairn", "ns1", zookeeper_replicas=zk, kafka_replicas=kafka)
    now = NOW
    for n in days:
        now += timedelta(days=n)
        run(store, d, now, {"cluster": "renew", "clients": "renew"} if n > 300 else {})
    assert run(store, d, now)[1] == {}
    ca = ca_certs(store)[0]
    for comp in d.components():
        for pod, (dns, ips) in comp.pods.items():
            cert = leaf(store, comp.secret, pod)
            assert issue.signed_by(cert, ca) and issue.sans(cert) == (set(dns), set(ips))
            assert cert.not_valid_after_utc - now > d.renewal


def test_a_stale_trust_copy_for_the_agents_is_resynced(store):
    other = issue.cert_pem(issue.new_ca("stale", NOW, 10).cert)
    break_secret(store, "kairn-agents-cert", "ca.crt", other)
    p, written = run(store, D, NOW)
    assert [type(a).__name__ for a in p.actions] == ["SyncTrust"]
    assert set(written) == {"kairn-agents-cert"}
    assert store.get("kairn-agents-cert").data["ca.crt"] == issue.cert_pem(*ca_certs(store))
    assert run(store, D, NOW)[1] == {}
