"""The chart's hook Jobs from the image, with their own ServiceAccounts and Roles: kairn-certs
writes its Secrets; kairn-roller's preflight and roll run against the local API server (kwok
makes the StatefulSets' pods Ready) and the harness' ZooKeeper and Kafka over mutual TLS."""

from __future__ import annotations

import json
import uuid

import pytest
from kubernetes import client

from .conftest import NAMESPACE, apply_rbac, service_account, wait_for

pytestmark = pytest.mark.kafka


def test_kairn_certs_writes_its_secrets(pods, kube, core, tmp_path):
    ns = f"image-{uuid.uuid4().hex[:6]}"
    apply_rbac(kube, core, pods.rendering, ns, tmp_path)
    try:
        sa = service_account(kube, core, ns, "kairn-certs", tmp_path / "sa")
        job = pods.container("Job", "kairn-certs", "certs", namespace=ns, service_account=sa)
        done = job.run(timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        names = {s.metadata.name for s in core.list_namespaced_secret(ns).items}
        for expected in (
            "kairn-cluster-ca",
            "kairn-cluster-ca-cert",
            "kairn-clients-ca",
            "kairn-clients-ca-cert",
            "kairn-agents-cert",
            "kairn-kafka-brokers",
            "kairn-zookeeper-nodes",
        ):
            assert expected in names, sorted(names)
    finally:
        core.delete_namespace(ns)


def _kwok_statefulset(doc: dict) -> dict:
    """A rendered StatefulSet for kwok's pods: claims become emptyDirs (no provisioner)."""
    doc = json.loads(json.dumps(doc))
    spec = doc["spec"]
    for claim in spec.pop("volumeClaimTemplates", []):
        volume = {"name": claim["metadata"]["name"], "emptyDir": {}}
        spec["template"]["spec"].setdefault("volumes", []).append(volume)
    doc["metadata"]["namespace"] = NAMESPACE
    return doc


@pytest.fixture
def statefulsets(cluster_pods, api, core, kube, tmp_path):
    apply_rbac(kube, core, cluster_pods.rendering, NAMESPACE, tmp_path)
    apps = client.AppsV1Api(api)
    made = []
    for name in ("kairn-zookeeper", "kairn-kafka"):
        doc = _kwok_statefulset(cluster_pods.rendering[("StatefulSet", name)])
        try:
            apps.create_namespaced_stateful_set(NAMESPACE, doc)
        except client.ApiException as e:
            if e.status != 409:
                raise
        made.append(name)

    def all_ready():
        for name in made:
            sts = apps.read_namespaced_stateful_set(name, NAMESPACE)
            if (sts.status.ready_replicas or 0) != sts.spec.replicas:
                return False
        return True

    wait_for("kwok's pods of both StatefulSets Ready", all_ready, 120)
    yield made
    for name in made:
        apps.delete_namespaced_stateful_set(name, NAMESPACE)


@pytest.mark.parametrize("job", ["kairn-preflight", "kairn-roller"])
def test_roller_hooks_pass_on_a_healthy_cluster(
    job, statefulsets, cluster_pods, kube, core, tmp_path
):
    sa = service_account(kube, core, NAMESPACE, job, tmp_path / "sa")
    hook = cluster_pods.container("Job", job, "roller", service_account=sa)
    done = hook.run(timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
