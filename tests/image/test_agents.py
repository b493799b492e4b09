"""The topic and user agents from the image, as the chart's Deployment runs them: its
ServiceAccount's projected token (in-cluster configuration), its client certificate Secret
(mode 0440, group fsGroup), a read-only root with /tmp from an emptyDir, against the local
API server and the harness' Kafka. Each reaches Ready by its own readiness endpoint and
reconciles a resource."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid

import pytest
import yaml
from kubernetes import client

from .conftest import NAMESPACE, apply_rbac, service_account, wait_for

pytestmark = pytest.mark.kafka
LABELS = {"kairn.dev/cluster": "kairn"}


@pytest.fixture
def agents_pod(cluster_pods, kafka_cluster, kube, core, tmp_path):
    """make(container) -> the agents Deployment's container running from the image, serving
    HTTP on a loopback address of its own (the network is the host's: two agents, and any
    other process, would otherwise share 0.0.0.0:8080)."""
    apply_rbac(kube, core, cluster_pods.rendering, NAMESPACE, tmp_path)
    sa = service_account(kube, core, NAMESPACE, "kairn-agents", tmp_path / "sa")
    prefix = kafka_cluster.address("kafka", 0).rsplit(".", 1)[0]

    def make(name: str, last_octet: int):
        address = f"{prefix}.{last_octet}"
        c = cluster_pods.container(
            "Deployment",
            "kairn-agents",
            name,
            pod=f"kairn-agents-{uuid.uuid4().hex[:5]}",
            address=address,
            service_account=sa,
            extra_env={"KAIRN_HTTP_HOST": address},
        ).start()
        spec = cluster_pods.rendering[("Deployment", "kairn-agents")]["spec"]["template"]["spec"]
        container = next(x for x in spec["containers"] if x["name"] == name)
        port = container["ports"][0]["containerPort"]
        return c, f"http://{address}:{port}"

    return make


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def state(core, name: str) -> str | None:
    cm = core.read_namespaced_config_map(name, NAMESPACE)
    return (cm.metadata.labels or {}).get("kairn.dev/state")


def configmap(name: str, kind: str, spec: dict) -> client.V1ConfigMap:
    labels = {**LABELS, "kairn.dev/type": kind}
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels), data={"spec": yaml.safe_dump(spec)}
    )


def test_topic_agent_is_ready_and_creates_a_topic(agents_pod, core, kafka_cluster):
    agent, url = agents_pod("topic-agent", 201)
    wait_for(f"the topic agent Ready ({agent.log})", lambda: get(f"{url}/readyz") == 200, 120)
    topic = f"image-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_config_map(
        NAMESPACE, configmap(topic, "topic", {"topicName": topic, "partitions": 2, "replicas": 3})
    )
    wait_for(f"{topic} Ready ({agent.log})", lambda: state(core, topic) == "Ready", 90)
    admin = kafka_cluster.admin_client()
    try:
        assert topic in admin.list_topics()
    finally:
        admin.close()
    assert agent.running(), agent.output()[-3000:]


def test_user_agent_is_ready_and_makes_a_scram_user(agents_pod, core, kafka_cluster):
    for name, keys in (("kairn-clients-ca-cert", ("ca.crt",)), ("kairn-clients-ca", ("ca.key",))):
        folder = kafka_cluster.secret_dir(name)
        data = {k: base64.b64encode((folder / k).read_bytes()).decode() for k in keys}
        try:
            core.create_namespaced_secret(
                NAMESPACE, client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=data)
            )
        except client.ApiException as e:
            if e.status != 409:
                raise
    agent, url = agents_pod("user-agent", 202)
    wait_for(f"the user agent Ready ({agent.log})", lambda: get(f"{url}/readyz") == 200, 120)
    user = f"image-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_config_map(
        NAMESPACE, configmap(user, "user", {"authentication": {"type": "scram-sha-512"}})
    )
    wait_for(f"{user} Ready ({agent.log})", lambda: state(core, user) == "Ready", 90)
    secret = core.read_namespaced_secret(user, NAMESPACE)
    assert base64.b64decode(secret.data["password"])
    cm = core.read_namespaced_config_map(user, NAMESPACE)
    assert json.loads(cm.metadata.annotations["kairn.dev/status"])["username"] == user
    assert agent.running(), agent.output()[-3000:]
