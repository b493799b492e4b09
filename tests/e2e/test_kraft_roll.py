"""kairn-roller's Kubernetes side in KRaft mode: the hooks' environment names the chart's
controller StatefulSet, and the Kubernetes adapter sees it (or its absence: ZooKeeper mode) on a
real API server and StatefulSet controller (kwok makes the pods Ready): the controllers' pods,
their recreation on the updateRevision, their renewal marks and Events.

The roll itself in KRaft mode runs against real Kafka 4 processes in
tests/integration/test_roller_kraft.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from kubernetes import client

from agents.roller import plan, quorum
from agents.roller.kube import KubePlatform
from agents.roller.model import CONTROLLER, KAFKA, ZOOKEEPER
from devtools.chart import helm_template

from .helpers import wait_for

LABELS = {"app.kubernetes.io/instance": "kairn", "app.kubernetes.io/component": "controller"}


def test_the_hooks_name_the_rendered_controller_statefulset():
    docs = helm_template("kairn", "kafka", {"kafka": {"metadata": {"mode": "kraft"}}})
    statefulsets = {d["metadata"]["name"] for d in docs if d["kind"] == "StatefulSet"}
    jobs = [d for d in docs if d["kind"] == "Job" and "roller" in d["metadata"]["name"]]
    jobs += [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("preflight")]
    assert jobs
    for job in jobs:
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["KAIRN_CONTROLLER_STATEFULSET"] in statefulsets, job["metadata"]["name"]
        assert env["KAIRN_KAFKA_STATEFULSET"] in statefulsets
        assert env.get("KAIRN_METADATA_VERSION", "") == ""  # left alone unless asked
    zk = helm_template("kairn", "kafka", {"kafka": {"metadataVersion": "4.4"}})
    for job in (
        d for d in zk if d["kind"] == "Job" and d["metadata"]["name"].endswith("preflight")
    ):
        env = {
            e["name"]: e.get("value")
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert "KAIRN_CONTROLLER_STATEFULSET" not in env and env["KAIRN_METADATA_VERSION"] == "4.4"


def _controllers(image: str = "registry.invalid/kafka:4.4.0"):
    return client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="kairn-controller"),
        spec=client.V1StatefulSetSpec(
            replicas=3,
            service_name="kairn-kafka-controllers",
            pod_management_policy="Parallel",
            update_strategy=client.V1StatefulSetUpdateStrategy(type="OnDelete"),
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=LABELS),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="controller",
                            image=image,
                            resources=client.V1ResourceRequirements(
                                requests={"cpu": "100m", "memory": "64Mi"}
                            ),
                        )
                    ]
                ),
            ),
        ),
    )


def test_kube_adapter_controllers(api, core, namespace):
    names = {KAFKA: "kairn-kafka", ZOOKEEPER: "kairn-zookeeper", CONTROLLER: "kairn-controller"}
    kp = KubePlatform(namespace, names, "kairn", api_client=api)
    # ZooKeeper mode (no controller StatefulSet, or none named): the mode rule's platform side
    assert not kp.deployed(CONTROLLER)
    assert not KubePlatform(namespace, {KAFKA: "kairn-kafka"}, "kairn", api_client=api).deployed(
        CONTROLLER
    )
    assert quorum.metadata_mode(kp.deployed(CONTROLLER), None) == ("zookeeper", [])

    apps = client.AppsV1Api(api)
    apps.create_namespaced_stateful_set(namespace, _controllers())
    assert kp.deployed(CONTROLLER)
    assert quorum.metadata_mode(kp.deployed(CONTROLLER), True) == ("kraft", [])

    def ready():
        pods = kp.pods(CONTROLLER)
        return len(pods) == 3 and all(p.ready for p in pods) and pods

    pods = wait_for("3 Ready controller pods", ready, timeout=120)
    assert [p.name for p in pods] == [f"kairn-controller-{i}" for i in range(3)]
    assert [quorum.node_id(p.ordinal) for p in pods] == [100, 101, 102]
    assert kp.replicas(CONTROLLER) == 3
    first = kp.update_revision(CONTROLLER)
    assert plan.restarts(pods, first) == []

    # a new image: every controller outdated; the roller deletes one, the StatefulSet controller
    # recreates it on the update revision
    apps.patch_namespaced_stateful_set(
        "kairn-controller",
        namespace,
        {"spec": {"template": {"spec": {"containers": [
            {"name": "controller", "image": "registry.invalid/kafka:4.4.1"}]}}}},
    )  # fmt: skip
    second = wait_for(
        "a new updateRevision", lambda: (r := kp.update_revision(CONTROLLER)) != first and r
    )
    assert len(plan.restarts(kp.pods(CONTROLLER), second)) == 3
    old = kp.pods(CONTROLLER)[0]
    kp.delete_pod(CONTROLLER, old)

    def replaced():
        p = next((p for p in kp.pods(CONTROLLER) if p.name == old.name), None)
        return p is not None and p.uid != old.uid and p.ready and p.revision == second and p

    wait_for("kairn-controller-0 recreated on the update revision", replaced, timeout=120)

    # renewal marks from the controllers' Secret, Events on the controllers' StatefulSet
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="kairn-kafka-controllers",
                annotations={"kairn.dev/renewed-at": json.dumps({"kairn-controller-2": later})},
            )
        ),
    )
    assert kp.cert_renewed(CONTROLLER, kp.pods(CONTROLLER)) == {"kairn-controller-2"}
    kp.event(CONTROLLER, "Restarting", "kairn-roller restarts kairn-controller-1: test")
    events = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=kairn-controller"
    ).items
    assert [e.reason for e in events if e.source.component == "kairn-roller"] == ["Restarting"]
