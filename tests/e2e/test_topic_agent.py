"""kairn-topic-agent against a real API server and the real TLS Kafka cluster of the harness.

Each test gets its own namespace and an agent watching it (in-process, or as a subprocess
where it is killed with SIGKILL); topic names carry the namespace, so tests share one Kafka
cluster without meeting."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import kafka.errors as Errors
import pytest
import yaml
from kafka.admin import ConfigResource, ConfigResourceType
from kubernetes import client

from agents.common.settings import Settings
from agents.topic_agent.main import TopicAgent
from devtools.cluster import LocalCluster
from devtools.waiting import wait_until

from .helpers import gone, wait_for

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "kairn"


# ---- helpers --------------------------------------------------------------------------------
def cm_body(name: str, spec, labels=None, annotations=None, cluster=CLUSTER) -> client.V1ConfigMap:
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec)
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={"kairn.dev/cluster": cluster, "kairn.dev/type": "topic", **(labels or {})},
            annotations=annotations,
        ),
        data={"spec": text},
    )


def set_spec(core, ns, name, spec) -> None:
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec)
    core.patch_namespaced_config_map(name, ns, {"data": {"spec": text}})


def status(core, ns, name) -> dict:
    cm = core.read_namespaced_config_map(name, ns)
    raw = (cm.metadata.annotations or {}).get("kairn.dev/status")
    st = json.loads(raw) if raw else {}
    st["label"] = (cm.metadata.labels or {}).get("kairn.dev/state")
    return st


def wait_state(core, ns, name, state, reason=None, timeout=90) -> dict:
    def check():
        st = status(core, ns, name)
        ok = st.get("label") == state and st.get("state") == state
        return st if ok and (reason is None or st.get("reason") == reason) else None

    return wait_for(f"{name} to be {state} {reason or ''}", check, timeout=timeout)


def describe(cluster: LocalCluster, topic: str) -> dict | None:
    """{'partitions': n, 'rf': n, 'config': {overrides}} or None when the topic is absent."""
    admin = cluster.admin_client()
    try:
        (t,) = admin.describe_topics([topic])
        if t["error_code"] == 3:
            return None
        assert t["error_code"] == 0, t
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        cfg = {k: v["value"] for k, v in res["topic"][topic].items()}
        return {
            "partitions": len(t["partitions"]),
            "rf": max(len(p["replica_nodes"]) for p in t["partitions"]),
            "config": cfg,
        }
    finally:
        admin.close()


def alter_topic_config(cluster: LocalCluster, topic: str, configs: dict) -> None:
    admin = cluster.admin_client()
    try:
        res = admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs)], raise_on_unknown=False
        )
        assert res["topic"][topic] == "OK", res
    finally:
        admin.close()


THROTTLES = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")
RATES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")


def broker_configs(cluster: LocalCluster) -> dict[str, dict]:
    admin = cluster.admin_client()
    try:
        res = admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(b)) for b in (0, 1, 2)]
        )
        return {b: {k: v["value"] for k, v in cfg.items()} for b, cfg in res["broker"].items()}
    finally:
        admin.close()


def assert_no_throttles(cluster: LocalCluster, topic: str) -> None:
    cfg = describe(cluster, topic)["config"]
    assert not [k for k in THROTTLES if k in cfg], cfg
    for b, bcfg in broker_configs(cluster).items():
        assert not [k for k in RATES if k in bcfg], (b, bcfg)


def events_of(core, ns, name) -> list:
    evs = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason) for e in evs]


def agent_env(kafka_cluster: LocalCluster, kube, ns: str, **extra) -> dict:
    tls = kafka_cluster.admin.ssl_kwargs()
    env = {
        "KAIRN_CLUSTER": CLUSTER,
        "KAIRN_NAMESPACE": ns,
        "KAIRN_BOOTSTRAP": kafka_cluster.bootstrap(),
        "KAIRN_TLS_CA_FILE": tls["ssl_cafile"],
        "KAIRN_TLS_CERT_FILE": tls["ssl_certfile"],
        "KAIRN_TLS_KEY_FILE": tls["ssl_keyfile"],
        "KAIRN_TLS_CHECK_HOSTNAME": "true",
        "KAIRN_HTTP_PORT": "0",
        "KAIRN_RESYNC_SECONDS": "300",
        "KAIRN_BROKERS": "3",
        "KAIRN_LOG_LEVEL": "INFO",
        "KUBECONFIG": str(kube.kubeconfig),
    }
    env.update({f"KAIRN_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def start_agent(kafka_cluster, kube, api, namespace, monkeypatch):
    """start_agent(**settings) -> a running in-process TopicAgent for the test's namespace."""
    agents = []

    def start(**extra) -> TopicAgent:
        for k, v in agent_env(kafka_cluster, kube, namespace, **extra).items():
            monkeypatch.setenv(k, v)
        from agents.topic_agent.main import parser

        settings = Settings.from_args(parser().parse_args([]))
        agent = TopicAgent(settings, api=kube.api_client()).start()
        agents.append(agent)
        return agent

    yield start
    for a in agents:
        a.stop()


