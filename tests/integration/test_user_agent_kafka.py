"""The user agent's Kafka adapter against the real TLS cluster of the harness: every write goes
to the active controller, every result is checked, and every write is read back."""

from __future__ import annotations

import uuid

import pytest
from kafka.errors import TopicAuthorizationFailedError
from kafka.net import KafkaNetClient
from kafka.protocol.admin import AlterUserScramCredentialsRequest

from agents.user_agent.acls import acl_of
from agents.user_agent.kafka_users import SCRAM_SHA_512, UserAdmin, salted_password
from agents.user_agent.spec import AclRule
from devtools.clients import create_topic, produce, scram_kwargs
from devtools.waiting import wait_until

pytestmark = pytest.mark.kafka


def client_config(cluster) -> dict:
    return {"bootstrap_servers": cluster.bootstrap().split(","), **cluster.admin.ssl_kwargs()}


@pytest.fixture
def ua(kafka_cluster):
    admin = UserAdmin(client_config(kafka_cluster), timeout_ms=30000)
    yield admin
    admin.close()


@pytest.fixture
def user():
    return f"u-{uuid.uuid4().hex[:8]}"


def test_a_non_controller_refuses_scram_writes_with_not_controller(kafka_cluster, ua, user):
    """Why the adapter exists: in ZooKeeper mode only the controller stores SCRAM credentials;
    another broker answers NOT_CONTROLLER (41) without a message and stores nothing."""
    controller = ua.describe_cluster()["controller_id"]
    other = next(i for i in range(kafka_cluster.brokers) if i != controller)
    net = KafkaNetClient(**client_config(kafka_cluster))
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
    assert [(r.user, r.error_code) for r in response.results] == [(user, 41)]
    assert ua.describe_scram([user]) == {}


def test_scram_credential_is_stored_and_logs_in(kafka_cluster, ua, user):
    topic = f"{user}.t"
    create_topic(kafka_cluster, topic, partitions=1, rf=3)
    password = "A" + uuid.uuid4().hex
    assert ua.alter_scram({user: password}) == {user: None}
    assert ua.describe_scram([user]) == {user: [(SCRAM_SHA_512, 4096)]}
    assert user in ua.describe_scram()
    client = scram_kwargs(kafka_cluster, user, password)
    with pytest.raises(TopicAuthorizationFailedError):
        produce(topic, [b"x"], timeout=30, max_block_ms=30000, **client)
    acl = acl_of(f"User:{user}", AclRule("TOPIC", topic, "LITERAL", "WRITE", "ALLOW"))
    assert ua.create_acls([acl]) == [None]
    assert ua.describe_acls(f"User:{user}") == {f"User:{user}": {acl}}
    # ACLs reach every broker through ZooKeeper notifications: retry until they have
    wait_until(
        lambda: produce(topic, [b"x"], timeout=30, **client) is None,
        60,
        "the SCRAM user to produce",
    )
    # deleting the credential ends logins
    assert ua.alter_scram({}, [user]) == {user: None}
    assert ua.describe_scram([user]) == {}
    assert ua.alter_scram({}, [user]) == {user: None}  # already gone: done


def test_a_stale_controller_id_is_refreshed(kafka_cluster, ua, user):
    controller = ua.describe_cluster()["controller_id"]
    ua._controller = next(i for i in range(kafka_cluster.brokers) if i != controller)
    assert ua.alter_scram({user: "B" + uuid.uuid4().hex}) == {user: None}
    assert ua.describe_scram([user]) == {user: [(SCRAM_SHA_512, 4096)]}
    assert ua.controller_id() == controller


def test_kafka_refusing_a_user_is_reported_per_user(ua, user):
    res = ua.alter_scram({"": "pw", user: "C" + uuid.uuid4().hex})
    assert res[user] is None
    assert res[""] is not None and res[""].code == 93 and "empty" in res[""].message


