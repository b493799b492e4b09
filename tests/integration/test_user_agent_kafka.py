"""The user agent's Kafka adapter against the real TLS clusters of the harness, in both
metadata modes (``cluster``, tests/integration/conftest.py): every write goes where the mode
needs it, every result is checked, and every write is read back. Tests of what only one
mode does take that mode's cluster."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml
from kafka.errors import TopicAuthorizationFailedError
from kafka.net import KafkaNetClient
from kafka.protocol.admin import AlterUserScramCredentialsRequest
from kubernetes import client

from agents.common import status as st
from agents.common.kafka_admin import KafkaAccess, client_kwargs
from agents.common.settings import Settings
from agents.common.status import StatusReporter
from agents.user_agent.acls import acl_of
from agents.user_agent.kafka_users import SCRAM_SHA_512, UserAdmin, salted_password
from agents.user_agent.reconciler import UserReconciler
from agents.user_agent.spec import AclRule
from devtools.clients import create_topic, produce, scram_kwargs
from devtools.waiting import wait_until
from tests.integration.conftest import read_back

pytestmark = pytest.mark.kafka


def client_config(cluster) -> dict:
    return {"bootstrap_servers": cluster.bootstrap().split(","), **cluster.admin.ssl_kwargs()}


@pytest.fixture
def ua(cluster):
    admin = UserAdmin(client_config(cluster), timeout_ms=30000)
    yield admin
    admin.close()


@pytest.fixture
def user():
    return f"u-{uuid.uuid4().hex[:8]}"


def test_scram_writes_reach_kafka_where_the_mode_needs_them(cluster, mode, ua, user):
    """Why the adapter routes by mode. ZooKeeper mode: only the controller stores SCRAM
    credentials; another broker answers NOT_CONTROLLER (41) without a message and stores
    nothing. KRaft mode: any broker forwards the write to the active controller."""
    assert ua.mode() == mode
    controller = ua.describe_cluster()["controller_id"]
    other = next(i for i in range(3) if i != controller)
    net = KafkaNetClient(**client_config(cluster))
    try:
        net.check_version(timeout_ms=30000)
        req = AlterUserScramCredentialsRequest(
            deletions=[],
            upsertions=[
                AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
                    name=user,
                    mechanism=SCRAM_SHA_512,
                    iterations=4096,
                    salt=b"0123456789abcdef",
                    salted_password=salted_password("pw", b"0123456789abcdef"),
                )
            ],
        )
        response = net.send_and_receive(other, req, timeout_ms=30000)
    finally:
        net.close()
    if mode == "zookeeper":
        assert [(r.user, r.error_code) for r in response.results] == [(user, 41)]
        assert ua.describe_scram([user]) == {}
    else:
        assert [(r.user, r.error_code) for r in response.results] == [(user, 0)]
        read_back(mode, lambda: ua.describe_scram([user]), {user: [(SCRAM_SHA_512, 4096)]})
        assert ua.alter_scram({}, [user]) == {user: None}


def test_scram_credential_is_stored_and_logs_in(cluster, mode, ua, user):
    topic = f"{user}.t"
    create_topic(cluster, topic, partitions=1, rf=3)
    password = "A" + uuid.uuid4().hex
    assert ua.alter_scram({user: password}) == {user: None}
    read_back(mode, lambda: ua.describe_scram([user]), {user: [(SCRAM_SHA_512, 4096)]})
    assert user in ua.describe_scram()
    client = scram_kwargs(cluster, user, password)
    with pytest.raises(TopicAuthorizationFailedError):
        produce(topic, [b"x"], timeout=30, max_block_ms=30000, **client)
    acl = acl_of(f"User:{user}", AclRule("TOPIC", topic, "LITERAL", "WRITE", "ALLOW"))
    assert ua.create_acls([acl]) == [None]
    read_back(mode, lambda: ua.describe_acls(f"User:{user}"), {f"User:{user}": {acl}})
    # ACLs reach every broker through ZooKeeper notifications or the metadata log: retry
    wait_until(
        lambda: produce(topic, [b"x"], timeout=30, **client) is None,
        60,
        "the SCRAM user to produce",
    )
    # deleting the credential ends logins
    assert ua.alter_scram({}, [user]) == {user: None}
    read_back(mode, lambda: ua.describe_scram([user]), {})
    assert ua.alter_scram({}, [user]) == {user: None}  # already gone: done
    assert ua.delete_principal_acls([f"User:{user}"]) == {f"User:{user}": None}


def test_a_stale_controller_id_is_refreshed(kafka_cluster, user):
    """ZooKeeper mode alone: a KRaft broker never answers NOT_CONTROLLER."""
    ua = UserAdmin(client_config(kafka_cluster), timeout_ms=30000)
    try:
        controller = ua.describe_cluster()["controller_id"]
        ua._controller = next(i for i in range(kafka_cluster.brokers) if i != controller)
        assert ua.alter_scram({user: "B" + uuid.uuid4().hex}) == {user: None}
        assert ua.describe_scram([user]) == {user: [(SCRAM_SHA_512, 4096)]}
        assert ua.controller_id() == controller
    finally:
        ua.close()


def test_kafka_refusing_a_user_is_reported_per_user(ua, user):
    res = ua.alter_scram({"": "pw", user: "C" + uuid.uuid4().hex})
    assert res[user] is None
    assert res[""] is not None and res[""].code == 93 and "empty" in res[""].message


def test_quotas_are_set_read_back_and_removed(mode, ua, user):
    assert ua.alter_quotas({user: {"producer_byte_rate": 1.5}}, validate_only=True)[user].code == 42
    ok = {user: {"producer_byte_rate": 1024.0, "request_percentage": 55.0}}
    assert ua.alter_quotas(ok, validate_only=True) == {user: None}
    assert ua.describe_quotas([user]) == {}  # validate_only stores nothing
    assert ua.alter_quotas(ok) == {user: None}
    read_back(mode, lambda: ua.describe_quotas([user]), ok)
    assert ua.describe_quotas()[user] == ok[user]
    assert ua.alter_quotas({user: {"producer_byte_rate": None}}) == {user: None}
    read_back(mode, lambda: ua.describe_quotas([user]), {user: {"request_percentage": 55.0}})
    assert ua.alter_quotas({user: {"request_percentage": None}}) == {user: None}
    read_back(mode, lambda: ua.describe_quotas([user]), {})


def test_acls_are_created_read_back_and_deleted(mode, ua, user):
    p = f"User:{user}"
    rules = [
        AclRule("TOPIC", "orders", "PREFIXED", "READ", "ALLOW"),
        AclRule("GROUP", "billing", "LITERAL", "READ", "ALLOW"),
        AclRule("CLUSTER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE", "ALLOW"),
        AclRule("TRANSACTIONAL_ID", "tx", "PREFIXED", "WRITE", "DENY", "10.0.0.1"),
    ]
    acls = [acl_of(p, r) for r in rules]
    assert ua.create_acls(acls) == [None] * 4
    read_back(mode, lambda: ua.describe_acls(p), {p: set(acls)})
    assert set(acls) <= ua.describe_acls()[p]
    assert ua.describe_acls_of([p]) == {p: set(acls)}
    assert ua.delete_acls(acls[:1]) == [None]
    read_back(mode, lambda: ua.describe_acls(p), {p: set(acls[1:])})
    assert ua.delete_principal_acls([p]) == {p: None}
    read_back(mode, lambda: ua.describe_acls(p), {})


def test_large_batches_in_parallel_lanes_over_every_broker(cluster, mode):
    """Split over lanes (ZooKeeper mode: SCRAM to the controller, quotas and ACLs over the
    brokers; KRaft mode: everything over the brokers), every item is stored and reads back."""
    ua = UserAdmin(client_config(cluster), timeout_ms=30000, lanes=3)
    try:
        tag = uuid.uuid4().hex[:6]
        users = [f"lane-{tag}-{i}" for i in range(120)]
        assert ua.alter_scram({u: "P" + u for u in users}) == dict.fromkeys(users)
        read_back(mode, lambda: set(ua.describe_scram()) >= set(users), True)
        quotas = {u: {"producer_byte_rate": float(1000 + i)} for i, u in enumerate(users)}
        assert ua.alter_quotas(quotas) == dict.fromkeys(users)
        read_back(
            mode, lambda: {u: q for u, q in ua.describe_quotas().items() if u in quotas}, quotas
        )
        shared = AclRule("TOPIC", f"shared-{tag}", "LITERAL", "READ", "ALLOW")
        acls = [
            acl_of(f"User:{u}", r)
            for u in users
            for r in (shared, AclRule("GROUP", u, "LITERAL", "READ", "ALLOW"))
        ]
        assert ua.create_acls(acls) == [None] * len(acls)

        def all_visible():
            seen = ua.describe_acls()
            return all(a in seen.get(a[3], set()) for a in acls)

        # brokers learn of ACLs written through another broker through ZooKeeper (ZooKeeper
        # mode) or the metadata log (KRaft mode)
        wait_until(all_visible, 60, "every ACL visible where the reads go")
        assert ua.delete_acls(acls) == [None] * len(acls)
        wait_until(
            lambda: not any(f"User:{u}" in ua.describe_acls() for u in users), 60, "ACLs gone"
        )
        assert ua.alter_scram({}, users) == dict.fromkeys(users)
        read_back(mode, lambda: bool(set(ua.describe_scram()) & set(users)), False)
    finally:
        ua.close()


def test_kafka_refusing_one_acl_of_a_request_creates_the_others(mode, ua, user):
    """Kafka refuses an ACL it cannot store (both modes: a CLUSTER resource named other than
    kafka-cluster; ZooKeeper mode also a resource name holding a '/', which would be a
    ZooKeeper path); the other ACLs of the same request are created, and each refused one is
    answered on its own."""
    p = f"User:{user}"
    good = [
        acl_of(p, AclRule("TOPIC", f"{user}.t", "LITERAL", "READ", "ALLOW")),
        acl_of(p, AclRule("GROUP", user, "LITERAL", "READ", "ALLOW")),
    ]
    bad = [acl_of(p, AclRule("CLUSTER", "not-the-cluster", "LITERAL", "ALTER", "ALLOW"))]
    if mode == "zookeeper":
        bad.append(acl_of(p, AclRule("GROUP", f"{user}/g", "LITERAL", "READ", "ALLOW")))
    try:
        res = ua.create_acls([good[0], *bad, good[1]])
        assert res[0] is None and res[-1] is None
        for err in res[1:-1]:
            assert err is not None and err.name == "InvalidRequestError", err
        read_back(mode, lambda: ua.describe_acls(p), {p: set(good)})
    finally:
        ua.delete_principal_acls([p])


class CountingAccess(KafkaAccess):
    """KafkaAccess that keeps the name of every request it sends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.apis: list[str] = []

    def call(self, api, fn):
        self.apis.append(api)
        return super().call(api, fn)

    def writes(self) -> list[str]:
        return [a for a in self.apis if not a.startswith(("describe", "metadata", "list"))]


