"""The harness is real: TLS and SCRAM clients work, ACLs deny, data survives broker loss."""

from __future__ import annotations

import secrets

import pytest
from kafka.admin import ACLOperation, ResourceType
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from devtools import clients
from devtools.waiting import wait_until

pytestmark = pytest.mark.kafka


def test_produce_and_consume_over_mutual_tls(kafka_cluster):
    clients.create_topic(kafka_cluster, "harness.mtls", partitions=3)
    tls = {"bootstrap_servers": kafka_cluster.bootstrap(), **kafka_cluster.admin.ssl_kwargs()}
    values = [f"m{i}".encode() for i in range(100)]
    clients.produce("harness.mtls", values, **tls)
    assert sorted(clients.consume("harness.mtls", 100, **tls)) == sorted(values)


def test_produce_and_consume_over_scram(kafka_cluster):
    user, password = "harness-scram", secrets.token_urlsafe(24)
    clients.set_scram_password(kafka_cluster, user, password)
    clients.create_topic(kafka_cluster, "harness.scram")
    clients.grant(
        kafka_cluster,
        f"User:{user}",
        ResourceType.TOPIC,
        "harness.scram",
        [ACLOperation.WRITE, ACLOperation.READ, ACLOperation.DESCRIBE],
    )
    clients.grant(
        kafka_cluster,
        f"User:{user}",
        ResourceType.GROUP,
        "harness-scram-group",
        [ACLOperation.READ],
    )
    scram = clients.scram_kwargs(kafka_cluster, user, password)
    clients.produce("harness.scram", [b"hello"], **scram)
    got = clients.consume("harness.scram", 1, group="harness-scram-group", **scram)
    assert got[0] == b"hello"


def test_scram_with_a_wrong_password_is_refused(kafka_cluster):
    user = "harness-wrong-password"
    clients.set_scram_password(kafka_cluster, user, secrets.token_urlsafe(24))
    # kafka-python reports the refused login as a failed bootstrap, after bootstrap_timeout_ms
    # (30 s by default)
    with pytest.raises(KafkaError):
        clients.produce(
            "harness.mtls",
            [b"x"],
            timeout=10,
            bootstrap_timeout_ms=10_000,
            **clients.scram_kwargs(kafka_cluster, user, "not-the-password"),
        )


def test_principal_without_acls_is_denied(kafka_cluster):
    clients.create_topic(kafka_cluster, "harness.denied")
    stranger = kafka_cluster.client_identity("stranger")  # valid certificate, no ACLs
    with pytest.raises(TopicAuthorizationFailedError):
        clients.produce(
            "harness.denied",
            [b"x"],
            timeout=20,
            bootstrap_servers=kafka_cluster.bootstrap(),
            **stranger.ssl_kwargs(),
        )


def test_killed_broker_keeps_its_data_and_rejoins_the_isr(kafka_cluster):
    topic = "harness.kill9"
    clients.create_topic(kafka_cluster, topic, partitions=3)
    tls = {"bootstrap_servers": kafka_cluster.bootstrap(), **kafka_cluster.admin.ssl_kwargs()}
    clients.produce(topic, [f"before-{i}".encode() for i in range(50)], **tls)
    broker = kafka_cluster.kafka_pods[1]
    segments_before = {p.name for p in broker.folder.rglob(f"{topic}-*")}
    assert segments_before, "the broker held no replica of the topic"

    broker.kill()
    assert not broker.running()
    wait_until(
        lambda: all(1 not in p["isr_nodes"] for p in clients.partitions(kafka_cluster, topic)),
        60,
        "broker 1 to leave the ISR",
    )
    clients.produce(topic, [f"during-{i}".encode() for i in range(50)], **tls)

    broker.start()
    kafka_cluster.wait_up()
    clients.wait_in_sync(kafka_cluster, topic)
    assert {p.name for p in broker.folder.rglob(f"{topic}-*")} == segments_before
    assert len(clients.consume(topic, 100, **tls)) == 100


def test_acknowledged_message_survives_losing_one_broker(kafka_cluster):
    topic = "harness.durable"
    clients.create_topic(kafka_cluster, topic, partitions=1)
    tls = {"bootstrap_servers": kafka_cluster.bootstrap(), **kafka_cluster.admin.ssl_kwargs()}
    clients.produce(topic, [b"precious"], **tls)
    (partition,) = clients.partitions(kafka_cluster, topic)
    leader = kafka_cluster.kafka_pods[partition["leader_id"]]

    leader.kill()
    try:
        others = ",".join(
            f"{kafka_cluster.address('kafka', i)}:9093"
            for i in range(3)
            if i != partition["leader_id"]
        )
        got = clients.consume(
            topic, 1, bootstrap_servers=others, **kafka_cluster.admin.ssl_kwargs()
        )
        assert got == [b"precious"]
    finally:
        leader.start()
        kafka_cluster.wait_up()
        clients.wait_in_sync(kafka_cluster, topic)


def test_zookeeper_follower_restart_keeps_the_quorum(kafka_cluster):
    modes = [kafka_cluster.zookeeper_mode(i) for i in range(3)]
    assert sorted(modes) == ["follower", "follower", "leader"]
    follower = modes.index("follower")
    pod = kafka_cluster.zk_pods[follower]
    pod.kill()
    # two of three still form a quorum: the cluster keeps working
    clients.create_topic(kafka_cluster, "harness.zk-down")
    pod.start()
    kafka_cluster.wait_zookeeper_quorum()
    assert kafka_cluster.zookeeper_mode(follower) == "follower"
