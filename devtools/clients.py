"""Small Kafka client helpers for tests, benchmarks and the playground (kafka-python 3.0)."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)

from devtools.cluster import LocalCluster
from devtools.waiting import wait_until


def scram_kwargs(cluster: LocalCluster, user: str, password: str) -> dict:
    return {
        "bootstrap_servers": cluster.bootstrap(9094),
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
        "ssl_cafile": str(cluster.cluster_ca_file),
    }


def create_topic(
    cluster: LocalCluster, name: str, partitions: int = 1, rf: int = 3, **configs
) -> None:
    admin = cluster.admin_client()
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": rf, "configs": configs}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def set_scram_password(cluster: LocalCluster, user: str, password: str) -> None:
    """Upsert a SCRAM-SHA-512 credential with Kafka's own kafka-configs tool.

    Not kafka-python 3.0.12's alter_user_scram_credentials: in ZooKeeper mode only the active
    controller accepts that request, kafka-python sends it to any broker, and it reports the
    NOT_CONTROLLER answer (which carries no message) as success."""
    cluster.kafka_tool(
        "kafka.admin.ConfigCommand",
        "--alter",
        "--entity-type",
        "users",
        "--entity-name",
        user,
        "--add-config",
        f"SCRAM-SHA-512=[iterations=4096,password={password}]",
    )
    admin = cluster.admin_client()
    try:
        described = admin.describe_user_scram_credentials([user]).get(user, {})
        if described.get("error") or not described.get("credential_infos"):
            raise RuntimeError(f"SCRAM credential of {user} not stored: {described}")
    finally:
        admin.close()


def grant(
    cluster: LocalCluster,
    principal: str,
    resource_type: ResourceType,
    name: str,
    operations: list[ACLOperation],
) -> None:
    admin = cluster.admin_client()
    try:
        acls = [
            ACL(
                principal,
                "*",
                op,
                ACLPermissionType.ALLOW,
                ResourcePattern(resource_type, name, ACLResourcePatternType.LITERAL),
            )
            for op in operations
        ]
        result = admin.create_acls(acls)
        if result.get("failed"):
            raise RuntimeError(f"create_acls failed: {result['failed']}")
    finally:
        admin.close()


def produce(topic: str, values: list[bytes], timeout: float = 60, **client) -> None:
    """Send every value with acks=all and wait for each acknowledgement."""
    producer = KafkaProducer(acks="all", enable_idempotence=True, **client)
    try:
        futures = [producer.send(topic, v) for v in values]
        for f in futures:
            f.get(timeout)
    finally:
        producer.close(timeout=10)


def consume(
    topic: str, count: int, timeout: float = 60, group: str | None = None, **client
) -> list[bytes]:
    """Read ``count`` values from the start of ``topic``; fail if they do not arrive in time."""
    consumer = KafkaConsumer(
        topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, **client
    )
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                got.extend(r.value for r in records)
    finally:
        consumer.close()
    if len(got) < count:
        raise TimeoutError(f"consumed {len(got)} of {count} messages from {topic} in {timeout}s")
    return got


def partitions(cluster: LocalCluster, topic: str) -> list[dict]:
    admin = cluster.admin_client()
    try:
        (described,) = admin.describe_topics([topic])
        return described["partitions"]
    finally:
        admin.close()


def wait_in_sync(cluster: LocalCluster, topic: str, timeout: float = 120) -> None:
    """Until every partition of ``topic`` has its full replica set in sync."""

    def in_sync():
        return all(
            set(p["isr_nodes"]) == set(p["replica_nodes"]) for p in partitions(cluster, topic)
        )

    wait_until(in_sync, timeout, f"every partition of {topic} fully in sync")