def test_quotas_are_set_read_back_and_removed(ua, user):
    assert ua.alter_quotas({user: {"producer_byte_rate": 1.5}}, validate_only=True)[user].code == 42
    ok = {user: {"producer_byte_rate": 1024.0, "request_percentage": 55.0}}
    assert ua.alter_quotas(ok, validate_only=True) == {user: None}
    assert ua.describe_quotas([user]) == {}  # validate_only stores nothing
    assert ua.alter_quotas(ok) == {user: None}
    assert ua.describe_quotas([user]) == ok
    assert ua.describe_quotas()[user] == ok[user]
    assert ua.alter_quotas({user: {"producer_byte_rate": None}}) == {user: None}
    assert ua.describe_quotas([user]) == {user: {"request_percentage": 55.0}}
    assert ua.alter_quotas({user: {"request_percentage": None}}) == {user: None}
    assert ua.describe_quotas([user]) == {}


def test_acls_are_created_read_back_and_deleted(ua, user):
    p = f"User:{user}"
    rules = [
        AclRule("TOPIC", "orders", "PREFIXED", "READ", "ALLOW"),
        AclRule("GROUP", "billing", "LITERAL", "READ", "ALLOW"),
        AclRule("CLUSTER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE", "ALLOW"),
        AclRule("TRANSACTIONAL_ID", "tx", "PREFIXED", "WRITE", "DENY", "10.0.0.1"),
    ]
    acls = [acl_of(p, r) for r in rules]
    assert ua.create_acls(acls) == [None] * 4
    assert ua.describe_acls(p) == {p: set(acls)}
    assert set(acls) <= ua.describe_acls()[p]
    assert ua.delete_acls(acls[:1]) == [None]
    assert ua.describe_acls(p) == {p: set(acls[1:])}
    assert ua.delete_principal_acls([p]) == {p: None}
    assert ua.describe_acls(p) == {}


def test_large_batches_in_parallel_lanes_over_every_broker(kafka_cluster):
    """Split over lanes (SCRAM to the controller, quotas and ACLs over the brokers), every
    item is stored and reads back from the controller."""
    ua = UserAdmin(client_config(kafka_cluster), timeout_ms=30000, lanes=3)
    try:
        tag = uuid.uuid4().hex[:6]
        users = [f"lane-{tag}-{i}" for i in range(120)]
        assert ua.alter_scram({u: "P" + u for u in users}) == dict.fromkeys(users)
        assert set(ua.describe_scram()) >= set(users)
        quotas = {u: {"producer_byte_rate": float(1000 + i)} for i, u in enumerate(users)}
        assert ua.alter_quotas(quotas) == dict.fromkeys(users)
        assert {u: q for u, q in ua.describe_quotas().items() if u in quotas} == quotas
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

        # brokers learn of ACLs written by another broker through ZooKeeper
        wait_until(all_visible, 60, "every ACL visible on the controller")
        assert ua.delete_acls(acls) == [None] * len(acls)
        wait_until(
            lambda: not any(f"User:{u}" in ua.describe_acls() for u in users), 60, "ACLs gone"
        )
        assert ua.alter_scram({}, users) == dict.fromkeys(users)
        assert not set(ua.describe_scram()) & set(users)
    finally:
        ua.close()


def test_kafka_refusing_one_acl_of_a_request_creates_the_others(ua, user):
    """ZooKeeper-mode Kafka refuses an ACL whose resource name holds a '/' (it would be a
    ZooKeeper path); the other ACLs of the same request are created, and the refused one is
    answered on its own."""
    p = f"User:{user}"
    good = [
        acl_of(p, AclRule("TOPIC", f"{user}.t", "LITERAL", "READ", "ALLOW")),
        acl_of(p, AclRule("GROUP", user, "LITERAL", "READ", "ALLOW")),
    ]
    bad = acl_of(p, AclRule("GROUP", f"{user}/g", "LITERAL", "READ", "ALLOW"))
    try:
        res = ua.create_acls([good[0], bad, good[1]])
        assert res[0] is None and res[2] is None
        assert res[1] is not None and res[1].name == "InvalidRequestError", res[1]
        assert ua.describe_acls(p) == {p: set(good)}
    finally:
        ua.delete_principal_acls([p])