@pytest.fixture
def topic(namespace):
    return lambda suffix: f"{namespace}.{suffix}"


def http_get(agent: TopicAgent, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{agent.server.port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# ---- create, change, remove -----------------------------------------------------------------
def test_create_grow_change_and_remove_config(core, namespace, kafka_cluster, start_agent, topic):
    agent = start_agent()
    name = topic("orders")
    core.create_namespaced_config_map(
        namespace,
        cm_body(
            "orders",
            {
                "topicName": name,
                "partitions": 1,
                "replicas": 3,
                "config": {"retention.ms": 3600000, "cleanup.policy": "delete"},
            },
        ),
    )
    st = wait_state(core, namespace, "orders", "Ready")
    assert st["topicName"] == name and st["specHash"] and st["time"]
    d = wait_for("the topic", lambda: describe(kafka_cluster, name))
    assert d["partitions"] == 1 and d["rf"] == 3
    assert d["config"]["retention.ms"] == "3600000"
    assert ("Normal", "TopicReady") in events_of(core, namespace, "orders")

    set_spec(
        core,
        namespace,
        "orders",
        {
            "topicName": name,
            "partitions": 4,
            "replicas": 3,
            "config": {
                "retention.ms": 7200000,
                "cleanup.policy": "delete",
                "max.message.bytes": 2000000,
            },
        },
    )
    wait_for(
        "4 partitions and the new config",
        lambda: (
            (d := describe(kafka_cluster, name))
            and d["partitions"] == 4
            and d["config"].get("retention.ms") == "7200000"
            and d["config"].get("max.message.bytes") == "2000000"
        ),
    )
    st2 = wait_state(core, namespace, "orders", "Ready")
    wait_for(
        "the new spec hash", lambda: status(core, namespace, "orders")["specHash"] != st["specHash"]
    )

    # remove a key: Kafka's default applies again; the other keys stay
    set_spec(
        core,
        namespace,
        "orders",
        {
            "topicName": name,
            "partitions": 4,
            "replicas": 3,
            "config": {"cleanup.policy": "delete", "max.message.bytes": 2000000},
        },
    )
    wait_for(
        "retention.ms back to the default",
        lambda: "retention.ms" not in describe(kafka_cluster, name)["config"],
    )
    d = describe(kafka_cluster, name)
    assert d["config"]["max.message.bytes"] == "2000000" and d["partitions"] == 4
    assert st2["configKeys"]

    # health and metrics
    assert http_get(agent, "/healthz")[0] == 200
    wait_for("readyz", lambda: http_get(agent, "/readyz")[0] == 200)
    code, text = http_get(agent, "/metrics")
    assert code == 200
    for metric in (
        "kairn_reconciliations_total",
        "kairn_reconcile_duration_seconds",
        "kairn_resources",
        "kairn_kafka_requests_total",
        "kairn_watch_restarts_total",
        "kairn_queue_depth",
        "kairn_last_full_sync_timestamp_seconds",
    ):
        assert metric in text
    wait_for(
        "the Ready gauge",
        lambda: (
            f'kairn_resources{{agent="topic",namespace="{namespace}",state="Ready"}} 1.0'
            in http_get(agent, "/metrics")[1]
        ),
    )


def test_drift_in_kafka_is_set_back_on_resync(core, namespace, kafka_cluster, start_agent, topic):
    start_agent(resync_seconds=3)
    name = topic("drift")
    core.create_namespaced_config_map(
        namespace,
        cm_body("drift", {"topicName": name, "partitions": 2, "config": {"retention.ms": 3600000}}),
    )
    wait_state(core, namespace, "drift", "Ready")
    # someone changes a declared key and sets one nobody declared
    alter_topic_config(kafka_cluster, name, {"retention.ms": "1000", "segment.ms": "600000"})
    wait_for(
        "retention.ms set back",
        lambda: describe(kafka_cluster, name)["config"].get("retention.ms") == "3600000",
        timeout=60,
    )
    assert describe(kafka_cluster, name)["config"].get("segment.ms") == "600000"


def test_conflict_the_oldest_configmap_wins(core, namespace, kafka_cluster, start_agent, topic):
    start_agent()
    name = topic("shared")
    core.create_namespaced_config_map(
        namespace, cm_body("first", {"topicName": name, "partitions": 2})
    )
    wait_state(core, namespace, "first", "Ready")
    core.create_namespaced_config_map(
        namespace, cm_body("second", {"topicName": name, "partitions": 5})
    )
    st = wait_state(core, namespace, "second", "Error", "TopicConflict")
    assert "first" in st["message"]
    assert describe(kafka_cluster, name)["partitions"] == 2
    assert ("Warning", "TopicConflict") in events_of(core, namespace, "second")
    # the owner goes away (the topic is kept): the other one takes over
    core.delete_namespaced_config_map("first", namespace)
    wait_state(core, namespace, "second", "Ready")
    assert describe(kafka_cluster, name)["partitions"] == 5


# ---- errors: Error state, nothing changes in Kafka ------------------------------------------
BAD_SPECS = [
    ("bad-yaml", "partitions: [1, 2", "InvalidYAML", "not valid YAML"),
    ("unknown-field", {"partitions": 1, "replica": 3}, "UnknownField", "replica"),
    ("wrong-type", {"partitions": "three"}, "InvalidSpec", "partitions must be an integer"),
    ("bad-name", {"topicName": "orders/v1"}, "InvalidTopicName", "characters Kafka refuses"),
    (
        "unknown-key",
        {"config": {"retention.msec": 5}},
        "InvalidConfig",
        "Unknown topic config name",
    ),
    ("bad-value", {"config": {"retention.ms": "soon"}}, "InvalidConfig", "retention.ms"),
    (
        "too-many-replicas",
        {"replicas": 5},
        "ReplicationFactorTooLarge",
        "Replication factor: 5 larger",
    ),
]


@pytest.mark.parametrize(("cm", "spec", "reason", "text"), BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_is_an_error_and_creates_nothing(
    core, namespace, kafka_cluster, start_agent, topic, cm, spec, reason, text
):
    start_agent()
    name = topic(cm)
    if isinstance(spec, dict) and "topicName" not in spec:
        spec = {"topicName": name, **spec}
    core.create_namespaced_config_map(namespace, cm_body(cm, spec))
    st = wait_state(core, namespace, cm, "Error", reason)
    assert text in st["message"], st
    errors = core.list_namespaced_config_map(namespace, label_selector="kairn.dev/state=Error")
    assert [c.metadata.name for c in errors.items] == [cm]
    assert describe(kafka_cluster, name) is None
    # a good ConfigMap next to it is not held up
    core.create_namespaced_config_map(namespace, cm_body("good", {"topicName": topic("good")}))
    wait_state(core, namespace, "good", "Ready")


def test_errors_on_an_existing_topic_change_nothing(
    core, namespace, kafka_cluster, start_agent, topic
):
    start_agent()
    name = topic("existing")
    good = {"topicName": name, "partitions": 3, "config": {"retention.ms": 3600000}}
    core.create_namespaced_config_map(namespace, cm_body("existing", good))
    wait_state(core, namespace, "existing", "Ready")
    before = describe(kafka_cluster, name)

    set_spec(core, namespace, "existing", {**good, "partitions": 1})
    st = wait_state(core, namespace, "existing", "Error", "PartitionsDecreased")
    assert "cannot decrease" in st["message"]

    # an invalid config next to a partition increase: neither is applied
    set_spec(
        core,
        namespace,
        "existing",
        {**good, "partitions": 6, "config": {"retention.ms": 60000, "cleanup.policy": "sometimes"}},
    )
    st = wait_state(core, namespace, "existing", "Error", "InvalidConfig")
    assert "cleanup.policy" in st["message"]

    set_spec(core, namespace, "existing", {**good, "topicName": name + ".renamed"})
    st = wait_state(core, namespace, "existing", "Error", "TopicNameChanged")
    assert describe(kafka_cluster, name + ".renamed") is None
    assert describe(kafka_cluster, name) == before

    set_spec(core, namespace, "existing", good)
    wait_state(core, namespace, "existing", "Ready")


# ---- deletion and pause ---------------------------------------------------------------------
def test_deleting_a_configmap_keeps_the_topic_by_default(
    core, namespace, kafka_cluster, start_agent, topic
):
    start_agent()
    name = topic("kept")
    core.create_namespaced_config_map(namespace, cm_body("kept", {"topicName": name}))
    wait_state(core, namespace, "kept", "Ready")
    assert not core.read_namespaced_config_map("kept", namespace).metadata.finalizers
    core.delete_namespaced_config_map("kept", namespace)
    wait_for(
        "ConfigMap gone", lambda: gone(lambda: core.read_namespaced_config_map("kept", namespace))
    )
    assert describe(kafka_cluster, name) is not None


def test_annotated_deletion_deletes_the_topic(core, namespace, kafka_cluster, start_agent, topic):
    start_agent()
    name = topic("deleted")
    core.create_namespaced_config_map(
        namespace,
        cm_body(
            "deleted", {"topicName": name}, annotations={"kairn.dev/deletion-policy": "delete"}
        ),
    )
    wait_state(core, namespace, "deleted", "Ready")
    fin = core.read_namespaced_config_map("deleted", namespace).metadata.finalizers
    assert fin == ["kairn.dev/topic"]
    core.delete_namespaced_config_map("deleted", namespace)
    wait_for(
        "ConfigMap gone",
        lambda: gone(lambda: core.read_namespaced_config_map("deleted", namespace)),
    )
    wait_for("topic gone", lambda: describe(kafka_cluster, name) is None)


def test_deletion_enabled_also_when_the_topic_is_already_gone(
    core, namespace, kafka_cluster, start_agent, topic
):
    agent = start_agent(delete_topics="true")
    name = topic("twice")
    core.create_namespaced_config_map(namespace, cm_body("twice", {"topicName": name}))
    core.create_namespaced_config_map(
        namespace,
        cm_body(
            "kept", {"topicName": topic("kept")}, annotations={"kairn.dev/deletion-policy": "keep"}
        ),
    )
    wait_state(core, namespace, "twice", "Ready")
    wait_state(core, namespace, "kept", "Ready")
    assert core.read_namespaced_config_map("twice", namespace).metadata.finalizers
    assert not core.read_namespaced_config_map("kept", namespace).metadata.finalizers
    agent.stop()  # the topic disappears while nobody watches
    admin = kafka_cluster.admin_client()
    try:
        admin.delete_topics([name])
    finally:
        admin.close()
    wait_for("topic gone", lambda: describe(kafka_cluster, name) is None)
    core.delete_namespaced_config_map("twice", namespace)
    core.delete_namespaced_config_map("kept", namespace)
    start_agent(delete_topics="true")
    wait_for(
        "ConfigMap gone", lambda: gone(lambda: core.read_namespaced_config_map("twice", namespace))
    )
    assert describe(kafka_cluster, name) is None
    assert describe(kafka_cluster, topic("kept")) is not None


def test_pause_leaves_the_topic_alone(core, namespace, kafka_cluster, start_agent, topic):
    start_agent()
    name = topic("paused")
    core.create_namespaced_config_map(
        namespace, cm_body("paused", {"topicName": name, "partitions": 1})
    )
    wait_state(core, namespace, "paused", "Ready")
    core.patch_namespaced_config_map(
        "paused", namespace, {"metadata": {"labels": {"kairn.dev/managed": "false"}}}
    )
    st = wait_state(core, namespace, "paused", "Pending", "ReconciliationPaused")
    set_spec(core, namespace, "paused", {"topicName": name, "partitions": 3})
    # the change is seen (the status records the new spec's hash) but not applied
    wait_for(
        "reconciled while paused",
        lambda: status(core, namespace, "paused")["specHash"] != st["specHash"],
    )
    assert describe(kafka_cluster, name)["partitions"] == 1
    core.patch_namespaced_config_map(
        "paused", namespace, {"metadata": {"labels": {"kairn.dev/managed": "true"}}}
    )
    wait_state(core, namespace, "paused", "Ready")
    assert describe(kafka_cluster, name)["partitions"] == 3


# ---- replication factor ---------------------------------------------------------------------
def test_replication_factor_change_by_reassignment(
    core, namespace, kafka_cluster, start_agent, topic
):
    start_agent()
    name = topic("rf")
    core.create_namespaced_config_map(
        namespace, cm_body("rf", {"topicName": name, "partitions": 2, "replicas": 1})
    )
    wait_state(core, namespace, "rf", "Ready")
    assert describe(kafka_cluster, name)["rf"] == 1
    set_spec(core, namespace, "rf", {"topicName": name, "partitions": 2, "replicas": 3})
    wait_for("RF 3", lambda: describe(kafka_cluster, name)["rf"] == 3, timeout=120)
    wait_for(
        "Ready after the reassignment",
        lambda: (
            (s := status(core, namespace, "rf"))["label"] == "Ready" and not s.get("reassigning")
        ),
        timeout=120,
    )
    assert_no_throttles(kafka_cluster, name)
    set_spec(core, namespace, "rf", {"topicName": name, "partitions": 2, "replicas": 2})
    wait_for("RF 2", lambda: describe(kafka_cluster, name)["rf"] == 2, timeout=120)
    set_spec(core, namespace, "rf", {"topicName": name, "partitions": 2, "replicas": 4})
    st = wait_state(core, namespace, "rf", "Error", "ReplicationFactorChange")
    assert "needs 4 brokers" in st["message"]


# ---- failures: kill -9 mid-batch, a broker down ---------------------------------------------
def test_kill_9_mid_batch_then_converge(core, namespace, kafka_cluster, kube, topic, tmp_path):
    n = 150
    for i in range(n):
        core.create_namespaced_config_map(
            namespace,
            cm_body(
                f"t{i:03d}",
                {
                    "topicName": topic(f"k{i:03d}"),
                    "partitions": 1,
                    "config": {"retention.ms": 1000 * (i + 1)},
                },
            ),
        )
    env = {**os.environ, **agent_env(kafka_cluster, kube, namespace, batch_size=20)}
    bin_ = str(ROOT / ".venv" / "bin" / "kairn-topic-agent")

    def ready_count() -> int:
        cms = core.list_namespaced_config_map(
            namespace, label_selector="kairn.dev/state=Ready"
        ).items
        return len(cms)

    with open(tmp_path / "first.log", "w") as log1:
        first = subprocess.Popen([bin_], env=env, stderr=log1)
        try:
            wait_for("some topics Ready", lambda: ready_count() >= 10, timeout=120, interval=0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
    assert ready_count() < n, "the first agent finished before it was killed"
    with open(tmp_path / "second.log", "w") as log2:
        second = subprocess.Popen([bin_], env=env, stderr=log2)
        try:
            wait_for("all Ready", lambda: ready_count() == n, timeout=240)
        finally:
            second.terminate()
            assert second.wait(30) == 0
    for i in (0, n // 2, n - 1):
        d = describe(kafka_cluster, topic(f"k{i:03d}"))
        assert d["config"]["retention.ms"] == str(1000 * (i + 1))
    lines = [json.loads(x) for x in (tmp_path / "second.log").read_text().splitlines()]
    assert all({"ts", "level", "msg"} <= set(x) for x in lines)


def test_a_broker_down_during_reconcile(core, namespace, kafka_cluster, start_agent, topic):
    """With broker 2 gone, changes that two brokers can carry are applied; a new topic with
    three replicas waits (Pending, retried with backoff) and is created once the broker is
    back."""
    start_agent()
    name = topic("brokerdown")
    core.create_namespaced_config_map(
        namespace, cm_body("bd", {"topicName": name, "partitions": 2, "replicas": 3})
    )
    wait_state(core, namespace, "bd", "Ready")
    pod = kafka_cluster.kafka_pods[2]
    pod.kill()
    try:
        wait_until(
            lambda: kafka_cluster.registered_brokers() == {0, 1}, 120, "broker 2 unregistered"
        )
        set_spec(
            core,
            namespace,
            "bd",
            {
                "topicName": name,
                "partitions": 2,
                "replicas": 3,
                "config": {"retention.ms": 7200000},
            },
        )
        new = topic("brokerdown.new")
        core.create_namespaced_config_map(
            namespace, cm_body("bd-new", {"topicName": new, "partitions": 1, "replicas": 3})
        )
        wait_for(
            "config applied",
            lambda: describe(kafka_cluster, name)["config"].get("retention.ms") == "7200000",
            timeout=120,
        )
        st = wait_state(core, namespace, "bd-new", "Pending", "NotEnoughBrokers", timeout=120)
        assert "larger than available brokers: 2" in st["message"]
        assert describe(kafka_cluster, new) is None
    finally:
        pod.start()
        kafka_cluster.wait_up()
    wait_state(core, namespace, "bd-new", "Ready", timeout=180)
    wait_state(core, namespace, "bd", "Ready")
    wait_until(lambda: describe(kafka_cluster, new)["rf"] == 3, 60, "the new topic with RF 3")


# ---- the watch loop -------------------------------------------------------------------------
def reconciliations(agent: TopicAgent, result: str = "ready") -> float:
    text = agent.metrics.render().decode()
    prefix = f'kairn_reconciliations_total{{agent="topic",result="{result}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_own_updates_are_ignored_and_watch_survives_compaction(
    kube, core, namespace, kafka_cluster, start_agent, topic
):
    agent = start_agent()
    core.create_namespaced_config_map(namespace, cm_body("w1", {"topicName": topic("w1")}))
    wait_state(core, namespace, "w1", "Ready")
    core.create_namespaced_config_map(namespace, cm_body("w2", {"topicName": topic("w2")}))
    wait_state(core, namespace, "w2", "Ready")
    # one reconcile that ends Ready per ConfigMap: the status writes (and their watch events)
    # start none (a create still in progress may add a "pending" one under load)
    assert reconciliations(agent, "ready") == 2
    assert [e for e in events_of(core, namespace, "w1")] == [("Normal", "TopicReady")]
    # a ConfigMap of another cluster or type is not seen at all
    core.create_namespaced_config_map(
        namespace, cm_body("other", {"topicName": topic("other")}, cluster="another")
    )

    # etcd compacts its history and the API server restarts: the watch resumes, re-lists on
    # 410 Gone, and changes made meanwhile are picked up
    for i in range(3):
        core.patch_namespaced_config_map("other", namespace, {"data": {"i": str(i)}})
    kube.compact_etcd()
    kube.restart_apiserver()
    set_spec(core, namespace, "w1", {"topicName": topic("w1"), "partitions": 3})
    core.create_namespaced_config_map(namespace, cm_body("w3", {"topicName": topic("w3")}))
    wait_until(lambda: describe(kafka_cluster, topic("w1"))["partitions"] == 3, 120, "w1 grown")
    wait_state(core, namespace, "w3", "Ready", timeout=120)
    assert "kairn_watch_restarts_total" in agent.metrics.render().decode()
    restarts = re.search(
        r'^kairn_watch_restarts_total\{agent="topic"\} (\S+)$',
        agent.metrics.render().decode(),
        re.M,
    )
    assert float(restarts.group(1)) >= 1
    assert describe(kafka_cluster, topic("other")) is None
    assert "kairn.dev/state" not in (
        core.read_namespaced_config_map("other", namespace).metadata.labels or {}
    )


def test_kafka_unreachable_is_retried_not_an_error(core, namespace, start_agent, topic):
    """No broker answers: the ConfigMap gets no state (it is not wrong), /readyz says why, the
    failures are counted, and the agent keeps trying with backoff."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    agent = start_agent(bootstrap=dead, tls_ca_file="", kafka_timeout_ms=2000)
    core.create_namespaced_config_map(namespace, cm_body("lonely", {"topicName": topic("x")}))

    def failures() -> float:
        text = agent.metrics.render().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("kairn_reconciliations_total{") and 'result="retry"' in line
        )

    wait_for("two failed attempts", lambda: failures() >= 2, timeout=120)
    assert "kairn.dev/state" not in (
        core.read_namespaced_config_map("lonely", namespace).metadata.labels or {}
    )
    code, text = http_get(agent, "/readyz")
    assert code == 503 and text.strip()
    assert http_get(agent, "/healthz")[0] == 200


# ---- safety: Kafka's own topics, throttles, per-topic answers -------------------------------
def test_kafkas_internal_topics_are_never_touched(core, namespace, kafka_cluster, start_agent):
    """A spec for __consumer_offsets (growing it would move every group's coordinator, so
    their offsets look lost) is an Error and Kafka is untouched; nor is a deletion honoured."""

    def offsets_topic():
        # FindCoordinator makes Kafka create __consumer_offsets (it answers "not available"
        # until the topic has leaders)
        admin = kafka_cluster.admin_client()
        try:
            admin.describe_groups([f"{namespace}-g"])
        except Errors.CoordinatorNotAvailableError:
            return None
        finally:
            admin.close()
        return describe(kafka_cluster, "__consumer_offsets")

    before = wait_for("__consumer_offsets", offsets_topic, timeout=120)
    start_agent()
    specs = {
        "offsets": {
            "topicName": "__consumer_offsets",
            "partitions": before["partitions"] + 10,
            "replicas": 3,
            "config": {"retention.ms": 1000},
        },
        "txn": {"topicName": "__transaction_state", "partitions": 3},
        "connect": {"topicName": "connect-offsets", "partitions": 25},
        "mm2": {"topicName": "mm2-offsets.east.internal"},
    }
    for cm, spec in specs.items():
        core.create_namespaced_config_map(
            namespace, cm_body(cm, spec, annotations={"kairn.dev/deletion-policy": "delete"})
        )
    for cm, spec in specs.items():
        st = wait_state(core, namespace, cm, "Error", "InternalTopic")
        assert spec["topicName"] in st["message"] and "not managed by kairn" in st["message"]
    assert describe(kafka_cluster, "__consumer_offsets") == before
    for cm in ("txn", "connect", "mm2"):
        assert describe(kafka_cluster, specs[cm]["topicName"]) is None
    core.delete_namespaced_config_map("offsets", namespace)
    wait_for(
        "offsets ConfigMap gone",
        lambda: gone(lambda: core.read_namespaced_config_map("offsets", namespace)),
    )
    assert describe(kafka_cluster, "__consumer_offsets") == before


def test_throttles_left_by_a_killed_agent_are_removed(
    core, namespace, kafka_cluster, start_agent, topic
):
    """An agent killed between setting a reassignment's throttles and removing them: the
    next one finds the record in the status, removes the throttles and the topic is Ready."""
    agent = start_agent()
    name = topic("leftover")
    core.create_namespaced_config_map(
        namespace, cm_body("leftover", {"topicName": name, "partitions": 2, "replicas": 2})
    )
    wait_state(core, namespace, "leftover", "Ready")
    agent.stop()
    alter_topic_config(kafka_cluster, name, dict.fromkeys(THROTTLES, "*"))
    admin = kafka_cluster.admin_client()
    try:
        res = admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.BROKER, str(b), dict.fromkeys(RATES, "1048576"))
                for b in (0, 1, 2)
            ],
            raise_on_unknown=False,
            incremental=True,
        )
        assert set(res["broker"].values()) == {"OK"}, res
    finally:
        admin.close()
    st = status(core, namespace, "leftover")
    recorded = {
        k: st[k] for k in ("state", "reason", "message", "specHash", "topicName", "configKeys")
    }
    core.patch_namespaced_config_map(
        "leftover",
        namespace,
        {
            "metadata": {
                "annotations": {
                    "kairn.dev/status": json.dumps(
                        {
                            **recorded,
                            "state": "Pending",
                            "reason": "ReassigningReplicas",
                            "reassigning": True,
                        }
                    )
                },
                "labels": {"kairn.dev/state": "Pending"},
            }
        },
    )
    start_agent()
    wait_for(
        "Ready with the reassignment record cleared",
        lambda: (
            (s := status(core, namespace, "leftover"))["label"] == "Ready"
            and s.get("reassigning") is False
        ),
        timeout=120,
    )
    assert_no_throttles(kafka_cluster, name)


def test_one_refused_topic_of_a_batch_leaves_the_others_applied(
    core, namespace, kafka_cluster, start_agent, topic
):
    """Kafka answers per topic: in one batch of creates and one of config changes, the topic
    it refuses is Error with Kafka's reason, and every other topic is applied."""
    good = {
        f"ok{i}": {"topicName": topic(f"ok{i}"), "config": {"retention.ms": 60000}}
        for i in range(4)
    }
    bad = {"topicName": topic("refused"), "config": {"retention.ms": "soon"}}
    for cm, spec in good.items():
        core.create_namespaced_config_map(namespace, cm_body(cm, spec))
    core.create_namespaced_config_map(namespace, cm_body("refused", bad))
    agent = start_agent()  # all five in the agent's first batch
    for cm in good:
        wait_state(core, namespace, cm, "Ready")
    st = wait_state(core, namespace, "refused", "Error", "InvalidConfig")
    assert "retention.ms" in st["message"]
    assert describe(kafka_cluster, bad["topicName"]) is None

    agent.stop()
    for i, cm in enumerate(good):
        value = "forever" if i == 0 else 120000 + i
        set_spec(core, namespace, cm, {**good[cm], "config": {"retention.ms": value}})
    start_agent()
    st = wait_state(core, namespace, "ok0", "Error", "InvalidConfig")
    assert "forever" in st["message"] or "retention.ms" in st["message"]
    for i, cm in enumerate(good):
        if i:
            wait_for(
                f"{cm} changed",
                lambda c=cm, i=i: (
                    describe(kafka_cluster, good[c]["topicName"])["config"].get("retention.ms")
                    == str(120000 + i)
                ),
            )
            wait_state(core, namespace, cm, "Ready")
    assert describe(kafka_cluster, good["ok0"]["topicName"])["config"]["retention.ms"] == "60000"