def agent_kafka(cluster, factory=None) -> CountingAccess:
    ident = cluster.admin
    settings = Settings(
        cluster="kairn",
        namespace="kafka",
        bootstrap=cluster.bootstrap(),
        tls_ca_file=str(ident.ca_file),
        tls_cert_file=str(ident.crt),
        tls_key_file=str(ident.key),
    )
    return CountingAccess(settings, factory=factory and (lambda: factory(settings)))


def configmap_getter(core, namespace):
    def get(key: str) -> dict | None:
        name = key.split("/")[-1]
        try:
            resp = core.read_namespaced_config_map(name, namespace, _preload_content=False)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return json.loads(resp.data)

    return get


def test_a_reconcile_right_after_another_writes_nothing_again(cluster, mode, core, namespace):
    """The user agent's passes against Kafka and the API server: a second pass right after
    the first (Kafka's reads may not show the first one's writes yet, in KRaft mode a
    broker's copy of the metadata log) sends no write and leaves the user Ready; Kafka holds
    what the spec says; the deletion takes it all away."""
    user = f"r-{uuid.uuid4().hex[:8]}"
    spec = {
        "authentication": {"type": "scram-sha-512"},
        "authorization": {
            "type": "simple",
            "acls": [
                {"resource": {"type": "topic", "name": f"{user}."}, "operations": ["Read"]},
                {"resource": {"type": "group", "name": user}, "operations": ["Read"]},
            ],
        },
        "quotas": {"producerByteRate": 4096},
    }
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=user, labels={"kairn.dev/cluster": "kairn", "kairn.dev/type": "user"}
            ),
            data={"spec": yaml.safe_dump(spec)},
        ),
    )
    kafka = agent_kafka(cluster, lambda s: UserAdmin(client_kwargs(s), s.kafka_timeout_ms, lanes=2))
    reporter = StatusReporter(core, namespace, "kairn-user-agent", workers=2)
    get = configmap_getter(core, namespace)
    rec = UserReconciler(kafka, reporter, core, get, "kairn", namespace)
    ua = UserAdmin(client_config(cluster), timeout_ms=30000)
    try:
        assert {k: o.result for k, o in rec.reconcile([user]).items()} == {user: "ready"}
        assert sorted(kafka.writes()) == [
            "alter_client_quotas",  # validate_only
            "alter_client_quotas",
            "alter_user_scram_credentials",
            "create_acls",
        ]
        kafka.apis.clear()
        assert {k: o.result for k, o in rec.reconcile([user]).items()} == {user: "ready"}
        assert kafka.writes() == []
        assert st.status_of(get(user))["reason"] == "UserReady"
        read_back(mode, lambda: ua.describe_scram([user]), {user: [(SCRAM_SHA_512, 4096)]})
        read_back(mode, lambda: ua.describe_quotas([user]), {user: {"producer_byte_rate": 4096.0}})
        read_back(mode, lambda: len(ua.describe_acls(f"User:{user}").get(f"User:{user}", ())), 2)

        core.delete_namespaced_config_map(user, namespace)  # held by the finalizer
        assert {k: o.result for k, o in rec.reconcile([user]).items()} == {user: "ready"}
        assert get(user) is None
        read_back(mode, lambda: ua.describe_scram([user]), {})
        read_back(mode, lambda: ua.describe_quotas([user]), {})
        read_back(mode, lambda: ua.describe_acls(f"User:{user}"), {})
    finally:
        ua.close()
        rec.close()
        reporter.close()
        kafka.close()
