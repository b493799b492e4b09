"""The chart installed in KRaft mode (kafka.metadata.mode: kraft) on a control plane whose pods
really run: process-backed nodes run the controllers and brokers on Kafka 4's jars
(devtools/podspec.py maps the apache/kafka:4.x image to devtools/kafka-bin4), each pod's
format-storage init container formats its volume with the cluster id that the PKI hook created,
and the agents reconcile ConfigMaps against the KRaft cluster. One install for the module.
Upgrades (the KRaft roll) are tested with the roller."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer

from devtools.chart import HARNESS_VALUES, deep_merge
from devtools.kube import ROOT
from devtools.kube.controlplane import ControlPlane
from devtools.waiting import wait_until
from tests.conftest import new_run_dir

from .test_install import RELEASE, Install, _ready

KRAFT_VALUES = {
    "kafka": {
        "metadata": {"mode": "kraft"},
        "controller": {"heapOpts": "-Xms192m -Xmx192m"},
    },
}


@pytest.fixture(scope="module")
def kraft() -> Install:
    # the kairn commands from this checkout (an image built before a change to kairn-certs
    # would run the old PKI hook); test_install.py covers the podman runtime
    runtime = os.environ.get("KAIRN_NODE_RUNTIME")
    os.environ["KAIRN_NODE_RUNTIME"] = "process"
    run_dir = new_run_dir("install-kraft")
    cp = ControlPlane(run_dir / "kube", nodes=0, process_nodes=3, die_with_parent=True)
    cp.start()
    inst = Install(cp, f"kraft-{uuid.uuid4().hex[:6]}", run_dir)
    inst.values = deep_merge(HARNESS_VALUES, KRAFT_VALUES)
    try:
        started = time.monotonic()
        out = inst.helm(
            "install", RELEASE, str(ROOT / "chart"), "--create-namespace", "--wait",
            "--timeout", "10m",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr + f"\npods: {cp.run_dir / 'node' / 'pods'}"
        inst.install_seconds = time.monotonic() - started
        yield inst
    finally:
        cp.stop()
        if runtime is None:
            os.environ.pop("KAIRN_NODE_RUNTIME", None)
        else:
            os.environ["KAIRN_NODE_RUNTIME"] = runtime


def test_kraft_install_runs_controllers_and_brokers_without_zookeeper(kraft):
    secrets = {s["metadata"]["name"] for s in kraft.get("secrets")["items"]}
    assert {f"{RELEASE}-kafka-controllers", f"{RELEASE}-kraft-cluster"} <= secrets
    assert f"{RELEASE}-zookeeper-nodes" not in secrets
    assert kraft.pods("zookeeper") == []
    for component, count in (("controller", 3), ("kafka", 3), ("agents", 1)):
        pods = kraft.pods(component)
        assert len(pods) == count and all(_ready(p) for p in pods), component
    admin = kraft.admin()
    try:
        assert {b["broker_id"] for b in admin.describe_cluster()["brokers"]} == {0, 1, 2}
    finally:
        admin.close()
    # every node formatted its own volume once, for the cluster id of the PKI hook's Secret
    cluster_id = kraft.secret(f"{RELEASE}-kraft-cluster")["cluster.id"].decode()
    for name, node_id in [(f"{RELEASE}-controller-{i}", 100 + i) for i in range(3)] + [
        (f"{RELEASE}-kafka-{i}", i) for i in range(3)
    ]:
        claim = kraft.cp.run_dir / "node" / "claims" / kraft.ns / f"data-{name}"
        text = (claim / "data" / "meta.properties").read_text()
        assert f"cluster.id={cluster_id}" in text and f"node.id={node_id}\n" in text, name


def test_a_topic_configmap_becomes_a_topic_on_kraft(kraft):
    kraft.declare("topic", "kraft.orders", {"partitions": 4, "replicas": 3})
    admin = kraft.admin()
    try:
        (topic,) = wait_until(
            lambda: [t for t in admin.describe_topics(["kraft.orders"]) if t["partitions"]],
            60,
            "kraft.orders in the brokers' metadata",
        )
    finally:
        admin.close()
    assert len(topic["partitions"]) == 4
    assert all(len(p["replica_nodes"]) == 3 for p in topic["partitions"])


def test_a_scram_user_configmap_produces_and_consumes_on_kraft(kraft):
    kraft.declare("topic", "kraft.billing", {"partitions": 1, "replicas": 3})
    kraft.declare(
        "user",
        "kraft-billing",
        {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [
                    {
                        "resource": {"type": "topic", "name": "kraft.billing"},
                        "operations": ["Write", "Read", "Describe"],
                    },
                    {
                        "resource": {"type": "group", "name": "kraft-billing"},
                        "operations": ["Read"],
                    },
                ],
            },
        },
    )
    login = {
        "bootstrap_servers": kraft.bootstrap_scram,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "kraft-billing",
        "sasl_plain_password": kraft.secret("kraft-billing")["password"].decode(),
        "ssl_cafile": kraft.ssl()["ssl_cafile"],
    }
    producer = KafkaProducer(acks="all", **login)
    try:
        assert producer.send("kraft.billing", b"paid").get(timeout=60).offset >= 0
    finally:
        producer.close()
    consumer = KafkaConsumer(
        "kraft.billing",
        group_id="kraft-billing",
        auto_offset_reset="earliest",
        consumer_timeout_ms=60_000,
        **login,
    )
    try:
        assert next(iter(consumer)).value == b"paid"
    finally:
        consumer.close()


def test_helm_test_passes_on_kraft(kraft):
    out = kraft.helm("test", RELEASE, "--timeout", "5m")
    assert out.returncode == 0, out.stdout + out.stderr
